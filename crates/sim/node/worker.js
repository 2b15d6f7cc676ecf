'use strict';
// The start of a worker thread that an app's code made (egress.js wraps
// `worker_threads.Worker`): the same walls as on the main thread (`globals.js`, `egress.js`),
// with a platform channel that goes through the main thread on the port it was given, then
// the app's script. The worker sees its own `workerData`, the invocation's virtual clock
// (moved on by each answer from the platform and by its own timers) and randomness seeded from
// the invocation's.

const workerThreads = require('worker_threads');
const { pathToFileURL } = require('url');
const globals = require('./globals');
const egress = require('./egress');

const s = workerThreads.workerData.__signoff;
workerThreads.workerData = workerThreads.workerData.user;
const port = s.port;
const gate = new Int32Array(s.gate);
// The app's variables (the worker was started with them; this keeps them a plain object, as
// on the main thread).
process.env = s.env;

const state = {
  inv: s.inv,
  active: true,
  returned: false,
  now: s.now,
  started: s.started,
  deadline: s.deadline,
  rng: s.rng,
  base: s.base,
  rawRuntime: s.runtime,
  runtime: undefined,
  inFlight: 0,
  timers: null,
  workers: new Set(),
  onIdle: () => {},
  // Past the invocation's deadline on virtual time, a worker's timers stop: the invocation
  // that started it has timed out.
  timedOut: () => state.timers.clear(),
};

let nextCall = 1;
const pending = new Map();
// The end of the invocation this worker works for: with nothing pending (no timer, no
// platform call), the thread blocks until the next invocation thaws it, as the platform
// freezes a container between invocations; otherwise it says "busy" and is ended.
function freeze() {
  if (state.inFlight > 0 || state.timers.size > 0) {
    Atomics.store(gate, 1, 2);
    Atomics.notify(gate, 1);
    return;
  }
  state.active = false;
  Atomics.store(gate, 1, 1);
  Atomics.notify(gate, 1);
  while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0);
  // The thaw message was posted before the gate opened.
  for (;;) {
    const r = workerThreads.receiveMessageOnPort(port);
    if (!r) break;
    const t = r.message;
    if (t && t.t === 'thaw') {
      state.inv = t.inv;
      state.now = t.now;
      state.started = t.started;
      state.deadline = t.deadline;
      state.rng = t.rng;
      state.rawRuntime = t.runtime;
      state.runtime = undefined;
      state.active = true;
      break;
    }
  }
}

port.on('message', (m) => {
  if (m && m.t === 'freeze') {
    freeze();
    return;
  }
  if (!m || m.t !== 'reply') return;
  const resolve = pending.get(m.id);
  if (!resolve) return;
  pending.delete(m.id);
  state.inFlight -= 1;
  if (typeof m.now === 'number') state.now = Math.max(state.now, m.now);
  if (state.inFlight === 0) port.unref();
  resolve(m.reply);
  if (state.inFlight === 0) state.onIdle();
});
port.unref();

const rpc = {
  call(frame) {
    const id = nextCall++;
    state.inFlight += 1;
    port.ref();
    port.postMessage({ t: 'call', id, frame });
    return new Promise((resolve) => pending.set(id, resolve));
  },
  log(level, message) {
    port.postMessage({ t: 'log', level, message });
  },
  refused(what, detail) {
    port.postMessage({ t: 'refused', what, detail });
  },
  late() {},
  // A worker thread works for the invocation that started it.
  current() {
    return state.inv;
  },
};

globals.install(state, rpc);
egress.install(state, rpc);

if (s.kind === 'eval') {
  // As `new Worker(code, { eval: true })` runs it: a script with `require` at hand.
  (0, eval)(s.code);
} else if (s.file.endsWith('.mjs')) {
  import(pathToFileURL(s.file).href);
} else {
  require(s.file);
}
