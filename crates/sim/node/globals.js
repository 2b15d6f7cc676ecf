'use strict';
// What the platform's Node runtime puts around an app: `__forge_fetch__`, `__forge_runtime__`,
// `process.env`, and console output as log lines; plus what makes a run replay: the clock,
// timers and randomness follow the invocation's virtual time and seed. Installed before any
// app code (and so before `@forge/api` captures `fetch`) is loaded.

const util = require('util');
const crypto = require('crypto');

function install(state, rpc) {
  installRuntime(state, rpc);
  installClock(state);
  installTimers(state);
  installRandom(state);
  installConsole(state, rpc);
}

// --- `__forge_fetch__` and `__forge_runtime__` (shared/spec/forge-node-runtime.md §1) -------

function installRuntime(state, rpc) {
  Object.defineProperty(globalThis, '__forge_fetch__', {
    value: async function __forge_fetch__(target, path, init) {
      const req = await requestParts(init || {});
      const reply = await rpc.call({ op: 'forge_fetch', target: target || {}, path: String(path), ...req });
      return toResponse(reply);
    },
    writable: false,
    configurable: false,
  });
  // `@forge/kvs` reads `kvs`, `proxy` and `tracing` when it is loaded; leaving `kvs` unset makes
  // it send `{type:'kvs', provider:'app', remote:'kvs'}` through `__forge_fetch__`.
  Object.defineProperty(globalThis, '__forge_runtime__', {
    get() {
      if (state.runtime === undefined && state.rawRuntime !== undefined) state.runtime = runtimeObject(state, state.rawRuntime);
      return state.runtime;
    },
    configurable: false,
  });
}

async function requestParts(init) {
  const method = String(init.method || 'GET').toUpperCase();
  const headers = [];
  const h = init.headers;
  if (h && Object.getPrototypeOf(h) === Object.prototype) {
    // The packages pass plain objects: no Headers object needed.
    for (const k of Object.keys(h)) headers.push([k.toLowerCase(), String(h[k])]);
  } else if (h) new Headers(h).forEach((v, k) => headers.push([k, v]));
  let body = null;
  let latin1 = false;
  const b = init.body;
  if (b === undefined || b === null) body = null;
  else if (typeof b === 'string') body = b;
  else if (b instanceof URLSearchParams) body = b.toString();
  else if (b instanceof ArrayBuffer || ArrayBuffer.isView(b)) {
    body = Buffer.from(b instanceof ArrayBuffer ? b : b.buffer, b.byteOffset || 0, b.byteLength).toString('latin1');
    latin1 = true;
  } else if (typeof b.arrayBuffer === 'function') {
    body = Buffer.from(await b.arrayBuffer()).toString('latin1');
    latin1 = true;
  } else body = String(b);
  return { method, headers, body, latin1 };
}

function toResponse(reply) {
  if (reply.error) {
    const e = new Error(reply.error.message);
    e.name = reply.error.code;
    e.code = reply.error.code;
    if (reply.error.status) e.status = reply.error.status;
    throw e;
  }
  const nullBody = reply.status === 204 || reply.status === 304 || reply.status < 200;
  return new PlatformResponse(nullBody ? null : String(reply.body ?? ''), {
    status: reply.status,
    statusText: reply.statusText || '',
    headers: reply.headers,
  });
}

// The response `__forge_fetch__` answers: a real `Response` (its status, headers, `ok`,
// `instanceof Response`) whose text the platform already has in full. Undici's own body
// machinery (a stream per response, then reading it back) costs about 40 µs a call, more
// than the rest of a platform call together; this keeps the text and hands it out as the
// body methods do: once (`bodyUsed`), as text, JSON, bytes or a Blob, and as a stream only
// when someone asks for `body`.
class PlatformResponse extends Response {
  #text;
  #used = false;
  #stream = null;

  constructor(text, init) {
    super(null, init);
    this.#text = text;
  }

  get body() {
    if (this.#text === null) return null;
    if (this.#stream === null) {
      const bytes = new TextEncoder().encode(this.#text);
      const self = this;
      this.#stream = new ReadableStream({
        pull(controller) {
          self.#used = true;
          controller.enqueue(bytes);
          controller.close();
        },
      });
    }
    return this.#stream;
  }

  get bodyUsed() {
    return this.#used;
  }

  #take() {
    if (this.#used) throw new TypeError('Body is unusable: Body has already been read');
    this.#used = true;
    return this.#text === null ? '' : this.#text;
  }

  async text() {
    return this.#take();
  }

