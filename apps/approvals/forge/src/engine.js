// The main thread's side of the engine: starts the engine's worker thread (once per
// container: it stays warm between invocations, and is started again if it is gone), runs
// one export at a time on it and serves the platform imports it asks for.

import { MessageChannel, Worker } from 'node:worker_threads';
import source from '../engine/worker-source.js';
import { coreModules } from '../engine/core-wasm.js';
import { serve } from './platform.js';

let compiled; // Promise<{[name]: WebAssembly.Module}>: compiled once per process
let engine; // the running worker, or undefined
let queue = Promise.resolve(); // one export at a time

function compile() {
  compiled ??= (async () => {
    const out = {};
    for (const [name, base64] of Object.entries(coreModules)) {
      out[name] = await WebAssembly.compile(Buffer.from(base64, 'base64'));
    }
    return out;
  })();
  return compiled;
}

async function start() {
  const modules = await compile();
  const { port1, port2 } = new MessageChannel();
  const ctrl = new SharedArrayBuffer(16);
  const worker = new Worker(source, {
    eval: true,
    workerData: { port: port2, ctrl, modules },
    transferList: [port2],
  });
  const e = { worker, port: port1, ctrl: new Int32Array(ctrl), inbox: [], waiting: null, gone: false };
  const deliver = (m) => {
    if (e.waiting) {
      const w = e.waiting;
      e.waiting = null;
      w(m);
    } else {
      e.inbox.push(m);
    }
  };
  port1.on('message', deliver);
  worker.on('error', (err) => deliver({ t: 'crash', message: String((err && err.stack) || err) }));
  worker.on('exit', (code) => {
    e.gone = true;
    if (engine === e) engine = undefined;
    deliver({ t: 'crash', message: `the engine's worker stopped (exit code ${code})` });
  });
  // The worker must not keep an idle container's event loop alive.
  worker.unref();
  port1.unref();
  return e;
}

function next(e) {
  if (e.inbox.length) return Promise.resolve(e.inbox.shift());
  return new Promise((resolve) => {
    e.waiting = resolve;
  });
}

/// An export failed with the contract's `platform-error`: thrown to the platform with its
/// code, as the simulator's wasm host reports a component's error.
export class EngineError extends Error {
  constructor({ code, message }) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

async function run(name, args, ctx) {
  for (let attempt = 1; ; attempt += 1) {
    if (!engine || engine.gone) {
      engine = await start();
    }
    const e = engine;
    const out = await runOn(e, name, args, ctx);
    if (out.t === 'done') {
      if (out.err) throw new EngineError(out.err);
      return out.ok;
    }
    if (engine === e) engine = undefined;
    e.worker.terminate();
    // A worker that was already stopping (its container froze, or the simulator ended it
    // with the invocation before) answers nothing: when the export made no platform call
    // yet, nothing happened, and it runs once more on a new worker.
    if (out.served === 0 && attempt === 1) continue;
    const err = new Error(`the engine failed: ${out.message}`);
    err.name = 'EngineTrap';
    throw err;
  }
}

async function runOn(e, name, args, ctx) {
  let served = 0;
  e.port.ref();
  try {
    e.port.postMessage({ t: 'export', name, args, ctx });
    for (;;) {
      // Awaited here, in the invocation's own async context: the platform counts each
      // call for the invocation that made it.
      const m = await next(e);
      if (m.t === 'import') {
        served += 1;
        const reply = await serve(m.name, m.args);
        e.port.postMessage(reply);
        Atomics.store(e.ctrl, 0, 1);
        Atomics.notify(e.ctrl, 0);
      } else if (m.t === 'log') {
        const log = console[m.level] ?? console.log;
        log(m.message);
      } else if (m.t === 'done') {
        return m;
      } else if (m.t === 'crash') {
        return { ...m, served };
      }
    }
  } finally {
    e.port.unref();
  }
}

/// Runs the component's export `name` with `args` for an invocation whose context is `ctx`
/// (the contract's `invocation-context`); resolves to its result.
export function callExport(name, args, ctx) {
  const result = queue.then(() => run(name, args, ctx));
  queue = result.catch(() => {});
  return result;
}
