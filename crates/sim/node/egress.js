'use strict';
// Every way out of the process goes to the simulator's egress gate. `fetch` and Node's
// `http`/`https` clients become one `fetch` request to the simulator, which judges it by the
// manifest and the admin's switches, writes the ledger and answers from the scenario's
// endpoints; raw sockets (`net`, `tls`, `http2`), name lookups (`dns`), child processes and
// worker threads are refused and reported. Node's permission model and, where it can be made,
// a network namespace without interfaces stand behind this file; it is not the only wall.

const http = require('http');
const https = require('https');
const net = require('net');
const tls = require('tls');
const http2 = require('http2');
const dns = require('dns');
const childProcess = require('child_process');
const workerThreads = require('worker_threads');
const { MessageChannel } = workerThreads;
const { Readable, Writable } = require('stream');
const { syncBuiltinESMExports } = require('module');

function install(state, rpc) {
  const gateFetch = async (via, method, url, headers, body, latin1) => {
    // @forge/api 4 and older reach the platform with node-fetch: `https://jira/...`,
    // `https://confluence/...`, `https://stargate/...` with `authorization: Forge <provider>`
    // (shared/spec/forge-node-runtime.md §1.6). Those are platform calls, not egress.
    const product = productTarget(url, headers);
    if (product) {
      return rpc.call({ op: 'forge_fetch', target: product.target, path: product.path, method, headers, body, latin1 });
    }
    return rpc.call({ op: 'fetch', via, method, url, headers, body, latin1 });
  };

  // --- fetch --------------------------------------------------------------------------------
  globalThis.fetch = async function fetch(input, init = {}) {
    const req = input instanceof Request ? input : null;
    const url = req ? req.url : String(input instanceof URL ? input.href : input);
    const method = String(init.method || (req && req.method) || 'GET').toUpperCase();
    const headers = [];
    new Headers(init.headers || (req && req.headers) || {}).forEach((v, k) => headers.push([k, v]));
    let body = init.body !== undefined ? init.body : req && req.body ? await req.arrayBuffer() : null;
    let latin1 = false;
    if (body !== null && body !== undefined && typeof body !== 'string') {
      if (body instanceof URLSearchParams) body = body.toString();
      else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
        body = Buffer.from(body instanceof ArrayBuffer ? body : body.buffer, body.byteOffset || 0, body.byteLength).toString('latin1');
        latin1 = true;
      } else if (typeof body.arrayBuffer === 'function') {
        body = Buffer.from(await body.arrayBuffer()).toString('latin1');
        latin1 = true;
      } else body = String(body);
    }
    const reply = await gateFetch('fetch', method, url, headers, body ?? null, latin1);
    if (reply.error) throw egressError(reply.error);
    const nullBody = reply.status === 204 || reply.status === 304 || reply.status < 200;
    const res = new Response(nullBody ? null : reply.body, { status: reply.status, statusText: reply.statusText || '', headers: reply.headers });
    Object.defineProperty(res, 'url', { value: url });
    return res;
  };

  // --- http and https -------------------------------------------------------------------------
  for (const [mod, scheme] of [[http, 'http:'], [https, 'https:']]) {
    mod.request = (...args) => new GatedRequest(scheme, args, gateFetch);
    mod.get = (...args) => {
      const r = mod.request(...args);
      r.end();
      return r;
    };
  }

  // --- raw sockets and name lookups -----------------------------------------------------------
  const refuse = (what, detail) => {
    rpc.refused(what, detail);
    const why = /connect|dns/.test(what)
      ? 'a Forge app reaches the network only through fetch and the egress gate'
      : 'the platform runs no other processes or threads for an app';
    const e = new Error(`signoff-sim: ${what} (${detail}) refused: ${why}`);
    e.code = 'EACCES';
    e.syscall = what;
    return e;
  };
  const target = (args) => {
    const a = args[0];
    if (Array.isArray(a)) return target(a);
    if (a && typeof a === 'object') return a.path ? a.path : `${a.host || a.hostname || 'localhost'}:${a.port ?? ''}`;
    return args[1] && typeof args[1] === 'string' ? `${args[1]}:${a}` : `${'localhost'}:${a}`;
  };
  const refusedSocket = (what, args) => {
    const s = new Writable({ write(_c, _e, cb) { cb(); } });
    const err = refuse(what, target(args));
    for (const m of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref']) s[m] = () => s;
    process.nextTick(() => s.destroy(err));
    return s;
  };
  net.connect = net.createConnection = (...args) => refusedSocket('connect', args);
  net.Socket.prototype.connect = function connect(...args) {
    const err = refuse('connect', target(args));
    process.nextTick(() => this.destroy(err));
    return this;
  };
  tls.connect = (...args) => refusedSocket('tls.connect', args);
  http2.connect = (authority) => {
    throw refuse('http2.connect', String(authority));
  };
  const lookupNames = ['lookup', 'lookupService', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx', 'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt', 'reverse'];
  for (const name of lookupNames) {
    if (typeof dns[name] === 'function') {
      dns[name] = (host, ...rest) => {
        const cb = rest.pop();
        const err = refuse(`dns.${name}`, String(host));
        err.code = 'ENOTFOUND';
        if (typeof cb === 'function') process.nextTick(cb, err);
      };
    }
    if (dns.promises && typeof dns.promises[name] === 'function') {
      dns.promises[name] = async (host) => {
        const err = refuse(`dns.${name}`, String(host));
        err.code = 'ENOTFOUND';
        throw err;
      };
    }
  }
  const denied = (what) => (...args) => {
    const e = refuse(what, String(args[0]).slice(0, 200));
    e.code = 'ERR_ACCESS_DENIED';
    throw e;
  };
  for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
    childProcess[name] = denied(`child_process.${name}`);
  }
  installWorkers(state, rpc, refuse);
  syncBuiltinESMExports();
}

