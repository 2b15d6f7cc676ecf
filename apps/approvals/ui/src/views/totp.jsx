// Enrolment of the one-time-code authenticator that e-signatures re-authenticate with
// (`totp-status`, `totp-enrol`). The app answers the secret once, at enrolment: it is shown
// here as a QR code and as text, and never again.

import qrcode from 'qrcode-generator';
import { useEffect, useState } from 'preact/hooks';

import { asResolverError, call } from '../api.js';
import { Button, ErrorMessage, SectionMessage, Spinner } from '../components.jsx';
import { when } from '../format.js';

export function Authenticator() {
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const [enrolment, setEnrolment] = useState(null);
  const [busy, setBusy] = useState(false);

  const load = () =>
    call('totp-status', {}).then(
      (s) => (setStatus(s), setError(null)),
      (e) => setError(asResolverError(e)),
    );
  useEffect(() => {
    load();
  }, []);

  const enrol = async () => {
    setBusy(true);
    try {
      setEnrolment(await call('totp-enrol', {}));
      setError(null);
      await load();
    } catch (e) {
      setError(asResolverError(e));
    }
    setBusy(false);
  };

  return (
    <section class="stack" aria-labelledby="totp-title">
      <h2 id="totp-title">Authenticator for e-signatures</h2>
      <p class="subtle">
        Signatures that require re-authentication ask for the 6-digit code of an authenticator app (any app for
        time-based one-time passwords). The app checks the code itself: nothing leaves Confluence.
      </p>
      <div role="alert">{error && <ErrorMessage error={error} />}</div>
      <div role="status" aria-live="polite">
        {enrolment && <Enrolment enrolment={enrolment} onDone={() => setEnrolment(null)} />}
      </div>
      {!status && !error && <Spinner label="Reading your enrolment" />}
      {status && !enrolment && <Status status={status} busy={busy} onEnrol={enrol} />}
    </section>
  );
}

function Status({ status, busy, onEnrol }) {
  if (!status.enrolled) {
    return (
      <div class="stack-tight">
        <SectionMessage appearance="warning" title="You have not set up an authenticator">
          <p>You need one to sign where a signature requires re-authentication.</p>
        </SectionMessage>
        <div>
          <Button appearance="primary" busy={busy} disabled={busy} onClick={onEnrol}>
            Set up an authenticator
          </Button>
        </div>
      </div>
    );
  }
  const locked = status.lockedUntil;
  return (
    <div class="stack-tight">
      <SectionMessage appearance={locked ? 'error' : 'success'} title="Your authenticator is set up">
        <p>Enrolled {when(status.enrolledAt)}.</p>
        {locked ? (
          <p>
            Too many wrong codes: signing is locked until {when(locked)}.
          </p>
        ) : status.failures > 0 ? (
          <p>
            {status.failures} wrong {status.failures === 1 ? 'code' : 'codes'} in a row; after {status.maxFailures}{' '}
            signing is locked for {status.lockoutMinutes} minutes.
          </p>
        ) : null}
      </SectionMessage>
      <p class="subtlest">A lost phone? A space administrator can reset your enrolment; then set it up again here.</p>
    </div>
  );
}

function Enrolment({ enrolment, onDone }) {
  return (
    <div class="card stack-tight">
      <h3>Scan this code with your authenticator app</h3>
      <p class="subtle">
        It is shown only now. Keep it private: whoever has it can make your codes.
      </p>
      <div class="row" style="align-items:flex-start;gap:24px">
        <QrCode text={enrolment.uri} />
        <div class="stack-tight" style="flex:1;min-width:220px">
          <div class="field">
            <span class="label" id="totp-uri-label">Enrolment link</span>
            <code class="secret" aria-labelledby="totp-uri-label">
              {enrolment.uri}
            </code>
          </div>
          <div class="field">
            <span class="label" id="totp-secret-label">Or type this key</span>
            <code class="secret" aria-labelledby="totp-secret-label">
              {enrolment.secret}
            </code>
          </div>
          <p class="subtlest">
            {enrolment.algorithm}, {enrolment.digits} digits, a new code every {enrolment.period} seconds.
          </p>
        </div>
      </div>
      <div>
        <Button appearance="primary" onClick={onDone}>
          I have added it
        </Button>
      </div>
    </div>
  );
}

/** A QR code as an SVG path of its dark modules, with a quiet zone of four modules. */
function QrCode({ text }) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  let d = '';
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c} ${r}h1v1h-1z`;
    }
  }
  return (
    <svg
      class="qr"
      viewBox={`-4 -4 ${n + 8} ${n + 8}`}
      role="img"
      aria-label="QR code of the enrolment link, for your authenticator app"
      shape-rendering="crispEdges"
    >
      <rect x="-4" y="-4" width={n + 8} height={n + 8} fill="#FFFFFF" />
      <path d={d} fill="#000000" />
    </svg>
  );
}
