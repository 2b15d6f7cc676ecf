// Words and dates as the viewer reads them (the context's locale and time zone).

// The formatters are made on first use: making an `Intl.DateTimeFormat` loads the locale's
// data, tens of milliseconds that would otherwise delay the first call to the app.
let locale = 'en-US';
let timeZone = 'UTC';
let cache = null;

export function setLocale(newLocale, newTimeZone) {
  const l = newLocale || 'en-US';
  const tz = newTimeZone || 'UTC';
  if (l !== locale || tz !== timeZone) {
    locale = l;
    timeZone = tz;
    cache = null;
  }
}

/**
 * Makes the formatters now (while the page waits for the network, say), in the browser's
 * language: the context's locale, when it comes, is most often the same, and where it is
 * not, the locale data loaded here is still what `Intl` needed first.
 */
export function warmFormats() {
  if (typeof navigator !== 'undefined' && navigator.language) setLocale(navigator.language, timeZone);
  formats();
}

function formats() {
  if (cache) return cache;
  const opts = { timeZone };
  try {
    cache = {
      fmt: new Intl.DateTimeFormat(locale, { ...opts, dateStyle: 'medium', timeStyle: 'short' }),
      dayFmt: new Intl.DateTimeFormat(locale, { ...opts, dateStyle: 'medium' }),
      shortFmt: new Intl.DateTimeFormat(locale, { ...opts, month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' }),
    };
  } catch {
    const fmt = new Intl.DateTimeFormat('en-US', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
    cache = { fmt, dayFmt: new Intl.DateTimeFormat('en-US', { dateStyle: 'medium', timeZone: 'UTC' }), shortFmt: fmt };
  }
  return cache;
}

/** `2026-01-05T09:00:00Z` as `Jan 5, 2026, 9:00 AM`. */
export function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : formats().fmt.format(d);
}

/** `Jan 5, 9:00 AM`: for tables, where the year is in the full time's tooltip. */
export function short(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : formats().shortFmt.format(d);
}

export function day(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : formats().dayFmt.format(d);
}

/** `in_review` as `In review`. */
export function human(name) {
  if (!name) return '';
  const s = String(name).replace(/[_-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const ACTIONS = {
  submit: 'Submit for approval',
  approve: 'Approve',
  reject: 'Reject',
  'request-changes': 'Request changes',
  sign: 'Sign',
  delegate: 'Delegate',
  withdraw: 'Withdraw',
  'mark-up-to-date': 'Mark up to date',
  archive: 'Archive',
};

/** The button text of an action the panel offers. */
export function actionLabel(action) {
  return ACTIONS[action] || human(action);
}

const DONE = {
  submit: 'Submitted for approval',
  approve: 'Approved',
  reject: 'Rejected',
  'request-changes': 'Changes requested',
  sign: 'Signed',
  delegate: 'Delegated',
  withdraw: 'Withdrawn',
  'mark-up-to-date': 'Marked up to date',
  archive: 'Archived',
};

export function doneLabel(action) {
  return DONE[action] || human(action);
}

const DECISIONS = {
  approve: ['Approved', 'success'],
  reject: ['Rejected', 'removed'],
  request_changes: ['Changes requested', 'moved'],
  'request-changes': ['Changes requested', 'moved'],
  sign: ['Signed', 'inprogress'],
};

/** A decision as a lozenge: its words and appearance. */
export function decisionLozenge(decision) {
  return DECISIONS[decision] || [human(decision), 'default'];
}

const OUTCOMES = {
  approved: ['Approved', 'success'],
  rejected: ['Rejected', 'removed'],
  changes_requested: ['Changes requested', 'moved'],
};

export function outcomeLozenge(outcome) {
  return OUTCOMES[outcome] || [human(outcome), 'default'];
}

/** Initials of an account id or a name, for an avatar. */
export function initials(id) {
  const words = String(id || '?')
    .replace(/[^A-Za-z0-9 ._-]/g, '')
    .split(/[ ._-]+/)
    .filter(Boolean);
  if (words.length >= 2) return (words[0][0] + words[1][0]).toUpperCase();
  return String(id || '?').slice(0, 2).toUpperCase();
}

/** A stable colour class for an avatar. */
export function avatarClass(id) {
  let h = 0;
  for (const c of String(id || '')) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `c${h % 6}`;
}

/** The date (`YYYY-MM-DD`, UTC) `days` after the instant `ts`. */
export function dateAfter(ts, days) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return new Date(d.getTime() + days * 86400000).toISOString().slice(0, 10);
}
