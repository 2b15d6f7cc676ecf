// Design B: synchronous calls from a worker thread, served asynchronously by the main thread.
//
// ctrl (Int32Array over a SharedArrayBuffer):
//   [0] REQ  0 idle, 1 a request is waiting          (worker sets, main clears)
//   [1] RESP 0 none, 1 the reply is ready            (main sets, worker clears)
//   [2] reply length in bytes (mode 'sab'), [3] request length in bytes (mode 'sab')
// mode 'sab': request and reply are JSON text in the shared buffer (data area after 16 bytes);
//             the main thread learns of a request through Atomics.waitAsync on ctrl[0].
// mode 'msg': request and reply travel as structured clones over a MessagePort; the worker
//             blocks in Atomics.wait on ctrl[1] and then takes the reply with
//             receiveMessageOnPort (no size limit, BigInt and undefined survive).
import { receiveMessageOnPort } from 'node:worker_threads';

const enc = new TextEncoder();
const dec = new TextDecoder();
const HDR = 16;
// JSON with BigInt and undefined (jco uses BigInt for u64 and undefined for none).
const replacer = (k, v) => (typeof v === 'bigint' ? { $big: v.toString() } : v === undefined ? { $undef: 1 } : v);
const reviver = (k, v) => (v && typeof v === 'object' ? ('$big' in v ? BigInt(v.$big) : '$undef' in v ? undefined : v) : v);
export const toJSON = (x) => JSON.stringify(x, replacer);
export const fromJSON = (s) => JSON.parse(s, reviver);

export function newChannel(bytes = 4 << 20) {
  return new SharedArrayBuffer(HDR + bytes);
}

// Worker side: returns call(name, args) -> reply value, blocking the worker's thread.
export function blockingCaller(sab, mode, port) {
  const ctrl = new Int32Array(sab, 0, 4);
  const data = new Uint8Array(sab, HDR);
  if (mode === 'sab') {
    return function call(name, args) {
      const { written, read } = enc.encodeInto(toJSON([name, args]), data);
      if (read === undefined || written >= data.length) throw new Error('request larger than the channel');
      Atomics.store(ctrl, 3, written);
      Atomics.store(ctrl, 1, 0);
      Atomics.store(ctrl, 0, 1);
      Atomics.notify(ctrl, 0);
      while (Atomics.load(ctrl, 1) === 0) Atomics.wait(ctrl, 1, 0);
      const len = Atomics.load(ctrl, 2);
      // TextDecoder refuses views of a SharedArrayBuffer: copy out first.
      return fromJSON(dec.decode(data.slice(0, len)));
    };
  }
  return function call(name, args) {
    Atomics.store(ctrl, 1, 0);
    port.postMessage([name, args]);
    while (Atomics.load(ctrl, 1) === 0) Atomics.wait(ctrl, 1, 0);
    return receiveMessageOnPort(port).message;
  };
}

// Main side: serves requests with an async handler until stop() is called.
export function serve(sab, mode, port, handler) {
  const ctrl = new Int32Array(sab, 0, 4);
  const data = new Uint8Array(sab, HDR);
  let stopped = false;
  const reply = () => { Atomics.store(ctrl, 1, 1); Atomics.notify(ctrl, 1); };
  if (mode === 'sab') {
    (async () => {
      while (!stopped) {
        const w = Atomics.waitAsync(ctrl, 0, 0);
        if (w.async) {
          const r = await w.value;
          if (stopped) break;
        }
        if (Atomics.load(ctrl, 0) !== 1) continue;
        const len = Atomics.load(ctrl, 3);
        const [name, args] = fromJSON(dec.decode(data.slice(0, len)));
        Atomics.store(ctrl, 0, 0);
        const out = await handler(name, args);
        const { written } = enc.encodeInto(toJSON(out), data);
        Atomics.store(ctrl, 2, written);
        reply();
      }
    })();
    return { stop() { stopped = true; Atomics.notify(ctrl, 0); } };
  }
  port.on('message', async ([name, args]) => {
    const out = await handler(name, args);
    port.postMessage(out);
    reply();
  });
  return { stop() { stopped = true; port.close(); } };
}
