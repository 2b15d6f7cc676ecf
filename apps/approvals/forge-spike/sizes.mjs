// Sizes (JSON bytes) of the requests and replies one scenario's platform calls carry.
import { makePlatform, instantiateComponent, assignWorkflow, scenarioCalls, runExport } from './host.mjs';
import { toJSON } from './bridge.mjs';
const plat = makePlatform();
const sizes = [];
const wrapped = {};
for (const [iface, o] of Object.entries(plat.api)) {
  if (iface.startsWith('_')) continue;
  wrapped[iface] = {};
  for (const [fn, f] of Object.entries(o)) wrapped[iface][fn] = (...a) => { const r = plat.dispatch(`${iface}.${fn}`, a); sizes.push([`${iface}.${fn}`, toJSON(a).length, toJSON(r ?? null).length]); return r; };
}
const root = await instantiateComponent(wrapped);
runExport(root, ...assignWorkflow.slice(1));
for (let p = 0; p < 3; p++) {
  const page = plat.api.product.createPage('ENG', 'Spec', '<p>hello</p>');
  for (const [label, exp, args] of scenarioCalls(page.id)) { sizes.length = 0; runExport(root, exp, args); if (p === 2) console.log(label, sizes.map(([n, a, r]) => `${n}:${a}/${r}`).join(' ')); }
}
