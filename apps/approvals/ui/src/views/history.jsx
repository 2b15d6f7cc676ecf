// The audit trail: every record of the document, whether its hash chain verifies, and the
// signature manifestation of the current version (`history` resolver).

import { useEffect, useState } from 'preact/hooks';

import { asResolverError, call } from '../api.js';
import { ErrorMessage, SectionMessage, Spinner } from '../components.jsx';
import { human, short, when } from '../format.js';

export function History({ pageId, revision }) {
  const [history, setHistory] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let live = true;
    call('history', { pageId }).then(
      (h) => live && (setHistory(h), setError(null)),
      (e) => live && setError(asResolverError(e)),
    );
    return () => {
      live = false;
    };
  }, [pageId, revision]);

  if (error) return <ErrorMessage error={error} title="The audit trail could not be loaded" />;
  if (!history) return <Spinner label="Reading the audit trail" />;
  const records = history.records || [];
  return (
    <div class="stack">
      {history.verified ? (
        <SectionMessage appearance="success" title="Audit trail verified">
          <p>
            {records.length} records, each bound to the one before it by its hash: none was changed, removed or
            reordered.
          </p>
        </SectionMessage>
      ) : (
        <SectionMessage appearance="error" title="The audit trail does not verify">
          <p>{history.problem}</p>
        </SectionMessage>
      )}
      <section class="stack-tight" aria-labelledby="manifestation-title">
        <h2 id="manifestation-title">Signature manifestation</h2>
        <pre class="manifestation">{history.signatures}</pre>
      </section>
      <section class="stack-tight" aria-labelledby="records-title">
        <h2 id="records-title">Records</h2>
        <div class="scroll" role="region" aria-labelledby="records-title" tabIndex={0}>
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
              </tr>
            </thead>
            <tbody>
              {records.map((r) => (
                <tr key={r.seq}>
                  <td class="subtlest">{r.seq}</td>
                  <td class="nowrap">
                    <time datetime={r.at} title={when(r.at)}>
                      {short(r.at)}
                    </time>
                  </td>
                  <td>
                    {r.actor}
                    {r.on_behalf_of && <div class="subtlest">for {r.on_behalf_of}</div>}
                  </td>
                  <td>
                    <div>{describe(r)}</div>
                    {r.comment && <div class="subtle">“{r.comment}”</div>}
                    {r.signature && (
                      <div class="subtle">
                        Signature: {r.signature.name} ({r.signature.meaning})
                        {r.signature.auth &&
                          `, ${r.signature.auth.method}${r.signature.auth.verification ? ' verified' : ''}`}
                      </div>
                    )}
                    <div class="subtlest">
                      {r.from_state && r.from_state !== r.to_state
                        ? `${human(r.from_state)} → ${human(r.to_state)}`
                        : human(r.to_state)}
                      {' · version '}
                      {r.version}
                      {' · '}
                      <span class="hash" title={`record hash ${r.hash}; content hash ${r.content_hash}`}>
                        {String(r.hash).slice(0, 12)}
                      </span>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}

/** One record's event in words. */
function describe(r) {
  const d = (r.event && r.event.detail) || {};
  const at = d.stage ? ` (${human(d.stage)}${d.group ? ` / ${human(d.group)}` : ''})` : '';
  switch (r.event && r.event.action) {
    case 'created':
      return `Created under the workflow ${d.workflow}`;
    case 'edited':
      return `New version${d.changed ? ` (${d.changed.join(', ')} changed)` : ''}${
        d.reset && d.reset.length ? `; decisions of ${d.reset.map((g) => human(g.group)).join(', ')} reset` : ''
      }`;
    case 'state_changed':
      return `State changed: ${human(d.trigger)}`;
    case 'stage_started':
      return `Stage ${human(d.stage)} ${d.restarted ? 'restarted' : 'started'}${d.due_at ? `, due ${when(d.due_at)}` : ''}`;
    case 'assigned':
      return `Assigned ${(d.reviewers || []).join(', ')}${at}`;
    case 'unassigned':
      return `Unassigned ${d.reviewer}${at}`;
    case 'decided':
      return `${human(d.decision)}${d.reviewer !== r.actor ? ` for ${d.reviewer}` : ''}${at}`;
    case 'signed':
      return 'Signed';
    case 'group_closed':
      return `Group ${human(d.group)} closed: ${human(d.outcome)}`;
    case 'stage_closed':
      return `Stage ${human(d.stage)} closed: ${human(d.outcome)}`;
    case 'delegated':
      return `Delegated to ${d.to} until ${when(d.until)}: ${d.reason}`;
    case 'reminded':
      return `Reminded ${(d.reviewers || []).join(', ')}${at}`;
    case 'escalated':
      return `Escalated to ${(d.to || []).join(', ') || 'nobody'}${at}`;
    default:
      return human(r.event && r.event.action);
  }
}
