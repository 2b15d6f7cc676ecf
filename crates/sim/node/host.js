'use strict';
// signoff-sim's Node worker: one process runs one installation's app, one invocation at a
// time, and stays warm between invocations as a platform worker does. The simulator sends
// `invoke` frames and answers `call` frames; this file loads the app's handler modules (as they
// are, with their own `@forge/*` packages), calls them with the platform's arguments, and
// reports how each invocation ended. The rules (limits, the gate, storage, Confluence) are the
// simulator's, in Rust.

const { AsyncLocalStorage } = require('async_hooks');
const { pathToFileURL } = require('url');
const channel = require('./channel');
const globals = require('./globals');
const egress = require('./egress');

const als = new AsyncLocalStorage();
const realExit = process.exit.bind(process);
const state = {
  inv: 0,
  active: false,
  now: 0,
  started: 0,
  deadline: 0,
  rng: [1, 2, 3, 4],
  // What the simulator sends once: the installation's part of `__forge_runtime__`, and each
  // function's handler (file, module, export).
  base: undefined,
  handlers: new Map(),
  runtime: undefined,
  rawRuntime: undefined,
  inFlight: 0,
  late: 0,
  // The worker threads the app started, by the invocation that started them.
  workers: new Set(),
  timers: null,
  onIdle: () => {},
  timedOut: () => finish(state.inv, { ok: false, timeout: true }),
};

let nextCall = 1;
const pending = new Map();
const link = channel.open(onFrame, () => realExit(0));

const rpc = {
  call(frame) {
    const ctx = als.getStore();
    if (!state.active || !ctx || ctx.inv !== state.inv) {
      // Work an invocation left running after it ended is frozen, as the platform freezes a
      // finished invocation's sandbox: its calls are counted and never answered.
      state.late += 1;
      return new Promise(() => {});
    }
    const id = nextCall++;
    state.inFlight += 1;
    link.send({ t: 'call', id, inv: state.inv, ...frame });
    return new Promise((resolve) => pending.set(id, resolve));
  },
  log(level, message) {
    if (!state.active) {
      state.late += 1;
      return;
    }
    link.send({ t: 'log', inv: state.inv, level, message });
  },
  refused(what, detail) {
    if (state.active) link.send({ t: 'refused', inv: state.inv, what, detail });
  },
  // Work of an ended invocation that was dropped.
  late() {
    state.late += 1;
  },
  // The invocation the running code belongs to.
  current() {
    const ctx = als.getStore();
    return ctx ? ctx.inv : undefined;
  },
};

globals.install(state, rpc);
egress.install(state, rpc);
// Timer callbacks run in the async context of the code that set them, so a call they make is
// judged as that invocation's.
const wrapTimers = () => {
  for (const name of ['setTimeout', 'setInterval']) {
    const inner = globalThis[name];
    globalThis[name] = (fn, delay, ...args) => {
      const ctx = als.getStore();
      if (typeof fn !== 'function' || !ctx) return inner(fn, delay, ...args);
      return inner((...a) => als.run(ctx, () => fn(...a)), delay, ...args);
    };
  }
};
wrapTimers();

process.exit = (code) => {
  link.send({ t: 'exit', inv: state.inv, code: Number(code ?? process.exitCode ?? 0) });
  state.active = false;
  setImmediate(() => realExit(0));
  // Code after process.exit() must not run, as with the real one.
  throw Object.assign(new Error('process.exit'), { name: 'SignoffSimExit' });
};
process.abort = () => process.exit(134);
process.on('uncaughtException', (err) => crashed(err, 'uncaught exception'));
process.on('unhandledRejection', (err) => crashed(err, 'unhandled rejection'));

function crashed(err, how) {
  if (err && err.name === 'SignoffSimExit') return;
  if (!state.active) {
    state.late += 1;
    return;
  }
  finish(state.inv, { ok: false, error: describe(err), crash: how });
}

function onFrame(frame) {
  if (frame.t === 'reply') {
    const resolve = pending.get(frame.id);
    if (!resolve) return;
    pending.delete(frame.id);
    state.inFlight -= 1;
    resolve(frame);
    if (state.inFlight === 0) {
      if (state.returned) settle();
      else state.onIdle();
    }
  } else if (frame.t === 'invoke') {
    invoke(frame);
  }
}

