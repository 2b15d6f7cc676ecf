// Cold-start costs: instantiating the component on the main thread, and starting a worker
// that instantiates it (design B's extra start-up), plus the worker's memory.
//   node startup.mjs
import { Worker } from 'node:worker_threads';
import { makePlatform, instantiateComponent } from './host.mjs';
const ms = (t0) => (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1);
let t0 = process.hrtime.bigint();
await instantiateComponent(makePlatform().counted);
console.log(`main thread: import jco glue + compile + instantiate: ${ms(t0)} ms`);
const rss0 = process.memoryUsage().rss;
t0 = process.hrtime.bigint();
const w = new Worker(new URL('./comp-bench.mjs', import.meta.url), { workerData: { local: true } });
await new Promise((ok, ko) => { w.once('message', ok); w.once('error', ko); });
console.log(`worker: spawn + import + compile + instantiate: ${ms(t0)} ms; process RSS grew ${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(0)} MB`);
await w.terminate();