// --- worker threads -----------------------------------------------------------------------------
// A worker thread runs the app's code behind the same walls as the main thread: `worker.js`
// installs this file and `globals.js` in it before the app's script, and its platform calls,
// log lines and refusals travel to the main thread on a port of their own, where they count
// for the invocation it works for; at the end of that invocation it is frozen, or ended if it
// is busy (below). While a worker of the running invocation is alive, virtual time waits for it.
// Node's permission model (`--allow-worker`) and the network namespace cover workers too.
// How long the start of an invocation waits for an idle worker thread to say it is frozen.
const FREEZE_WAIT_MS = 20;

function installWorkers(state, rpc, refuse) {
  const path = require('path');
  const { AsyncResource } = require('async_hooks');
  const { fileURLToPath } = require('url');
  const RealWorker = workerThreads.Worker;
  const boot = `require(${JSON.stringify(path.join(__dirname, 'worker.js'))});`;
  const denied = (detail, why) => {
    const e = refuse('worker_threads.Worker', detail);
    e.code = 'ERR_ACCESS_DENIED';
    e.message = `signoff-sim: worker_threads.Worker (${detail}) refused: ${why}`;
    return e;
  };
  // A plain function, not a subclass: Node's own class must not be reachable from it
  // (`Object.getPrototypeOf`, `.prototype.constructor`, an instance's `constructor`).
  function Worker(filename, options) {
    if (!new.target) throw new TypeError("Class constructor Worker cannot be invoked without 'new'");
    // Only the running invocation starts workers: work an earlier one left behind does not.
    if (!state.active || rpc.current() !== state.inv) {
      throw denied(String(filename).slice(0, 200), 'the invocation that would own it has ended');
    }
    const o = { ...(options || {}) };
    let spec;
    if (o.eval) {
      spec = { kind: 'eval', code: String(filename) };
    } else {
      let file = filename;
      if (file instanceof URL) {
        if (file.protocol !== 'file:') throw denied(file.href.slice(0, 200), 'a worker runs a file of the app or a script');
        file = fileURLToPath(file);
      } else if (typeof file === 'string' && file.startsWith('file:')) {
        file = fileURLToPath(file);
      } else if (typeof file !== 'string' || !(path.isAbsolute(file) || file.startsWith('./') || file.startsWith('../'))) {
        // As Node: a path (absolute, or relative with ./ or ../) or a file: URL.
        throw denied(String(file).slice(0, 200), 'a worker runs a file of the app (a path or a file: URL) or a script');
      }
      spec = { kind: 'file', file: path.resolve(String(file)) };
    }
    if (Array.isArray(o.execArgv) && o.execArgv.length) {
      throw denied(o.execArgv.join(' ').slice(0, 200), 'Node options for a worker cannot be set on the platform');
    }
    // The worker's environment is the app's variables (a copy; SHARE_ENV too), never the
    // node process's own, and never with NODE_OPTIONS, which Node would run before the walls.
    const env = { ...(o.env && typeof o.env === 'object' ? o.env : process.env) };
    delete env.NODE_OPTIONS;
    const { port1, port2 } = new MessageChannel();
    const rng = Array.from(globalThis.crypto.getRandomValues(new Uint32Array(4)));
    if (rng.every((x) => x === 0)) rng[0] = 1;
    // [0]: 1 while the worker may run, 0 from the end of an invocation until the next one;
    // [1]: the worker's answer to a freeze (0 none yet, 1 frozen, 2 busy).
    const gate = new Int32Array(new SharedArrayBuffer(8));
    Atomics.store(gate, 0, 1);
    const signoff = {
      ...spec,
      port: port2,
      gate: gate.buffer,
      inv: state.inv,
      now: state.now,
      started: state.started,
      deadline: state.deadline,
      rng,
      base: state.base,
      runtime: state.rawRuntime,
      env,
    };
    const worker = new RealWorker(boot, {
      ...o,
      eval: true,
      execArgv: undefined,
      env,
      workerData: { __signoff: signoff, user: o.workerData },
      transferList: [...(o.transferList || []), port2],
    });
    // `scope`: the async context of the invocation the worker works for (the one that
    // started it, then each one it is thawed for): its calls are that invocation's.
    const me = { inv: state.inv, worker, port: port1, gate, scope: new AsyncResource('signoff-worker') };
    state.workers.add(me);
    // A worker whose work is done exits, maybe before the invocation ends: what it posted
    // last is taken first (see `drain`).
    worker.once('exit', () => {
      drain(me, false);
      state.workers.delete(me);
    });
    me.handle = (m) => {
      if (!m || typeof m !== 'object') return;
      if (!state.active || state.inv !== me.inv) {
        // Between invocations, or a message of an earlier one's: frozen work, never answered.
        if (m.t === 'call' || m.t === 'log') rpc.late();
        return;
      }
      me.scope.runInAsyncScope(() => {
        if (m.t === 'call') {
          rpc.call(m.frame).then((reply) => port1.postMessage({ t: 'reply', id: m.id, reply, now: state.now }));
        } else if (m.t === 'log') {
          rpc.log(String(m.level), String(m.message));
        } else if (m.t === 'refused') {
          rpc.refused(String(m.what), String(m.detail));
        }
      });
    };
    port1.on('message', me.handle);
    port1.unref();
    return worker;
  }
  Worker.prototype = RealWorker.prototype;
  Object.defineProperty(RealWorker.prototype, 'constructor', { value: Worker, writable: true, configurable: true });
  workerThreads.Worker = Worker;

  // Just before an invocation ends: what its workers posted on their ports and the main
  // thread has not read yet (a worker's port and its `parentPort` are separate queues, so
  // the worker's answer that ends the invocation can overtake a log line or a refusal it
  // sent first) still belongs to the invocation, and is taken now, in order.
  // `ending`: a platform call taken now would outlive the invocation, so it is late, as any
  // call after the end; from a worker that exited during the invocation it is served.
  function drain(w, ending) {
    for (let r = workerThreads.receiveMessageOnPort(w.port); r; r = workerThreads.receiveMessageOnPort(w.port)) {
      const m = r.message;
      if (ending && m && m.t === 'call') rpc.late();
      else w.handle(m);
    }
  }
  state.drainWorkers = () => {
    for (const w of state.workers) drain(w, true);
  };

  // At the end of an invocation its worker threads are frozen, as the platform freezes the
  // whole container: a worker with nothing pending (no timer, no platform call) blocks until
  // the next invocation, which it then works for (warm, as on the platform). One that is
  // busy (running code, or with a timer or a call pending) is ended when the next
  // invocation starts; what it calls in between is refused as late, never answered, as the
  // ended invocation's other pending work never resumes.
  state.freezeWorkers = () => {
    for (const w of state.workers) {
      Atomics.store(w.gate, 1, 0);
      Atomics.store(w.gate, 0, 0);
      w.port.postMessage({ t: 'freeze' });
    }
  };
  // At the start of the next invocation (in its async context): the frozen workers work for
  // it; the busy ones are ended. An idle worker took its freeze long before; the short wait
  // covers a worker thread the OS has not scheduled since.
  state.thawWorkers = () => {
    for (const w of state.workers) {
      if (Atomics.load(w.gate, 1) === 0) Atomics.wait(w.gate, 1, 0, FREEZE_WAIT_MS);
      if (Atomics.load(w.gate, 1) !== 1) {
        state.workers.delete(w);
        w.worker.terminate();
        continue;
      }
      // Frozen, it posts nothing more: what it posted after the last invocation ended and
      // Node has not read yet is that invocation's late work, never this one's.
      drain(w, false);
      w.inv = state.inv;
      w.scope = new AsyncResource('signoff-worker');
      const rng = Array.from(globalThis.crypto.getRandomValues(new Uint32Array(4)));
      if (rng.every((x) => x === 0)) rng[0] = 1;
      w.port.postMessage({
        t: 'thaw', inv: state.inv, now: state.now, started: state.started, deadline: state.deadline, rng, runtime: state.rawRuntime,
      });
      Atomics.store(w.gate, 0, 1);
      Atomics.notify(w.gate, 0);
    }
  };
}

