// signoff console: the simulated site in the browser. Everything shown comes from the
// console's JSON API; text from the simulation (page bodies, app output, logs) is only ever
// put into the page as text, never as HTML.
'use strict';

const $ = (sel) => document.querySelector(sel);
let state = null;
let framesOrigin = null;
const openFrames = new Map(); // frame id -> iframe

// --- small helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signoff-console': '1' },
    body: JSON.stringify(body),
  };
  const r = await fetch(path, init);
  const json = await r.json();
  if (!r.ok || json.error) throw new Error(json.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${r.status}`);
  return json;
}

function when(ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function flag(text, error) {
  const f = el('div', { class: error ? 'flag error' : 'flag', role: error ? 'alert' : null }, text);
  $('#flags').append(f);
  setTimeout(() => f.remove(), 6000);
}

function site() {
  return state.sites.find((s) => s.name === $('#site').value) || state.sites[0];
}

function user() {
  return $('#user').value;
}

function lozenge(st) {
  if (!st) return el('span', { class: 'lozenge' }, 'no status');
  const l = el('span', { class: 'lozenge', 'data-testid': 'page-status' }, st.name);
  if (/^#[0-9a-f]{6}$/i.test(st.color || '')) {
    l.style.background = st.color;
    l.style.color = '#172B4D';
  }
  return l;
}

// --- the frame: top bar and navigation ----------------------------------------------------

async function refresh() {
  state = await api('/api/state');
  $('#scenario').textContent = `${state.scenario} (seed ${state.seed})`;
  $('#now').textContent = when(state.now);
  $('#now').setAttribute('datetime', new Date(state.now).toISOString());
  $('#pending').textContent = `${state.pending} deliveries due later · ${state.stats.invocations} invocations`;
  const siteSelect = $('#site');
  const keepSite = siteSelect.value;
  siteSelect.replaceChildren(...state.sites.map((s) => el('option', { value: s.name }, `${s.name} (${s.host}, ${s.realm})`)));
  if (keepSite) siteSelect.value = keepSite;
  const userSelect = $('#user');
  const keepUser = userSelect.value;
  userSelect.replaceChildren(...site().users.map((u) => el('option', { value: u.name }, u.name)));
  if (keepUser && site().users.some((u) => u.name === keepUser)) userSelect.value = keepUser;
  drawNav();
}

function drawNav() {
  const s = site();
  const here = location.hash;
  const link = (href, text, extra) => el('li', null, el('a', { href, 'aria-current': here === href ? 'page' : null, ...extra }, text));
  const parts = [];
  for (const space of s.spaces) {
    parts.push(el('h2', null, `Space ${space.key}`));
    parts.push(el('ul', null, space.pages.map((p) => link(`#/page/${s.name}/${p.id}`, p.title + (p.trashed ? ' (trashed)' : '')))));
  }
  const installs = state.installations.filter((i) => i.site === s.name);
  const globals = [];
  const settings = [];
  for (const i of installs) {
    for (const m of i.modules) {
      if (m.kind === 'confluence:globalPage' || m.kind === 'confluence:globalSettings' || m.kind === 'confluence:homepageFeed') {
        globals.push(link(`#/module/${i.id}/${m.key}`, m.title));
      }
      if (m.kind === 'confluence:spaceSettings' || m.kind === 'confluence:spacePage') {
        for (const space of s.spaces) settings.push(link(`#/module/${i.id}/${m.key}/${space.key}`, `${m.title} (${space.key})`));
      }
    }
  }
  if (globals.length) parts.push(el('h2', null, 'Apps'), el('ul', null, globals));
  if (settings.length) parts.push(el('h2', null, 'Space settings'), el('ul', null, settings));
  parts.push(el('h2', null, 'Platform'));
  parts.push(el('ul', null, [
    link('#/tools/ledger', 'Egress ledger'),
    link('#/tools/report', 'RoA report'),
    link('#/tools/storage', 'Storage inspector'),
    link('#/tools/logs', 'Logs'),
    link('#/tools/invocations', 'Invocations'),
    link('#/tools/admin', 'Site administration'),
  ]));
  $('#nav').replaceChildren(...parts);
}

// --- routes -------------------------------------------------------------------------------

async function route() {
  // User Timing marks, for measuring (the browser tests read them): a view's start and end.
  performance.mark('signoff:route-start');
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const main = $('#main');
  openFrames.clear();
  try {
    if (parts[0] === 'page') {
      await pageView(main, parts[1], parts[2]);
      performance.mark('signoff:page-shown');
    }
    else if (parts[0] === 'module') await moduleView(main, parts[1], parts[2], parts[3]);
    else if (parts[0] === 'tools') await toolView(main, parts[1]);
    else home(main);
  } catch (e) {
    main.replaceChildren(el('h1', null, 'Something went wrong'), el('p', { role: 'alert' }, e.message));
  }
  drawNav();
}

