// Design B wired to the real component: the transpiled approvals component runs in a worker
// whose signoff:forge imports are blocking calls to the main thread; the main thread keeps
// the (in-memory) platform and answers each call after an asynchronous step.
// Compared with the same component run on the main thread with synchronous imports.
//
//   node comp-bench.mjs [--pages 60] [--warm 10] [--mode msg|sab]
//
// Per page: product createPage, then the export calls of host.mjs scenarioCalls (on-event,
// submit, approve, status, panel, health). The first `warm` pages are not timed.
import { Worker, MessageChannel, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { makePlatform, instantiateComponent, assignWorkflow, scenarioCalls, runExport } from './host.mjs';
import { newChannel, blockingCaller, serve } from './bridge.mjs';

const IFACES = {
  context: ['current'],
  kvs: ['get', 'set', 'delete', 'query', 'transact', 'batchSet', 'getSecret', 'setSecret'],
  fetch: ['fetch'],
  product: ['getPage', 'createPage', 'updatePage', 'getProperty', 'setProperty', 'getContentState', 'setContentState'],
  log: ['write'],
};

if (!isMainThread) {
  const { sab, mode, port, local } = workerData;
  // local: the platform lives in the worker too (synchronous, no bridge), to separate the
  // cost of running in a worker from the cost of the bridge.
  const wplat = local ? makePlatform() : null;
  const raw = local ? wplat.dispatch : blockingCaller(sab, mode, port);
  // Time every import call in place, to report the round trip as the guest sees it.
  let inCalls = [];
  const call = (name, args) => { const t0 = process.hrtime.bigint(); const r = raw(name, args); inCalls.push(Number(process.hrtime.bigint() - t0) / 1000); return r; };
  const impl = {};
  for (const [iface, fns] of Object.entries(IFACES)) {
    impl[iface] = {};
    for (const fn of fns) impl[iface][fn] = (...args) => call(`${iface}.${fn}`, args);
  }
  const root = await instantiateComponent(impl);
  parentPort.on('message', ([exp, args]) => {
    if (exp === '__createPage') { wplat.api.product.createPage(...args); return; }
    inCalls = [];
    const t0 = process.hrtime.bigint();
    const out = runExport(root, exp, args);
    parentPort.postMessage({ out, us: Number(process.hrtime.bigint() - t0) / 1000, inCalls });
  });
  parentPort.postMessage('ready');
} else {
  const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
  const pages = Number(arg('--pages', 60)), warm = Number(arg('--warm', 10)), mode = arg('--mode', 'msg');
  const latencies = {
    sync: null,
    none: async () => {},
    zero: async () => { await Promise.resolve(); },
    immediate: async () => { await new Promise((r) => setImmediate(r)); },
  };

  // Returns { label: {us:[...], calls} } and the outputs, for one setup.
  async function run(setup) {
    const plat = makePlatform();
    let exec, close;
    if (setup === 'sync') {
      const root = await instantiateComponent(plat.counted);
      exec = async (exp, args) => {
        const t0 = process.hrtime.bigint();
        const out = runExport(root, exp, args);
        return { out, us: Number(process.hrtime.bigint() - t0) / 1000 };
      };
      close = async () => {};
    } else if (setup === 'wsync') {
      const w = new Worker(new URL(import.meta.url), { workerData: { local: true } });
      await new Promise((ok, ko) => { w.once('message', ok); w.once('error', ko); });
      exec = (exp, args) => new Promise((ok) => { w.once('message', ok); w.postMessage([exp, args]); });
      close = async () => { await w.terminate(); };
      const create = plat.api.product.createPage;
      plat.api.product.createPage = (...a) => { w.postMessage(['__createPage', a]); return create(...a); };
    } else {
      const lat = latencies[setup];
      const sab = newChannel();
      const { port1, port2 } = new MessageChannel();
      const srv = serve(sab, mode, port1, async (name, args) => { await lat(); return plat.dispatch(name, args); });
      const w = new Worker(new URL(import.meta.url), { workerData: { sab, mode, port: port2 }, transferList: [port2] });
      await new Promise((ok, ko) => { w.once('message', ok); w.once('error', ko); });
      exec = (exp, args) => new Promise((ok) => { w.once('message', ok); w.postMessage([exp, args]); });
      close = async () => { srv.stop(); port1.close(); await w.terminate(); };
    }
    const res = {};
    const outs = [];
    await exec(assignWorkflow[1], assignWorkflow[2]);
    for (let p = 0; p < pages; p++) {
      const page = plat.api.product.createPage('ENG', `Spec ${p}`, '<p>hello</p>');
      for (const [label, exp, args] of scenarioCalls(page.id)) {
        plat.counts.clear();
        const { out, us, inCalls } = await exec(exp, args);
        if (p >= warm && inCalls) (importTimes[setup] ??= []).push(...inCalls);
        if (out.err) throw new Error(`${setup} ${label}: ${JSON.stringify(out.err)}`);
        if (p === warm) outs.push(JSON.stringify(out).replace(/page-\d+/g, 'page-N'));
        if (p < warm) continue;
        const r = (res[label] ??= { us: [], calls: 0 });
        r.us.push(us);
        if (setup === 'sync') r.calls = [...plat.counts.values()].reduce((a, b) => a + b, 0);
      }
    }
    await close();
    return { res, outs };
  }

  const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
  console.log(`node ${process.version}, mode ${mode}, ${pages - warm} timed pages after ${warm} warm-up; median microseconds per export call`);
  const setups = ['sync', 'wsync', 'none', 'zero', 'immediate'];
  const all = {};
  const importTimes = {};
  for (const s of setups) all[s] = await run(s);
  const same = setups.every((s) => JSON.stringify(all[s].outs) === JSON.stringify(all.sync.outs));
  console.log(`answers identical across setups: ${same}`);
  console.log(`${'export call'.padEnd(22)} ${'calls'.padStart(5)} ${'sync main'.padStart(10)} ${setups.slice(1).map((s) => (s === 'wsync' ? 'sync in worker' : 'bridge ' + s).padStart(16)).join('')}   overhead/call (worker immediate - sync)/calls`);
  for (const label of Object.keys(all.sync.res)) {
    const base = median(all.sync.res[label].us), calls = all.sync.res[label].calls;
    const cols = setups.slice(1).map((s) => median(all[s].res[label].us).toFixed(0).padStart(16)).join('');
    const over = (median(all.immediate.res[label].us) - base) / calls;
    console.log(`${label.padEnd(22)} ${String(calls).padStart(5)} ${base.toFixed(0).padStart(10)} ${cols}   ${over.toFixed(1)}`);
  }
  const pct = (a, q) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
  console.log(`\nimport calls as the guest in the worker sees them (microseconds): p50 / p99 / mean / n`);
  for (const [s, a] of Object.entries(importTimes)) console.log(`  ${(s === 'wsync' ? 'sync in worker' : 'bridge ' + s).padEnd(17)} ${pct(a, 0.5).toFixed(1)} / ${pct(a, 0.99).toFixed(1)} / ${(a.reduce((x, y) => x + y, 0) / a.length).toFixed(1)} / ${a.length}`);
  process.exit(0);
}
