// The engine component's platform imports (`crates/sim/wit/platform.wit`, world `app`),
// implemented with Forge's own packages on the main thread: `@forge/kvs` for the hosted
// store and its secrets, `requestConfluence` (as the app) for pages, content properties and
// content state, `fetch` of `@forge/api` for the one declared egress (analytics).
//
// Each function answers `{ok: value}` or `{err: {code, message}}`, the shapes the worker
// hands to jco (a value for `ok`; a thrown `{payload}` for `err`). Values that are JSON on
// the platform travel as JSON text in the contract, so they are parsed on the way in and
// serialised on the way out (exact for every number up to 2^53, which the engine's records
// stay within).

import api, { fetch as forgeFetch, route } from '@forge/api';
import { kvs, WhereConditions } from '@forge/kvs';

/// A platform code (`KEY_CONFLICT`, `REQUEST_EGRESS_ALLOWLIST_ERR`, ...) is upper case.
const PLATFORM_CODE = /^[A-Z][A-Z0-9_]{2,}$/;

/// An error the packages threw, as the contract's `platform-error`.
export function platformError(e) {
  if (e && typeof e === 'object') {
    const code = [e.code, e.name].find((c) => typeof c === 'string' && PLATFORM_CODE.test(c));
    const message = typeof e.message === 'string' ? e.message : String(e);
    return { code: code ?? 'PLATFORM_ERROR', message };
  }
  return { code: 'PLATFORM_ERROR', message: String(e) };
}

const text = (v) => (v === undefined ? undefined : JSON.stringify(v));

function setOptions(options) {
  const o = {};
  if (options && options.ttlMs !== undefined) {
    // The contract's TTL is in milliseconds; the package's in whole seconds at least.
    o.ttl = { value: Math.max(1, Math.ceil(Number(options.ttlMs) / 1000)), unit: 'SECONDS' };
  }
  if (options && options.failIfExists) o.keyPolicy = 'FAIL_IF_EXISTS';
  return Object.keys(o).length ? o : undefined;
}

/// What a Confluence answer's status means in the contract's codes (the simulator's wasm
/// host answers the same codes for the same cases).
function productError(status, what, body) {
  const detail = body ? `: ${body.slice(0, 300)}` : '';
  const code =
    status === 404 ? 'NOT_FOUND'
      : status === 409 ? 'CONFLICT'
        : status === 401 || status === 403 ? 'FORBIDDEN'
          : status === 429 ? 'RATE_LIMIT_EXCEEDED'
            : status >= 400 && status < 500 ? 'INVALID'
              : 'PRODUCT_UNAVAILABLE';
  return { code, message: `${what} answered ${status}${detail}` };
}

class ProductFailure extends Error {
  constructor(err) {
    super(err.message);
    this.err = err;
  }
}

async function confluence(path, init, what) {
  const res = await api.asApp().requestConfluence(path, init);
  const body = await res.text();
  return { status: res.status, body, what };
}

function json(r) {
  try {
    return JSON.parse(r.body);
  } catch {
    throw new ProductFailure({ code: 'PRODUCT_UNAVAILABLE', message: `${r.what} answered text that is not JSON` });
  }
}

function expectOk(r) {
  if (r.status < 200 || r.status > 299) throw new ProductFailure(productError(r.status, r.what, r.body));
  return r;
}

// A page's space key, by space id (pages v2 name the space by id). Kept per process: a
// space's id never changes.
const spaceKeys = new Map();

async function spaceKey(spaceId) {
  const id = String(spaceId);
  if (!spaceKeys.has(id)) {
    const r = expectOk(await confluence(route`/wiki/api/v2/spaces/${id}`, undefined, `GET space ${id}`));
    spaceKeys.set(id, String(json(r).key));
  }
  return spaceKeys.get(id);
}

async function getPage(id) {
  const r = await confluence(route`/wiki/api/v2/pages/${id}?body-format=storage`, undefined, `GET page ${id}`);
  if (r.status === 404) return undefined;
  const p = json(expectOk(r));
  return {
    id: String(p.id),
    space: await spaceKey(p.spaceId),
    title: String(p.title ?? ''),
    body: String(p.body?.storage?.value ?? ''),
    author: String(p.authorId ?? ''),
    version: Number(p.version?.number ?? 0),
  };
}