function home(main) {
  const s = site();
  const first = s.spaces[0] && s.spaces[0].pages[0];
  main.replaceChildren(
    el('h1', null, `Site ${s.name}`),
    el('p', null, `${s.host}, data in realm ${s.realm}. Choose a page, an app or a platform view on the left.`),
    first ? el('p', null, el('a', { href: `#/page/${s.name}/${first.id}` }, `Open “${first.title}”`)) : null,
    createForm(s, s.spaces[0] ? s.spaces[0].key : 'ENG'),
  );
}

async function pageView(main, siteName, id) {
  const { page, state: st, history, trashed, items } = await api(`/api/page?site=${encodeURIComponent(siteName)}&id=${encodeURIComponent(id)}`);
  const s = state.sites.find((x) => x.name === siteName) || site();
  const byline = el('div', { class: 'byline' }, lozenge(st), `Version ${page.version} · by ${page.author}`, trashed ? el('span', { class: 'blocked' }, 'trashed') : null);
  const popups = el('div');
  // The apps' byline items, with the titles and tooltips the server worked out (from the
  // manifest, or from the content property a byline item names as its contentPropertyKey).
  for (const item of items) {
    const i = state.installations.find((x) => x.id === item.installation);
    const m = i && i.modules.find((x) => x.key === item.key);
    if (!m) continue;
    const button = el('button', { type: 'button', class: 'byline-item', 'aria-expanded': 'false', 'data-item': `${item.installation}/${item.key}` }, item.title);
    if (item.tooltip) button.title = item.tooltip;
    button.addEventListener('click', async () => {
      performance.mark('signoff:byline-click');
      const open = button.getAttribute('aria-expanded') === 'true';
      popups.replaceChildren();
      button.setAttribute('aria-expanded', String(!open));
      if (!open) popups.append(await framed(i, m, { pageId: page.id }, () => button.click()));
    });
    byline.append(button);
  }
  const versions = el('details', null, el('summary', null, `Versions (${history.length})`),
    el('table', null,
      el('thead', null, el('tr', null, el('th', null, 'Version'), el('th', null, 'Title'), el('th', null, 'By'), el('th', null, 'Text'))),
      el('tbody', null, history.slice().reverse().map((v) => el('tr', null, el('td', null, v.version), el('td', null, v.title), el('td', null, v.author), el('td', null, textOf(v.body)))))));
  const edit = el('details', null, el('summary', null, 'Edit this page'), editForm(s, page));
  main.replaceChildren(
    el('div', { class: 'crumbs' }, `${s.name} / ${page.space}`),
    el('h1', null, page.title),
    byline, popups,
    el('div', { class: 'body', 'aria-label': 'Page text' }, textOf(page.body)),
    versions, edit,
  );
}

// A page body (storage format) as text: parsed inert, never inserted as HTML.
function textOf(body) {
  const doc = new DOMParser().parseFromString(`<body>${body}</body>`, 'text/html');
  return doc.body.textContent;
}

function editForm(s, page) {
  const title = el('input', { id: 'edit-title', value: page.title });
  const body = el('textarea', { id: 'edit-body' }, page.body);
  return el('form', {
    class: 'stack',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api('/api/page/edit', { site: s.name, as: user(), id: page.id, title: title.value, body: body.value });
        flag(`Published version ${r.page.version}`);
        await refresh();
        await route();
      } catch (err) { flag(err.message, true); }
    },
  }, el('label', { for: 'edit-title' }, 'Title'), title, el('label', { for: 'edit-body' }, 'Body (storage format)'), body,
  el('div', null, el('button', { class: 'primary', type: 'submit' }, 'Publish as the acting user')));
}

function createForm(s, space) {
  const spaceInput = el('input', { id: 'new-space', value: space });
  const title = el('input', { id: 'new-title' });
  const body = el('textarea', { id: 'new-body' }, '<p></p>');
  return el('details', null, el('summary', null, 'Create a page'), el('form', {
    class: 'stack',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api('/api/page/create', { site: s.name, as: user(), space: spaceInput.value, title: title.value, body: body.value });
        await refresh();
        location.hash = `#/page/${s.name}/${r.page.id}`;
      } catch (err) { flag(err.message, true); }
    },
  }, el('label', { for: 'new-space' }, 'Space key'), spaceInput, el('label', { for: 'new-title' }, 'Title'), title,
  el('label', { for: 'new-body' }, 'Body (storage format)'), body, el('div', null, el('button', { class: 'primary', type: 'submit' }, 'Create as the acting user'))));
}

