// Not one of the app's functions (manifest.yml names no handler here, so `forge deploy`
// leaves it out): the end-to-end tests call each platform import of src/platform.js through
// it, in the simulator, with the arguments the engine would pass (tests/e2e/data/forge-glue.yaml).
// A resolver call `{call: {functionKey: 'kvs.set', payload: {args: [...]}}}` answers the
// import's `{ok}` or `{err: {code, message}}`.

import { serve } from './platform.js';

export async function call(event) {
  const name = String(event?.call?.functionKey ?? '');
  const args = Array.isArray(event?.call?.payload?.args) ? event.call.payload.args : [];
  const out = await serve(name, args);
  // `undefined` (an absent value, a call that returns nothing) as JSON's null.
  return 'ok' in out ? { ok: out.ok ?? null } : out;
}