async function invoke(f) {
  state.inv = f.inv;
  state.active = true;
  state.returned = false;
  state.outcome = null;
  state.now = f.now;
  state.started = f.now;
  state.deadline = f.now + f.timeoutMs;
  state.rng = f.seed.map((x) => x >>> 0);
  state.timers.clear();
  if (f.base) {
    state.base = f.base.runtime;
    // As in a warm platform container, the environment is set up once and what the app
    // changes in it stays for the next invocations (of this installation only).
    process.env = f.base.env || {};
  }
  if (f.handler) state.handlers.set(f.function, f.handler);
  const h = state.handlers.get(f.function);
  // `__forge_runtime__` is made when the app's code first reads it (most invocations of a
  // resolver never do).
  state.rawRuntime = f.runtime;
  state.runtime = undefined;
  const ctx = { inv: f.inv };
  let outcome;
  try {
    // Warm worker threads, frozen since the last invocation, work for this one now.
    if (state.workers.size) als.run(ctx, state.thawWorkers);
    // A module already loaded is taken as it is: no promise, no extra turn of the event loop
    // (a first load runs the module's top-level code in the invocation's context).
    let mod = modules.get(h.file);
    if (mod === undefined) mod = await als.run(ctx, () => load(h.file));
    const fn = pick(mod, h.export);
    if (typeof fn !== 'function') {
      const e = new Error(`${h.handler}: the module ${h.module} has no exported function \`${h.export}\``);
      e.name = 'HANDLER_NOT_FOUND';
      throw e;
    }
    const value = await als.run(ctx, () => fn(...f.args));
    outcome = { ok: true, value: value === undefined ? undefined : JSON.stringify(value) };
  } catch (err) {
    if (err && err.name === 'SignoffSimExit') return;
    outcome = { ok: false, error: describe(err) };
  }
  // The invocation ends once the handler has returned and every platform call made so far
  // is answered (what the continuations of those answers call at once still belongs to it);
  // timers left set do not run any more.
  state.returned = true;
  state.outcome = outcome;
  settle();
}

// Runs after every promise continuation queued so far (and those they queue) has run: a
// tick callback queued from a microtask waits until the microtask queue is empty. (Queued
// straight from a socket callback, it would run before the continuations: hence the
// microtask first.)
function settle() {
  if (!state.active || state.inFlight > 0) return;
  const inv = state.inv;
  queueMicrotask(() =>
    process.nextTick(() => {
      if (state.inv === inv && state.inFlight === 0 && state.active) finish(inv, state.outcome);
    }),
  );
}

// The app's built modules are CommonJS bundles: `require` loads each once and keeps it. An
// ES module (should one be handed over) goes through `import()`, also once.
const modules = new Map();
async function load(file) {
  let mod = modules.get(file);
  if (mod === undefined) {
    mod = file.endsWith('.cjs') || file.endsWith('.js') ? require(file) : await import(pathToFileURL(file).href);
    modules.set(file, mod);
  }
  return mod;
}

function finish(inv, outcome) {
  if (!state.active || inv !== state.inv) return;
  if (state.workers.size) state.drainWorkers();
  state.active = false;
  state.timers.clear();
  // The invocation's worker threads are frozen with it (egress.js): idle ones stay warm for
  // the next invocation, busy ones end, as the invocation's other pending work never resumes.
  state.freezeWorkers();
  // Calls refused since the last report: made by work earlier invocations left pending.
  link.send({ t: 'done', inv, late: state.late, ...outcome });
  state.late = 0;
}

function pick(mod, name) {
  if (mod && typeof mod[name] === 'function') return mod[name];
  const d = mod && mod.default;
  if (d && typeof d[name] === 'function') return d[name];
  return undefined;
}

function describe(err) {
  if (err instanceof Error) {
    const code = typeof err.code === 'string' ? err.code : undefined;
    return { name: String(err.name || 'Error'), code, message: String(err.message), stack: String(err.stack || '').split('\n').slice(0, 12).join('\n') };
  }
  let text;
  try {
    text = JSON.stringify(err);
  } catch {
    text = String(err);
  }
  return { name: 'Error', message: `a non-Error value was thrown: ${text}`, stack: '' };
}

link.send({ t: 'hello', pid: process.pid, node: process.version });