// An app's module in a frame, for the acting user.
async function framed(installation, module, where, close) {
  const f = await api('/api/frames', { installation: installation.id, module: module.key, as: user(), ...where });
  framesOrigin = new URL(f.url).origin;
  const iframe = el('iframe', { src: f.url, title: `${module.title} (${installation.id})`, sandbox: 'allow-scripts allow-same-origin allow-forms allow-popups' });
  openFrames.set(f.id, iframe);
  return el('section', { class: 'popup', 'aria-label': module.title },
    el('header', null, el('strong', null, module.title), close ? el('button', { type: 'button', onclick: close, 'aria-label': `Close ${module.title}` }, '×') : null),
    iframe);
}

async function moduleView(main, installationId, key, space) {
  const i = state.installations.find((x) => x.id === installationId);
  const m = i && i.modules.find((x) => x.key === key);
  if (!m) throw new Error(`no module ${key} of ${installationId}`);
  main.replaceChildren(
    el('div', { class: 'crumbs' }, space ? `Space ${space} / settings` : 'Apps'),
    el('h1', null, m.title),
    await framed(i, m, space ? { spaceKey: space } : {}),
  );
}

// --- platform views -------------------------------------------------------------------------

async function toolView(main, which) {
  const s = site();
  const installs = state.installations.filter((i) => i.site === s.name);
  const table = (heads, rows) => el('table', null, el('thead', null, el('tr', null, heads.map((h) => el('th', { scope: 'col' }, h)))), el('tbody', null, rows));
  if (which === 'ledger') {
    const { ledger } = await api('/api/ledger');
    main.replaceChildren(el('h1', null, 'Egress ledger'),
      el('p', null, 'Every request an app made to leave the platform, allowed or blocked.'),
      table(['When', 'Installation', 'Request', 'Category', 'In-scope data', 'Bytes', 'Result'],
        ledger.map((a) => el('tr', null, el('td', null, when(a.at)), el('td', null, a.installation), el('td', null, `${a.method} ${a.destination}`),
          el('td', null, a.category), el('td', null, a.in_scope_eud ? 'yes' : 'no'), el('td', null, a.bytes),
          el('td', { class: a.allowed ? null : 'blocked' }, a.allowed ? 'allowed' : `blocked: ${a.blocked_because}`)))));
  } else if (which === 'report') {
    const { reports } = await api('/api/report');
    main.replaceChildren(el('h1', null, 'Runtime RoA report'), ...reports.map((r) => el('section', null, el('h2', null, r.app), el('pre', null, r.text))));
  } else if (which === 'storage') {
    const pick = el('select', { id: 'storage-installation' }, state.installations.map((i) => el('option', { value: i.id }, `${i.id} (realm ${i.realm})`)));
    const out = el('div');
    const show = async () => {
      const r = await api(`/api/storage?installation=${encodeURIComponent(pick.value)}`);
      out.replaceChildren(el('p', null, `${r.keys.length} keys of ${r.installation} on ${r.site}, stored in realm ${r.realm}.`),
        table(['Key', 'Value'], r.keys.map((k) => el('tr', null, el('td', null, el('code', null, k.key)), el('td', null, el('pre', null, JSON.stringify(k.value, null, 2)))))));
    };
    pick.addEventListener('change', show);
    main.replaceChildren(el('h1', null, 'Storage inspector'), el('label', { for: 'storage-installation' }, 'Installation'), ' ', pick, out);
    await show();
  } else if (which === 'logs') {
    const { logs } = await api('/api/logs');
    main.replaceChildren(el('h1', null, 'Logs'), table(['When', 'Installation', 'Function', 'Level', 'Message', 'Shared with vendor'],
      logs.slice(-500).reverse().map((l) => el('tr', null, el('td', null, when(l.at)), el('td', null, l.installation), el('td', null, l.function), el('td', null, l.level), el('td', null, l.message), el('td', null, l.shared_with_vendor ? 'yes' : 'no')))));
  } else if (which === 'invocations') {
    const { invocations, total } = await api('/api/invocations');
    main.replaceChildren(el('h1', null, 'Invocations'), el('p', null, `${total} in all; the latest ${invocations.length}, newest first.`),
      table(['When', 'Installation', 'Function', 'Kind', 'Outcome', 'Fetches', 'Log lines'],
        invocations.slice().reverse().map((t) => el('tr', null, el('td', null, when(t.at)), el('td', null, t.installation), el('td', null, t.function), el('td', null, t.handler),
          el('td', { class: t.outcome && t.outcome.Err ? 'blocked' : null }, t.outcome && t.outcome.Err ? JSON.stringify(t.outcome.Err) : 'ok'), el('td', null, t.fetches), el('td', null, t.log_lines)))));
  } else if (which === 'admin') {
    const sections = installs.map((i) => {
      const analytics = el('input', { type: 'checkbox', id: `analytics-${i.id}`, checked: i.analyticsBlocked });
      const logs = el('input', { type: 'checkbox', id: `logs-${i.id}`, checked: i.logsBlocked });
      const save = async () => {
        try {
          await api('/api/admin', { installation: i.id, analyticsBlocked: analytics.checked, logsBlocked: logs.checked });
          flag(`Saved the settings of ${i.id}`);
          await refresh();
        } catch (e) { flag(e.message, true); }
      };
      analytics.addEventListener('change', save);
      logs.addEventListener('change', save);
      const consent = i.awaitingConsent ? el('button', { type: 'button', class: 'primary', onclick: async () => {
        try { const r = await api('/api/consent', { installation: i.id }); flag(`Version ${r.version} now runs`); await refresh(); await route(); } catch (e) { flag(e.message, true); }
      } }, `Consent to version ${i.awaitingConsent}`) : null;
      return el('section', null, el('h2', null, `${i.id} (${i.app}, version ${i.version})`),
        el('div', { class: 'row' }, analytics, el('label', { for: `analytics-${i.id}` }, 'Block analytics egress')),
        el('div', { class: 'row' }, logs, el('label', { for: `logs-${i.id}` }, 'Do not share logs with the vendor')),
        consent);
    });
    const realm = el('select', { id: 'realm' }, state.realms.map((r) => el('option', { value: r, selected: r === s.realm }, r)));
    const migrate = el('button', { type: 'button', onclick: async () => {
      try { const r = await api('/api/migrate', { site: s.name, realm: realm.value }); flag(`Migrated to ${r.realm}: ${r.moved} keys moved`); await refresh(); await route(); } catch (e) { flag(e.message, true); }
    } }, 'Migrate the site');
    main.replaceChildren(el('h1', null, `Administration of ${s.name}`), ...sections,
      el('section', null, el('h2', null, 'Data residency'), el('div', { class: 'row' }, el('label', { for: 'realm' }, 'Realm'), realm, migrate)));
  } else {
    throw new Error(`no view ${which}`);
  }
}

