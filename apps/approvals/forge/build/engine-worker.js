// The engine's thread: the approval component (jco's JavaScript plus core wasm) runs here,
// and each of its synchronous platform imports asks the main thread, which makes the
// asynchronous call with the @forge/* packages, and blocks on `Atomics.wait` until the
// answer is there (design B of apps/approvals/forge-spike/README.md).
//
// `cargo xtask package` bundles this file, jco's output and the WASI shims into one script
// (`engine/worker-source.js`), which the main thread starts with `new Worker(source,
// {eval: true})`: no file of the package is read at run time, whatever bundler packs it.
//
// Protocol, on the MessagePort the main thread gave (`workerData.port`):
//   main -> worker  {t: 'export', name, args, ctx}        run one export
//   worker -> main  {t: 'import', name, args}             then Atomics.wait on ctrl[0]
//   main -> worker  {ok} | {err}                          ctrl[0] = 1, notify
//   worker -> main  {t: 'log', level, message}            no answer
//   worker -> main  {t: 'done', ok} | {t: 'done', err}    the export's result
//   worker -> main  {t: 'crash', message}                 a trap: the worker is done for

import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { instantiate } from 'jco-output/approvals.js';
// preview2-shim's browser build of WASI: console for stdout and stderr, `crypto` for
// randomness, no helper threads (its Node build starts a worker of its own for I/O).
import * as cli from 'wasi-shim/cli.js';
import * as io from 'wasi-shim/io.js';
import * as random from 'wasi-shim/random.js';

const { port, ctrl: sab, modules } = workerData;
const ctrl = new Int32Array(sab);
let ctx = null;

function call(name, args) {
  Atomics.store(ctrl, 0, 0);
  port.postMessage({ t: 'import', name, args });
  while (Atomics.load(ctrl, 0) === 0) Atomics.wait(ctrl, 0, 0);
  const m = receiveMessageOnPort(port);
  if (!m) throw new Error(`no answer to ${name}`);
  if (m.message.err) throw { payload: m.message.err };
  return m.message.ok;
}

const bridged = (iface, fns) =>
  Object.fromEntries(fns.map(([js, wit]) => [js, (...args) => call(`${iface}.${wit}`, args)]));

const forge = {
  context: {
    // The invocation's context, as the main thread read it when the export began: the
    // engine reads it often, and it does not change during an invocation.
    current: () => ctx,
  },
  kvs: bridged('kvs', [
    ['get', 'get'], ['set', 'set'], ['delete', 'delete'], ['query', 'query'],
    ['transact', 'transact'], ['getSecret', 'get-secret'], ['setSecret', 'set-secret'],
  ]),
  fetch: bridged('fetch', [['fetch', 'fetch']]),
  product: bridged('product', [
    ['getPage', 'get-page'], ['getProperty', 'get-property'], ['setProperty', 'set-property'],
    ['getContentState', 'get-content-state'], ['setContentState', 'set-content-state'],
  ]),
  log: {
    write: (level, message) => port.postMessage({ t: 'log', level, message }),
  },
  types: {},
};

const v = '0.2.12';
const imports = {
  'signoff:forge/context': forge.context,
  'signoff:forge/kvs': forge.kvs,
  'signoff:forge/fetch': forge.fetch,
  'signoff:forge/product': forge.product,
  'signoff:forge/log': forge.log,
  'signoff:forge/types': forge.types,
  'wasi:cli/environment': cli.environment,
  'wasi:cli/exit': cli.exit,
  'wasi:cli/stderr': cli.stderr,
  'wasi:cli/stdin': cli.stdin,
  'wasi:cli/stdout': cli.stdout,
  'wasi:cli/terminal-input': cli.terminalInput,
  'wasi:cli/terminal-output': cli.terminalOutput,
  'wasi:cli/terminal-stderr': cli.terminalStderr,
  'wasi:cli/terminal-stdin': cli.terminalStdin,
  'wasi:cli/terminal-stdout': cli.terminalStdout,
  'wasi:io/error': io.error,
  'wasi:io/poll': io.poll,
  'wasi:io/streams': io.streams,
  'wasi:random/insecure-seed': random.insecureSeed,
  'wasi:random/random': random.random,
};
// jco's output names the imports with their versions in its types and without in its code:
// give both.
for (const k of Object.keys(imports)) imports[`${k}@${k.startsWith('wasi:') ? v : '0.1.0'}`] = imports[k];

const ready = instantiate((name) => {
  const m = modules[name];
  if (!m) throw new Error(`the package has no core module ${name}`);
  return m;
}, imports);

const crash = (e) => {
  port.postMessage({ t: 'crash', message: String((e && e.stack) || e) });
};
ready.catch(crash);

port.on('message', async (m) => {
  if (!m || m.t !== 'export') return;
  let root;
  try {
    root = await ready;
  } catch {
    return; // reported above
  }
  ctx = m.ctx;
  try {
    port.postMessage({ t: 'done', ok: root[m.name](...m.args) });
  } catch (e) {
    if (e && typeof e === 'object' && 'payload' in e) {
      port.postMessage({ t: 'done', err: e.payload });
    } else {
      // A trap (`unreachable`, out of bounds): the instance cannot be trusted any more.
      crash(e);
    }
  } finally {
    ctx = null;
  }
});
