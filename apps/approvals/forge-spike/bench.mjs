// Microbenchmark of design B: one blocking import round trip from a worker thread to the
// main thread, which answers after an asynchronous step.
//
//   node bench.mjs [--n 20000] [--warm 2000] [--fetch-n 5000]
//
// For each (channel mode, main-side latency, reply size) it starts a worker that makes
// `n` timed calls (after `warm` untimed ones) and reports per-call p50/p99/mean in
// microseconds. Baselines: a direct synchronous call in the worker, the same with the
// JSON encode/decode the 'sab' channel does, and the async step awaited directly on the
// main thread (what plain JS on Forge would pay for it).
import { Worker, MessageChannel, isMainThread, workerData, parentPort } from 'node:worker_threads';
import http from 'node:http';
import { newChannel, blockingCaller, serve, toJSON, fromJSON } from './bridge.mjs';

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };

function stats(t) {
  const a = Float64Array.from(t).sort();
  const q = (p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
  const mean = a.reduce((x, y) => x + y, 0) / a.length;
  return { n: a.length, p50: q(0.5), p99: q(0.99), mean };
}
const fmt = (s) => `p50 ${s.p50.toFixed(2).padStart(7)}  p99 ${s.p99.toFixed(2).padStart(7)}  mean ${s.mean.toFixed(2).padStart(7)}  (n=${s.n})`;

const values = new Map();
const value = (size) => values.get(size) ?? (values.set(size, JSON.stringify({ v: 'x'.repeat(Math.max(0, size - 8)) })), values.get(size));
// The "platform" answer, synchronously: a kvs.get returning a value of `size` bytes.
const answer = (size) => (name, args) => (name === 'kvs.get' ? value(size) : undefined);

if (!isMainThread) {
  const { sab, mode, port, n, warm, size, baseline, gap } = workerData;
  // Busy work between calls (untimed), as the wasm guest computes between imports.
  const spin = (us) => { const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000)); while (process.hrtime.bigint() < end); };
  const sync = answer(size);
  let f;
  if (baseline === 'direct') f = sync;
  else if (baseline === 'direct+json') f = (name, args) => { const [m, a] = fromJSON(toJSON([name, args])); return fromJSON(toJSON(sync(m, a))); };
  else f = blockingCaller(sab, mode, port);
  const key = 'signoff:stream:page-1000:head';
  let sink = 0;
  for (let i = 0; i < warm; i++) sink += f('kvs.get', [key]).length;
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (gap) spin(gap);
    const t0 = process.hrtime.bigint();
    const r = f('kvs.get', [key]);
    t[i] = Number(process.hrtime.bigint() - t0) / 1000;
    sink += r.length;
  }
  parentPort.postMessage({ t, sink });
} else {
  const n = arg('--n', 20000), warm = arg('--warm', 2000), fetchN = arg('--fetch-n', 5000), gap = arg('--gap', 0);
  const only = process.argv.includes('--gap-only');
  // A local HTTP server for the 'fetch' latency: a real await fetch() over loopback.
  const server = http.createServer((req, res) => { res.end(value(100)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/`;
  const latencies = {
    // Promise already settled: latency 0, one microtask hop.
    zero: async () => { await Promise.resolve(); },
    // One macrotask hop.
    immediate: async () => { await new Promise((r) => setImmediate(r)); },
    // A real request over loopback (undici fetch), body read.
    fetch: async () => { await (await fetch(url)).text(); },
  };

  async function runWorker(opts) {
    const sab = newChannel();
    const { port1, port2 } = new MessageChannel();
    const lat = latencies[opts.latency];
    const sync = answer(opts.size);
    const srv = opts.baseline ? null : serve(sab, opts.mode, port1, async (name, args) => { if (lat) await lat(); return sync(name, args); });
    const w = new Worker(new URL(import.meta.url), { workerData: { sab, port: port2, gap, ...opts }, transferList: [port2] });
    const res = await new Promise((ok, ko) => { w.once('message', ok); w.once('error', ko); });
    srv?.stop();
    port1.close();
    await w.terminate();
    return stats(res.t);
  }

  async function mainAwait(latency, count) {
    const lat = latencies[latency];
    for (let i = 0; i < warm; i++) await lat();
    const t = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      await lat();
      t[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    return stats(t);
  }

  console.log(`node ${process.version}, n=${n} timed calls after ${warm} warm-up, ${gap} us of busy work between calls; times in microseconds per call`);
  if (only) {
    for (const mode of ['sab', 'msg']) for (const latency of ['none', 'immediate']) console.log(`bridge ${mode.padEnd(3)} main ${latency.padEnd(9)}  100 B   ${fmt(await runWorker({ mode, latency, n, warm, size: 100 }))}`);
    process.exit(0);
  }
  for (const size of [100, 16384]) {
    console.log(`\n-- reply of ${size} bytes --`);
    console.log(`worker, direct sync call             ${fmt(await runWorker({ baseline: 'direct', n, warm, size }))}`);
    console.log(`worker, direct sync call + JSON x2   ${fmt(await runWorker({ baseline: 'direct+json', n, warm, size }))}`);
    for (const latency of ['none', 'zero', 'immediate']) {
      for (const mode of ['sab', 'msg']) {
        console.log(`bridge ${mode.padEnd(3)} main ${latency.padEnd(9)}        ${fmt(await runWorker({ mode, latency, n, warm, size }))}`);
      }
    }
  }
  console.log(`\n-- async step awaited directly on the main thread (no worker) --`);
  for (const latency of ['zero', 'immediate']) console.log(`main await ${latency.padEnd(9)}                ${fmt(await mainAwait(latency, n))}`);
  console.log(`main await fetch (loopback)          ${fmt(await mainAwait('fetch', fetchN))}`);
  for (const mode of ['sab', 'msg']) console.log(`bridge ${mode.padEnd(3)} main fetch (loopback)    ${fmt(await runWorker({ mode, latency: 'fetch', n: fetchN, warm, size: 100 }))}`);
  server.close();
  process.exit(0);
}
