// The viewer's actions: one button per action the engine offers (the panel's `actions`),
// each opening a short form for what the action needs (a comment, a signature with a
// one-time code, a delegate with an end date and a reason); the decisions the engine would
// refuse are explained instead.

import { useEffect, useRef, useState } from 'preact/hooks';

import { Button, Field, LiveRegions, SectionMessage } from '../components.jsx';
import { actionLabel, dateAfter, human } from '../format.js';

const MEANINGS = ['authorship', 'review', 'approval', 'responsibility'];

export function Actions({ panel, act, live }) {
  const [open, setOpen] = useState(null);
  const offers = panel.actions;
  const key = (o) => `${o.action}:${o.onBehalfOf || ''}`;
  const opened = offers.find((o) => key(o) === open);
  // The refused decisions (approve, reject, request changes) usually share one reason: say
  // it once, without the engine's "approve refused: " in front.
  const reasons = [...new Set(panel.refused.map((r) => r.message.replace(/^[a-z_]+ refused: /, '')))];

  return (
    <section class="stack-tight" aria-labelledby="actions-title">
      <h2 id="actions-title">Your actions</h2>
      {offers.length === 0 && reasons.length === 0 && (
        <p class="subtle">
          {panel.viewer ? 'There is nothing for you to do on this version.' : 'Sign in to act on this document.'}
        </p>
      )}
      {offers.length > 0 && (
        <div class="row" role="group" aria-label="Actions on this document">
          {offers.map((o) => (
            <Button
              key={key(o)}
              appearance={buttonLook(o.action)}
              selected={open === key(o)}
              aria-expanded={open === key(o) ? 'true' : 'false'}
              aria-controls="action-form"
              onClick={() => setOpen(open === key(o) ? null : key(o))}
            >
              {actionLabel(o.action)}
              {o.onBehalfOf && ` for ${o.onBehalfOf}`}
            </Button>
          ))}
        </div>
      )}
      <LiveRegions status={live.status} error={live.error} onDismiss={live.clear} />
      {reasons.map((message) => (
        <SectionMessage key={message} appearance="warning" title="You cannot decide on this version">
          <p>{message}</p>
        </SectionMessage>
      ))}
      {opened && (
        <ActionForm
          key={open}
          offer={opened}
          panel={panel}
          onCancel={() => setOpen(null)}
          onDone={() => setOpen(null)}
          act={act}
        />
      )}
    </section>
  );
}

function buttonLook(action) {
  if (action === 'approve' || action === 'submit') return 'primary';
  if (action === 'reject') return 'danger';
  return 'default';
}

