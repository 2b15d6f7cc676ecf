// In-memory stand-in for the Forge platform behind the `app` world's signoff:forge imports.
// Every function is synchronous and returns the jco shape directly: a value for `ok`, or
// {tag:'err', val:{code,message}}. `dispatch(name, args)` calls one by its "iface.func" name,
// which is what the worker bridge sends over.

export function makePlatform({ nowMs = 1_760_000_000_000n, accountId } = {}) {
  const kv = new Map();
  const secrets = new Map();
  const pages = new Map(); // id -> page
  const props = new Map(); // `${page}\u0000${key}` -> {key,value,version}
  const states = new Map(); // page -> {name,color}
  const counts = new Map();
  let now = nowMs;
  const err = (code, message) => ({ tag: 'err', val: { code, message } });
  const count = (n) => counts.set(n, (counts.get(n) || 0) + 1);

  const api = {
    context: {
      current: () => ({
        appId: 'ari:cloud:ecosystem::app/proto', environment: 'development',
        site: 'acme.atlassian.net', installation: 'inst-1', realm: 'US', function: 'resolver',
        nowMs: (now += 1000n), remainingMs: 25_000n, accountId: api._accountId,
      }),
    },
    kvs: {
      get: (k) => kv.get(k),
      set: (k, v, o) => {
        if (o && o.failIfExists && kv.has(k)) return err('KEY_CONFLICT', k);
        kv.set(k, v);
      },
      delete: (k) => { kv.delete(k); },
      query: (prefix, limit, cursor) => {
        const keys = [...kv.keys()].filter((k) => k.startsWith(prefix)).sort();
        const from = cursor ? keys.findIndex((k) => k > cursor) : 0;
        const lim = limit ?? 10;
        const slice = from < 0 ? [] : keys.slice(from, from + lim);
        const more = from >= 0 && from + lim < keys.length;
        return { results: slice.map((key) => ({ key, value: kv.get(key) })), cursor: more ? slice[slice.length - 1] : undefined };
      },
      transact: (ops) => {
        for (const op of ops) if (op.tag === 'set' && op.val[2].failIfExists && kv.has(op.val[0])) return err('KEY_CONFLICT', op.val[0]);
        for (const op of ops) op.tag === 'set' ? kv.set(op.val[0], op.val[1]) : kv.delete(op.val);
      },
      batchSet: (entries) => entries.map((e) => { kv.set(e.key, e.value); return { tag: 'ok' }; }),
      getSecret: (k) => secrets.get(k),
      setSecret: (k, v) => { secrets.set(k, v); },
    },
    fetch: { fetch: (req) => ({ status: 202, headers: [], body: '' }) },
    product: {
      getPage: (id) => pages.get(id),
      createPage: (space, title, body) => { const p = { id: String(1000 + pages.size), space, title, body, author: 'alice', version: 1 }; pages.set(p.id, p); return p; },
      updatePage: (id, title, body, version) => { const p = pages.get(id); if (!p) return err('NOT_FOUND', id); if (version !== p.version + 1) return err('CONFLICT', id); Object.assign(p, { title, body, version }); return p; },
      getProperty: (id, key) => props.get(`${id}\u0000${key}`),
      setProperty: (id, key, value, version) => {
        const cur = props.get(`${id}\u0000${key}`);
        if ((cur ? cur.version + 1 : 1) !== version) return err('CONFLICT', `${id}/${key}`);
        const p = { key, value, version }; props.set(`${id}\u0000${key}`, p); return p;
      },
      getContentState: (id) => states.get(id),
      setContentState: (id, st) => { states.set(id, st); const p = pages.get(id); if (!p) return err('NOT_FOUND', id); p.version += 1; return p; },
    },
    log: { write: (level, msg) => {} },
    analytics: { track: () => {} },
    queue: { push: () => {} },
    _accountId: accountId,
  };

  function dispatch(name, args) {
    count(name);
    const [iface, fn] = name.split('.');
    return api[iface][fn](...args);
  }
  // Counting wrappers, for the direct (same-thread) run.
  const counted = {};
  for (const iface of ['context', 'kvs', 'fetch', 'product', 'log', 'analytics', 'queue']) {
    counted[iface] = {};
    for (const fn of Object.keys(api[iface])) counted[iface][fn] = (...a) => dispatch(`${iface}.${fn}`, a);
  }
  return { api, dispatch, counted, counts, setAccount: (a) => { api._accountId = a; } };
}