  async json() {
    return JSON.parse(this.#take());
  }

  async arrayBuffer() {
    const bytes = new TextEncoder().encode(this.#take());
    return bytes.buffer;
  }

  async bytes() {
    return new TextEncoder().encode(this.#take());
  }

  async blob() {
    const type = this.headers.get('content-type') || '';
    return new Blob([this.#take()], { type });
  }

  async formData() {
    // Rare for platform answers: the standard machinery, on a copy of the body.
    return new Response(this.#take(), { headers: this.headers }).formData();
  }

  clone() {
    if (this.#used) throw new TypeError('Response.clone: Body has already been consumed.');
    return new PlatformResponse(this.#text, { status: this.status, statusText: this.statusText, headers: this.headers });
  }
}

// --- The virtual clock ----------------------------------------------------------------------

function installClock(state) {
  const RealDate = Date;
  function VirtualDate(...args) {
    if (!new.target) return new RealDate(state.now).toString();
    return Reflect.construct(RealDate, args.length ? args : [state.now], new.target);
  }
  VirtualDate.prototype = RealDate.prototype;
  Object.setPrototypeOf(VirtualDate, RealDate);
  VirtualDate.now = () => state.now;
  VirtualDate.parse = RealDate.parse;
  VirtualDate.UTC = RealDate.UTC;
  globalThis.Date = VirtualDate;
  performance.now = () => state.now - state.started;
  const hrtime = (prev) => {
    const ns = BigInt(state.now - state.started) * 1000000n;
    const t = [Number(ns / 1000000000n), Number(ns % 1000000000n)];
    if (!prev) return t;
    let s = t[0] - prev[0];
    let n = t[1] - prev[1];
    if (n < 0) { s -= 1; n += 1e9; }
    return [s, n];
  };
  hrtime.bigint = () => BigInt(state.now - state.started) * 1000000n;
  process.hrtime = hrtime;
}

// --- Timers on virtual time -----------------------------------------------------------------
// A timer does not wait for the wall clock: when the invocation has nothing else to do (no
// platform call in flight), the earliest timer fires and the virtual clock moves to its due
// time. `await sleep(3000)` is instant and reads 3 s later on `Date.now()`. Timers left when an
// invocation ends are dropped with it.

function installTimers(state) {
  let nextId = 1;
  state.timers = new Map();
  state.pumpScheduled = false;
  const realSetImmediate = setImmediate;
  class VirtualTimeout {
    constructor(id) { this._id = id; }
    ref() { return this; }
    unref() { return this; }
    hasRef() { return true; }
    refresh() {
      const t = state.timers.get(this._id);
      if (t) t.due = state.now + t.delay;
      return this;
    }
    close() { state.timers.delete(this._id); return this; }
    [Symbol.toPrimitive]() { return this._id; }
  }
  const add = (fn, delay, args, repeat) => {
    if (typeof fn !== 'function') throw new TypeError('The "callback" argument must be of type function');
    const id = nextId++;
    const ms = Math.max(1, Number(delay) || 0);
    state.timers.set(id, { id, fn, args, delay: ms, due: state.now + ms, repeat, inv: state.inv });
    schedulePump(state, realSetImmediate);
    return new VirtualTimeout(id);
  };
  const clear = (t) => {
    if (t === undefined || t === null) return;
    state.timers.delete(typeof t === 'object' ? t._id : Number(t));
  };
  globalThis.setTimeout = (fn, delay, ...args) => add(fn, delay, args, false);
  globalThis.setInterval = (fn, delay, ...args) => add(fn, delay, args, true);
  globalThis.clearTimeout = clear;
  globalThis.clearInterval = clear;
  state.onIdle = () => schedulePump(state, realSetImmediate);
}

// Requests to the operating system (file reads, ...) that the invocation may be waiting for:
// while one is pending, virtual time does not jump ahead of it.
const BUSY = new Set(['FSReqCallback', 'FSReqPromise', 'FileHandleCloseReq', 'GetAddrInfoReqWrap', 'ZlibWrap']);
const realSetTimeout = setTimeout;

function schedulePump(state, realSetImmediate) {
  if (state.pumpScheduled) return;
  state.pumpScheduled = true;
  realSetImmediate(() => {
    state.pumpScheduled = false;
    if (!state.active || state.returned || state.inFlight > 0 || state.timers.size === 0) return;
    // A worker thread of this invocation may still answer: virtual time waits for it as for
    // a file read (the wall clock bounds both: the invocation's timeout).
    const workerRuns = state.workers && [...state.workers].some((w) => w.inv === state.inv);
    if (workerRuns || process.getActiveResourcesInfo().some((r) => BUSY.has(r))) {
      state.pumpScheduled = true;
      realSetTimeout(() => {
        state.pumpScheduled = false;
        schedulePump(state, realSetImmediate);
      }, 1);
      return;
    }
    let first = null;
    for (const t of state.timers.values()) if (!first || t.due < first.due || (t.due === first.due && t.id < first.id)) first = t;
    if (first.due > state.deadline) {
      state.timers.clear();
      state.timedOut();
      return;
    }
    state.now = Math.max(state.now, first.due);
    if (first.repeat) first.due = state.now + first.delay;
    else state.timers.delete(first.id);
    try {
      first.fn(...first.args);
    } finally {
      schedulePump(state, realSetImmediate);
    }
  });
}

// --- Seeded randomness ----------------------------------------------------------------------
// xoshiro128** seeded by the simulator for each invocation: Math.random, crypto.randomBytes,
// randomFill(Sync), randomInt, randomUUID and getRandomValues all draw from it.

function installRandom(state) {
  const next = () => {
    const s = state.rng;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  };
  const fill = (view) => {
    const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    for (let i = 0; i < bytes.length; i += 4) {
      const r = next();
      for (let j = 0; j < 4 && i + j < bytes.length; j++) bytes[i + j] = (r >>> (8 * j)) & 0xff;
    }
    return view;
  };
  Math.random = () => (next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53;
  const getRandomValues = (view) => {
    if (!ArrayBuffer.isView(view)) throw new TypeError('getRandomValues takes an integer typed array');
    if (view.byteLength > 65536) throw new RangeError('getRandomValues takes at most 65536 bytes');
    return fill(view);
  };
  const randomUUID = () => {
    const b = fill(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Buffer.from(b).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  const randomBytes = (n, cb) => {
    const buf = fill(Buffer.alloc(n));
    if (typeof cb === 'function') {
      process.nextTick(cb, null, buf);
      return undefined;
    }
    return buf;
  };
  const randomFillSync = (buf, offset = 0, size) => {
    const view = ArrayBuffer.isView(buf) ? buf : new Uint8Array(buf);
    const end = size === undefined ? view.byteLength : offset + size;
    fill(new Uint8Array(view.buffer, view.byteOffset + offset, end - offset));
    return buf;
  };
  const randomFill = (buf, ...rest) => {
    const cb = rest.pop();
    randomFillSync(buf, ...rest);
    process.nextTick(cb, null, buf);
  };
  const randomInt = (min, max, cb) => {
    if (max === undefined || typeof max === 'function') {
      cb = max;
      max = min;
      min = 0;
    }
    const n = min + Math.floor(Math.random() * (max - min));
    if (typeof cb === 'function') {
      process.nextTick(cb, null, n);
      return undefined;
    }
    return n;
  };
  const fns = { randomBytes, randomFillSync, randomFill, randomInt, randomUUID, getRandomValues, pseudoRandomBytes: randomBytes };
  for (const [name, fn] of Object.entries(fns)) define(crypto, name, fn);
  // Web Crypto's methods live on the prototype of `globalThis.crypto`.
  // (`require('crypto').getRandomValues` is a getter that reads them from there.)
  const web = globalThis.crypto || crypto.webcrypto;
  if (web) {
    const proto = Object.getPrototypeOf(web);
    define(proto, 'getRandomValues', getRandomValues);
    define(proto, 'randomUUID', randomUUID);
  }
}

// Replaces a property, value or getter, where the object lets it be replaced.
function define(obj, name, value) {
  const d = Object.getOwnPropertyDescriptor(obj, name);
  if (d && !d.configurable) return;
  Object.defineProperty(obj, name, { value, writable: true, configurable: true, enumerable: true });
}

function rotl(x, k) {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// --- console.* and direct writes become log lines ---------------------------------------------

function installConsole(state, rpc) {
  const line = (level) => (...args) => rpc.log(level, util.format(...args));
  console.log = line('info');
  console.info = line('info');
  console.debug = line('debug');
  console.warn = line('warn');
  console.error = line('error');
  console.trace = (...args) => rpc.log('error', `Trace: ${util.format(...args)}\n${new Error().stack.split('\n').slice(2).join('\n')}`);
  console.dir = (obj, opts) => rpc.log('info', util.inspect(obj, opts));
  const write = (level) => (chunk, enc, cb) => {
    rpc.log(level, String(chunk).replace(/\n$/, ''));
    if (typeof enc === 'function') enc();
    else if (typeof cb === 'function') cb();
    return true;
  };
  process.stdout.write = write('info');
  process.stderr.write = write('error');
}

// `__forge_runtime__` for one invocation: a fresh copy of the installation's part with the
// invocation's own fields (`inv`) in their places.
function runtimeObject(state, inv) {
  const r = structuredClone(state.base);
  r.appContext.invocationId = inv.invocationId;
  r.appContext.moduleKey = inv.functionKey;
  r.appContext.functionKey = inv.functionKey;
  r.aaid = inv.aaid;
  r.tracing = inv.tracing;
  const noop = { incr() {}, incrBy() {}, decr() {}, decrBy() {}, set() {}, measure() { return { stop() {} }; } };
  return {
    ...r,
    lambdaContext: {
      getRemainingTimeInMillis: () => Math.max(0, state.deadline - state.now),
      functionName: r.appContext && r.appContext.functionKey,
    },
    metrics: { counter: () => noop, timing: () => noop, gauge: () => noop },
    externalAuth: r.externalAuth || [],
  };
}

// `PlatformResponse` is exported for its test (tests/it/node.rs); apps reach it only through
// `__forge_fetch__`.
module.exports = { install, runtimeObject, PlatformResponse };
