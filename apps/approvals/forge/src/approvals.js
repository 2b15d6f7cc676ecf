// The approval app's Forge functions (manifest.yml: `handler: approvals.<export>`). Each one
// hands its call to the engine component, the same one the simulator runs as a wasm app,
// with the invocation's context; the component's platform imports are served by the real
// @forge/* packages (src/platform.js).

import Resolver from '@forge/resolver';
import { getAppContext } from '@forge/api';
import { callExport } from './engine.js';

/// The resolver functions the Custom UI calls (apps/approvals/src/app.rs, `App::resolver`).
/// A name outside the list still reaches the engine, which answers it as the component does.
export const RESOLVERS = [
  'assign-workflow', 'submit', 'withdraw', 'mark-up-to-date', 'archive', 'approve', 'reject',
  'request-changes', 'sign', 'delegate', 'status', 'history', 'pending', 'configure-webhook',
  'templates', 'totp-enrol', 'totp-reset', 'totp-status', 'panel', 'my-approvals',
  'space-workflow', 'validate-workflow', 'workflow-diagram',
];

/// The contract's `invocation-context` for this invocation. Forge tells an app neither its
/// site's host nor its data residency realm: `site` is the cloud id, `realm` is `UNKNOWN`
/// (the engine reads neither).
function invocationContext(context, accountId) {
  let app = {};
  try {
    app = getAppContext();
  } catch {
    // Outside a Forge invocation (a unit test of the package): no app context.
  }
  const cloudId = context?.installation?.contexts?.[0]?.cloudId
    ?? String(context?.installContext ?? '').split('/').pop();
  let remaining = 25_000;
  try {
    remaining = Math.max(0, Math.floor(app.invocationRemainingTimeInMillis()));
  } catch {
    // No remaining time known: the resolver limit.
  }
  return {
    appId: String(app.appAri ?? ''),
    environment: String(app.environmentType ?? ''),
    site: String(cloudId ?? ''),
    installation: String(context?.installation?.ari?.installationId ?? app.installationAri ?? ''),
    realm: 'UNKNOWN',
    function: String(app.moduleKey ?? ''),
    nowMs: BigInt(Date.now()),
    remainingMs: BigInt(remaining),
    accountId: accountId ?? undefined,
  };
}

const ui = new Resolver();
for (const name of RESOLVERS) {
  ui.define(name, async (req) => {
    const answer = await callExport(
      'resolver',
      [name, JSON.stringify(req.payload ?? {})],
      invocationContext(req.context, req.context?.accountId),
    );
    return JSON.parse(answer);
  });
}
const definitions = ui.getDefinitions();

/// UI calls: `@forge/resolver`'s payload (`{call: {functionKey, payload}, context}`).
export async function resolver(event, context) {
  const name = event?.call?.functionKey;
  if (RESOLVERS.includes(name)) return definitions(event, context);
  const answer = await callExport(
    'resolver',
    [String(name), JSON.stringify(event?.call?.payload ?? {})],
    invocationContext(context, context?.principal?.accountId),
  );
  return JSON.parse(answer);
}

/// Product events (`avi:confluence:created:page`, `...:updated:page`).
export async function on_event(event, context) {
  await callExport('onEvent', [JSON.stringify(event)], invocationContext(context, undefined));
}

/// Scheduled triggers: the module key says which (`due-dates`).
export async function on_schedule(event, context) {
  const key = String(event?.context?.moduleKey ?? '');
  await callExport('onSchedule', [key], invocationContext(context, undefined));
}

const pairs = (o) => Object.entries(o ?? {}).map(([k, v]) => [k, (Array.isArray(v) ? v : [v]).map(String)]);

/// The health web trigger. Its manifest answers statically (`outputs: ok`), so the function
/// names that output when the engine reports itself healthy; a dynamic trigger gets the
/// engine's own answer.
export async function health(request, context) {
  const r = await callExport('webTrigger', [{
    method: String(request?.method ?? 'GET'),
    path: String(request?.path ?? '/'),
    headers: pairs(request?.headers),
    queryParameters: pairs(request?.queryParameters),
    body: String(request?.body ?? ''),
  }], invocationContext(context, undefined));
  if (r.statusCode === 200) return { outputKey: 'ok' };
  return {
    statusCode: r.statusCode,
    headers: Object.fromEntries(r.headers),
    body: r.body,
  };
}

/// A queue consumer (`@forge/events` 2 and later: `{body, queueName, ...}`).
export async function consume(event, context) {
  await callExport(
    'consume',
    [String(event?.queueName ?? ''), JSON.stringify(event?.body ?? null)],
    invocationContext(context, undefined),
  );
}