function property(p) {
  return { key: String(p.key), value: JSON.stringify(p.value ?? null), version: Number(p.version?.number ?? 0) };
}

const headers = { Accept: 'application/json', 'Content-Type': 'application/json' };

/// The imports, by `interface.function` as the worker names them.
export const imports = {
  'kvs.get': async (key) => text(await kvs.get(key)),
  'kvs.set': async (key, value, options) => {
    await kvs.set(key, JSON.parse(value), setOptions(options));
  },
  'kvs.delete': async (key) => {
    await kvs.delete(key);
  },
  'kvs.query': async (prefix, limit, cursor) => {
    let q = kvs.query().where('key', WhereConditions.beginsWith(prefix)).limit(limit ?? 10);
    if (cursor !== undefined) q = q.cursor(cursor);
    const page = await q.getMany();
    return {
      results: page.results.map((e) => ({ key: e.key, value: JSON.stringify(e.value) })),
      cursor: page.nextCursor ?? undefined,
    };
  },
  'kvs.transact': async (ops) => {
    const tx = kvs.transact();
    for (const op of ops) {
      if (op.tag === 'set') {
        const [key, value, options] = op.val;
        // `keyPolicy` travels in the operation's options, as `/api/v1/transaction` carries
        // them (`FAIL_IF_EXISTS` is how the engine claims a sequence number).
        tx.set(key, JSON.parse(value), undefined, setOptions(options));
      } else {
        tx.delete(op.val);
      }
    }
    await tx.execute();
  },
  'kvs.get-secret': async (key) => text(await kvs.getSecret(key)),
  'kvs.set-secret': async (key, value) => {
    await kvs.setSecret(key, JSON.parse(value));
  },
  'fetch.fetch': async (req) => {
    const res = await forgeFetch(req.url, {
      method: req.method,
      headers: Object.fromEntries(req.headers),
      body: req.body === '' ? undefined : req.body,
    });
    const out = [];
    res.headers.forEach((v, k) => out.push([k, v]));
    return { status: res.status, headers: out, body: await res.text() };
  },
  'product.get-page': getPage,
  'product.get-property': async (page, key) => {
    const r = await confluence(route`/wiki/rest/api/content/${page}/property/${key}`, undefined, `GET property ${key} of ${page}`);
    if (r.status === 404) return undefined;
    return property(json(expectOk(r)));
  },
  'product.set-property': async (page, key, value, version) => {
    const what = `${version === 1 ? 'POST' : 'PUT'} property ${key} of ${page}`;
    const r = version === 1
      ? await confluence(route`/wiki/rest/api/content/${page}/property`, { method: 'POST', headers, body: JSON.stringify({ key, value: JSON.parse(value) }) }, what)
      : await confluence(route`/wiki/rest/api/content/${page}/property/${key}`, { method: 'PUT', headers, body: JSON.stringify({ key, value: JSON.parse(value), version: { number: version } }) }, what);
    // Creating a property that exists is Confluence's 400: in the contract, a stale version.
    if (version === 1 && r.status === 400 && /already exists/i.test(r.body)) {
      throw new ProductFailure({ code: 'CONFLICT', message: `${what}: the property exists` });
    }
    return property(json(expectOk(r)));
  },
  'product.get-content-state': async (page) => {
    const r = expectOk(await confluence(route`/wiki/rest/api/content/${page}/state?status=current`, undefined, `GET content state of ${page}`));
    const s = json(r).contentState;
    return s ? { name: String(s.name), color: String(s.color) } : undefined;
  },
  'product.set-content-state': async (page, state) => {
    expectOk(await confluence(route`/wiki/rest/api/content/${page}/state?status=current`, { method: 'PUT', headers, body: JSON.stringify({ name: state.name, color: state.color }) }, `PUT content state of ${page}`));
    // Confluence answers the state; the contract answers the page, whose version the
    // state change made.
    const p = await getPage(page);
    if (!p) throw new ProductFailure({ code: 'NOT_FOUND', message: `page ${page} is gone` });
    return p;
  },
};

/// Runs one import; never throws.
export async function serve(name, args) {
  const f = imports[name];
  if (!f) return { err: { code: 'UNKNOWN_IMPORT', message: `the package does not provide \`${name}\`` } };
  try {
    return { ok: await f(...args) };
  } catch (e) {
    return { err: e instanceof ProductFailure ? e.err : platformError(e) };
  }
}