// --- messages from the apps' frames ---------------------------------------------------------

window.addEventListener('message', async (e) => {
  if (!framesOrigin || e.origin !== framesOrigin || !e.data || e.data.signoff !== true) return;
  const iframe = openFrames.get(e.data.frame);
  if (!iframe || e.source !== iframe.contentWindow) return;
  if (e.data.type === 'resize' && Number.isFinite(e.data.height)) {
    iframe.style.height = `${Math.min(Math.max(e.data.height, 120), 4000)}px`;
  } else if (e.data.type === 'changed') {
    // What the app did may have changed the page (its status lozenge) and the counters.
    await refresh();
    const byline = document.querySelector('.byline [data-testid="page-status"], .byline .lozenge');
    const parts = location.hash.split('/');
    if (byline && parts[1] === 'page') {
      // As Confluence does after @forge/confluence-bridge's updateBylineProperties (or on the
      // next page load): the items' texts follow their content properties.
      const r = await api(`/api/page?site=${encodeURIComponent(parts[2])}&id=${encodeURIComponent(parts[3])}`);
      byline.replaceWith(lozenge(r.state));
      for (const item of r.items) {
        const button = document.querySelector(`.byline-item[data-item="${CSS.escape(`${item.installation}/${item.key}`)}"]`);
        if (!button) continue;
        button.textContent = item.title;
        if (item.tooltip) button.title = item.tooltip; else button.removeAttribute('title');
      }
    }
  } else if (e.data.type === 'navigate' && e.data.location) {
    const l = e.data.location;
    if (l.target === 'contentView' && l.contentId) location.hash = `#/page/${site().name}/${l.contentId}`;
    else if (l.url) flag(`The app asked to open ${String(l.url)}`);
  } else if (e.data.type === 'flag' && e.data.flag) {
    flag([e.data.flag.title, e.data.flag.description].filter(Boolean).join(': '), e.data.flag.type === 'error');
  }
});

// --- start ------------------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', async () => {
  for (const b of document.querySelectorAll('[data-advance]')) {
    b.addEventListener('click', async () => {
      try {
        const r = await api('/api/clock', { advance: b.dataset.advance });
        flag(`${r.invocations} invocation(s) ran`);
        await refresh();
        await route();
      } catch (e) { flag(e.message, true); }
    });
  }
  $('#site').addEventListener('change', async () => { await refresh(); location.hash = ''; await route(); });
  $('#user').addEventListener('change', () => route());
  window.addEventListener('hashchange', route);
  try {
    await refresh();
    await route();
  } catch (e) {
    $('#main').replaceChildren(el('p', { role: 'alert' }, `The console cannot reach the simulation: ${e.message}`));
  }
});