/** The form of one action: its fields, then the resolver call. */
function ActionForm({ offer, panel, act, onCancel, onDone }) {
  const { action } = offer;
  const [busy, setBusy] = useState(false);
  const [fields, setFields] = useState({
    comment: '',
    name: '',
    // An author signs for authorship; anyone else, by default, for review.
    meaning: offer.signature?.meaning || (panel.viewer && panel.viewer === panel.author ? 'authorship' : 'review'),
    code: '',
    to: '',
    until: dateAfter(panel.now, 7),
    reason: '',
  });
  const first = useRef(null);
  useEffect(() => first.current?.focus(), []);
  const set = (name) => (e) => setFields({ ...fields, [name]: e.currentTarget.value });

  const needsSignature = action === 'sign' || (action === 'approve' && offer.signature);
  const needsCode = action === 'sign' || (action === 'approve' && offer.signature?.reauth);

  const payload = () => {
    const p = {};
    if (['approve', 'reject', 'request-changes', 'sign'].includes(action)) p.version = panel.version;
    if (offer.onBehalfOf) p.onBehalfOf = offer.onBehalfOf;
    if (action !== 'delegate' && fields.comment.trim()) p.comment = fields.comment.trim();
    if (action === 'sign') {
      p.name = fields.name.trim();
      p.meaning = fields.meaning;
      p.reauth = { method: 'totp', code: fields.code.trim() };
    } else if (needsSignature) {
      p.signature = { name: fields.name.trim(), meaning: offer.signature.meaning };
      if (needsCode) p.signature.reauth = { method: 'totp', code: fields.code.trim() };
    }
    if (action === 'delegate') {
      p.to = fields.to.trim();
      p.until = `${fields.until}T23:59:59Z`;
      p.reason = fields.reason.trim();
    }
    return p;
  };

  const onSubmit = async (e) => {
    e.preventDefault();
    setBusy(true);
    const done = await act(action, payload());
    setBusy(false);
    if (done) onDone();
  };

  const title = `${actionLabel(action)}${offer.onBehalfOf ? ` for ${offer.onBehalfOf}` : ''}`;
  const commentRequired = action === 'request-changes';
  return (
    <form id="action-form" class="form stack-tight" aria-labelledby="action-form-title" onSubmit={onSubmit}>
      <h3 id="action-form-title">{title}</h3>
      <Explanation offer={offer} panel={panel} />
      {action === 'delegate' && (
        <>
          <Field id="delegate-to" label="Delegate to (account id)" required>
            <input
              ref={first}
              id="delegate-to"
              type="text"
              required
              autocomplete="off"
              value={fields.to}
              onInput={set('to')}
            />
          </Field>
          <Field id="delegate-until" label="Until the end of (UTC)" required hint="The delegation starts now.">
            <input
              id="delegate-until"
              type="date"
              required
              min={dateAfter(panel.now, 0)}
              value={fields.until}
              onInput={set('until')}
              aria-describedby="delegate-until-hint"
            />
          </Field>
          <Field id="delegate-reason" label="Reason" required>
            <textarea id="delegate-reason" rows={2} required value={fields.reason} onInput={set('reason')} />
          </Field>
        </>
      )}
      {needsSignature && (
        <Field
          id="sig-name"
          label="Your full name, as the signature shows it"
          required
          hint="Printed on the signature manifestation of this version."
        >
          <input
            ref={first}
            id="sig-name"
            type="text"
            required
            autocomplete="name"
            value={fields.name}
            onInput={set('name')}
            aria-describedby="sig-name-hint"
          />
        </Field>
      )}
      {action === 'sign' && (
        <Field id="sig-meaning" label="Meaning of the signature" required>
          <select id="sig-meaning" value={fields.meaning} onChange={set('meaning')}>
            {MEANINGS.map((m) => (
              <option key={m} value={m}>
                {human(m)}
              </option>
            ))}
          </select>
        </Field>
      )}
      {needsCode && (
        <Field
          id="sig-code"
          label="One-time code"
          required
          hint="The 6-digit code your authenticator app shows now. Not set up yet? Open the Authenticator tab."
        >
          <input
            id="sig-code"
            class="code"
            type="text"
            inputmode="numeric"
            autocomplete="one-time-code"
            pattern="[0-9]{6}"
            maxlength={6}
            required
            value={fields.code}
            onInput={set('code')}
            aria-describedby="sig-code-hint"
          />
        </Field>
      )}
      {action !== 'delegate' && (
        <Field
          id="action-comment"
          label={commentRequired ? 'What should change?' : 'Comment (optional)'}
          required={commentRequired}
        >
          <textarea
            ref={needsSignature ? undefined : first}
            id="action-comment"
            rows={3}
            required={commentRequired}
            value={fields.comment}
            onInput={set('comment')}
          />
        </Field>
      )}
      <div class="form-actions">
        <Button appearance="subtle" onClick={onCancel} disabled={busy}>
          Cancel
        </Button>
        <Button type="submit" appearance={action === 'reject' ? 'danger' : 'primary'} busy={busy} disabled={busy}>
          {confirmLabel(action, panel)}
        </Button>
      </div>
    </form>
  );
}

function confirmLabel(action, panel) {
  switch (action) {
    case 'approve':
    case 'reject':
    case 'sign':
      return `${actionLabel(action)} version ${panel.version}`;
    case 'request-changes':
      return 'Request changes';
    default:
      return actionLabel(action);
  }
}

function Explanation({ offer, panel }) {
  const where = offer.group ? ` in ${human(offer.stage)} / ${human(offer.group)}` : '';
  switch (offer.action) {
    case 'approve':
      return (
        <p class="subtle">
          You approve version {panel.version}
          {where}
          {offer.onBehalfOf && `, on behalf of ${offer.onBehalfOf}`}
          {offer.signature &&
            `. This group requires an e-signature with the meaning ${offer.signature.meaning}${
              offer.signature.reauth ? ', confirmed by a one-time code' : ''
            }`}
          .
        </p>
      );
    case 'reject':
      return (
        <p class="subtle">
          You reject version {panel.version}
          {where}
          {offer.onBehalfOf && `, on behalf of ${offer.onBehalfOf}`}.
        </p>
      );
    case 'request-changes':
      return (
        <p class="subtle">
          You ask the author for changes to version {panel.version}
          {where}
          {offer.onBehalfOf && `, on behalf of ${offer.onBehalfOf}`}.
        </p>
      );
    case 'sign':
      return (
        <p class="subtle">
          An electronic signature on version {panel.version}, bound to its content. It is not a decision.
        </p>
      );
    case 'delegate':
      return <p class="subtle">The delegate decides in your place on this page until the date you give.</p>;
    case 'submit':
      return <p class="subtle">Version {panel.version} goes to its reviewers.</p>;
    case 'withdraw':
      return <p class="subtle">The approval stops and the document goes back to its author.</p>;
    default:
      return null;
  }
}