const PRODUCT_HOSTS = new Set(['jira', 'confluence', 'stargate', 'bitbucket']);

function productTarget(url, headers) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (!PRODUCT_HOSTS.has(u.hostname)) return null;
  const auth = headers.find(([k]) => k.toLowerCase() === 'authorization');
  const m = auth && /^Forge (app|user|none)\b/.exec(auth[1]);
  if (!m) return null;
  return { target: { type: 'fpp', provider: m[1], remote: u.hostname }, path: u.pathname + u.search };
}

function egressError(error) {
  const e = new Error(error.message);
  e.name = error.code;
  e.code = error.code;
  if (error.code === 'REQUEST_EGRESS_ALLOWLIST_ERR') e.status = 403;
  return e;
}

// An `http.ClientRequest` look-alike: it collects the body, sends one request to the gate on
// `end()`, and answers with an `IncomingMessage` look-alike (statusCode, headers, a stream).
class GatedRequest extends Writable {
  constructor(scheme, args, gateFetch) {
    // Not destroyed when the body is written: the gate's answer (or refusal) comes later.
    super({ autoDestroy: false });
    let url = null;
    let options = {};
    let cb = null;
    for (const a of args) {
      if (typeof a === 'string') url = new URL(a);
      else if (a instanceof URL) url = a;
      else if (typeof a === 'function') cb = a;
      else if (a && typeof a === 'object') options = a;
    }
    const protocol = options.protocol || (url ? url.protocol : scheme);
    const host = options.hostname || (options.host ? String(options.host).replace(/:\d+$/, '') : url ? url.hostname : 'localhost');
    const port = options.port || (url && url.port) || '';
    const path = options.path || (url ? url.pathname + url.search : '/');
    this.method = String(options.method || 'GET').toUpperCase();
    this.host = host;
    this.path = path;
    this.protocol = protocol;
    this._url = `${protocol}//${host}${port ? `:${port}` : ''}${path}`;
    this._headers = new Map();
    for (const [k, v] of Object.entries(options.headers || {})) this.setHeader(k, v);
    this._chunks = [];
    this._gateFetch = gateFetch;
    this.aborted = false;
    this.reusedSocket = false;
    if (cb) this.once('response', cb);
  }
  setHeader(name, value) { this._headers.set(String(name).toLowerCase(), [name, Array.isArray(value) ? value.join(', ') : String(value)]); return this; }
  getHeader(name) { const h = this._headers.get(String(name).toLowerCase()); return h ? h[1] : undefined; }
  getHeaders() { return Object.fromEntries([...this._headers.values()].map(([k, v]) => [k.toLowerCase(), v])); }
  getHeaderNames() { return [...this._headers.keys()]; }
  hasHeader(name) { return this._headers.has(String(name).toLowerCase()); }
  removeHeader(name) { this._headers.delete(String(name).toLowerCase()); }
  flushHeaders() {}
  setTimeout(_ms, cb) { if (cb) this.once('timeout', cb); return this; }
  setNoDelay() {}
  setSocketKeepAlive() {}
  abort() { this.aborted = true; this.destroy(); }
  _write(chunk, enc, cb) {
    this._chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, enc));
    cb();
  }
  _final(cb) {
    const body = Buffer.concat(this._chunks);
    const headers = [...this._headers.values()];
    this._gateFetch(this.protocol.replace(':', ''), this.method, this._url, headers, body.length ? body.toString('latin1') : null, true).then(
      (reply) => {
        if (this.aborted) return;
        if (reply.error) {
          this.destroy(egressError(reply.error));
          return;
        }
        const res = new Readable({ read() {} });
        res.statusCode = reply.status;
        res.statusMessage = reply.statusText || http.STATUS_CODES[reply.status] || '';
        res.httpVersion = '1.1';
        res.httpVersionMajor = 1;
        res.httpVersionMinor = 1;
        res.headers = {};
        res.rawHeaders = [];
        for (const [k, v] of reply.headers) {
          const key = k.toLowerCase();
          if (key === 'content-encoding' || key === 'transfer-encoding') continue;
          res.headers[key] = res.headers[key] ? `${res.headers[key]}, ${v}` : v;
          res.rawHeaders.push(k, v);
        }
        res.trailers = {};
        res.complete = true;
        res.req = this;
        res.setTimeout = () => res;
        if (reply.body) res.push(Buffer.from(reply.body, 'utf8'));
        res.push(null);
        this.res = res;
        this.emit('response', res);
      },
      (err) => this.destroy(err),
    );
    cb();
  }
}

module.exports = { install };
