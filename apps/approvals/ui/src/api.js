// The UI talks to the app only as on the real platform: `invoke` of @forge/bridge runs a
// resolver of the module's function, `view.getContext` says where the UI is shown, and
// `router.navigate` opens a page. Nothing else leaves the frame.

import { invoke, router, view } from '@forge/bridge';

/** A resolver's refusal: the app's stable code (`EVIDENCE_REJECTED`) and its message. */
export class ResolverError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ResolverError';
    this.code = code;
  }
}

/** Calls a resolver; the caller is the platform's, so payloads never carry `accountId`. */
export async function call(name, payload = {}) {
  let answer;
  try {
    answer = await invoke(name, payload);
  } catch (e) {
    throw asResolverError(e);
  }
  // The app answers JSON text; a host may hand it over parsed or as text.
  return typeof answer === 'string' ? JSON.parse(answer) : answer;
}

export function getContext() {
  return view.getContext();
}

/** Opens a Confluence page in the product (not in the app's frame). */
export function openPage(contentId) {
  return router.navigate({ target: 'contentView', contentId: String(contentId) });
}

/**
 * The error a host gives for a failed resolver call, as a code and a message. The app's
 * errors are `{code, message}`; a host may pass them as an object with both, or as text
 * `CODE: message`; anything else keeps its message and has no code.
 */
export function asResolverError(e) {
  if (e instanceof ResolverError) return e;
  const code = e && typeof e.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : null;
  let message = e && typeof e.message === 'string' ? e.message : String(e);
  if (!code) {
    const m = /^(?:[^:]*error[^:]*: )?([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(message);
    if (m) return new ResolverError(m[1], m[2]);
  }
  return new ResolverError(code, message);
}

/**
 * The places in a `BAD_WORKFLOW` message: the engine writes one problem per line, as
 * `FILE:LINE:COLUMN: code: message` (or `FILE: code: message` for the whole definition).
 */
export function parseDiagnostics(message) {
  return message
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const at = /^(.*?):(\d+):(\d+): ([a-z_]+): ([\s\S]*)$/.exec(line);
      if (at) return { line: +at[2], column: +at[3], code: at[4], message: at[5] };
      const whole = /^(.*?): ([a-z_]+): ([\s\S]*)$/.exec(line);
      if (whole) return { line: null, column: null, code: whole[2], message: whole[3] };
      return { line: null, column: null, code: null, message: line };
    });
}