// The component's import object around a per-interface implementation (`impl` has the
// shape of `api` above), plus the WASI shims jco expects.
export async function importObject(impl) {
  const cli = await import('@bytecodealliance/preview2-shim/cli');
  const io = await import('@bytecodealliance/preview2-shim/io');
  const random = await import('@bytecodealliance/preview2-shim/random');
  const v = '0.2.12';
  const o = {
    'signoff:forge/context@0.1.0': impl.context,
    'signoff:forge/fetch@0.1.0': impl.fetch,
    'signoff:forge/kvs@0.1.0': { ...impl.kvs, delete: impl.kvs.delete },
    'signoff:forge/log@0.1.0': impl.log,
    'signoff:forge/product@0.1.0': impl.product,
    'signoff:forge/types@0.1.0': {},
    [`wasi:cli/environment@${v}`]: cli.environment,
    [`wasi:cli/exit@${v}`]: cli.exit,
    [`wasi:cli/stderr@${v}`]: cli.stderr,
    [`wasi:cli/stdin@${v}`]: cli.stdin,
    [`wasi:cli/stdout@${v}`]: cli.stdout,
    [`wasi:cli/terminal-input@${v}`]: cli.terminalInput,
    [`wasi:cli/terminal-output@${v}`]: cli.terminalOutput,
    [`wasi:cli/terminal-stderr@${v}`]: cli.terminalStderr,
    [`wasi:cli/terminal-stdin@${v}`]: cli.terminalStdin,
    [`wasi:cli/terminal-stdout@${v}`]: cli.terminalStdout,
    [`wasi:io/error@${v}`]: io.error,
    [`wasi:io/poll@${v}`]: io.poll,
    [`wasi:io/streams@${v}`]: io.streams,
    [`wasi:random/insecure-seed@${v}`]: random.insecureSeed,
    [`wasi:random/random@${v}`]: random.random,
  };
  // jco 1.35.0's .d.ts names the keys with versions, its JS reads them without: give both.
  for (const k of Object.keys(o)) o[k.replace(/@[^@]*$/, '')] = o[k];
  return o;
}

export async function instantiateComponent(impl, dir = new URL('./out/', import.meta.url)) {
  const { readFile } = await import('node:fs/promises');
  const { instantiate } = await import(new URL('approvals.js', dir));
  const getCoreModule = async (p) => WebAssembly.compile(await readFile(new URL(p, dir)));
  return instantiate(getCoreModule, await importObject(impl));
}

// A scenario through the real component, as export calls [label, export, args]: a page
// created in space ENG (whose workflow `assignWorkflow` set), submitted, approved, looked at.
export const assignWorkflow = ['assign-workflow', 'resolver', ['assign-workflow', JSON.stringify({ accountId: 'alice', space: 'ENG', template: 'basic', spaceAdmins: ['alice'] })]];
export function scenarioCalls(pageId) {
  const res = (name, payload) => [name, 'resolver', [name, JSON.stringify(payload)]];
  return [
    ['on-event created', 'onEvent', [JSON.stringify({ eventType: 'avi:confluence:created:page', atlassianId: 'alice', content: { id: pageId, type: 'page', space: { key: 'ENG' } } })]],
    res('submit', { accountId: 'alice', pageId }),
    res('approve', { accountId: 'bob', pageId }),
    res('status', { pageId }),
    res('panel', { pageId, accountId: 'bob' }),
    ['web-trigger (health)', 'webTrigger', [{ method: 'GET', path: '/', headers: [], queryParameters: [], body: '' }]],
  ];
}
export function runExport(root, exp, args) {
  try { return { ok: root[exp](...args) }; } catch (e) { return { err: e.payload ?? String(e) }; }
}
