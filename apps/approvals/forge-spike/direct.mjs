// Runs the real transpiled component on the main thread with the synchronous in-memory
// host, and prints, per export call, the answer and the platform calls it made.
//   node direct.mjs
import { makePlatform, instantiateComponent, assignWorkflow, scenarioCalls, runExport } from './host.mjs';
const plat = makePlatform();
const root = await instantiateComponent(plat.counted);
const page = plat.api.product.createPage('ENG', 'Spec', '<p>hello</p>');
for (const [label, exp, args] of [assignWorkflow, ...scenarioCalls(page.id)]) {
  plat.counts.clear();
  const out = runExport(root, exp, args);
  const total = [...plat.counts.values()].reduce((a, b) => a + b, 0);
  console.log(`${label}: ${total} platform calls -> ${String(JSON.stringify(out)).slice(0, 110)}`);
  console.log('   ', JSON.stringify(Object.fromEntries(plat.counts)));
}
