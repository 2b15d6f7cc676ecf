// "My approvals" (`my-approvals`, a global page): what waits for the viewer, directly or as
// someone's delegate, what is overdue, and what they decided lately; each links its page.

import { useEffect, useState } from 'preact/hooks';

import { asResolverError, call, openPage } from '../api.js';
import { Button, ErrorMessage, Lozenge, SectionMessage, Spinner } from '../components.jsx';
import { decisionLozenge, human, when } from '../format.js';

export function MyApprovals() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [navError, setNavError] = useState(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    call('my-approvals', {}).then(
      (d) => (setData(d), setError(null)),
      (e) => setError(asResolverError(e)),
    );
  }, [attempt]);

  const open = (pageId) => (e) => {
    e.preventDefault();
    setNavError(null);
    Promise.resolve(openPage(pageId)).catch((err) => setNavError(asResolverError(err)));
  };

  const overdue = data ? data.pending.filter((i) => i.overdue) : [];
  const waiting = data ? data.pending.filter((i) => !i.overdue) : [];
  return (
    <main class="stack page-narrow" aria-labelledby="my-title">
      <div class="spread">
        <h1 id="my-title">My approvals</h1>
        <Button appearance="subtle" onClick={() => setAttempt((a) => a + 1)}>
          Refresh
        </Button>
      </div>
      <div role="alert">{navError && <ErrorMessage error={navError} title="The page could not be opened" />}</div>
      {error && <ErrorMessage error={error} title="Your approvals could not be loaded" />}
      {!data && !error && <Spinner label="Reading your approvals" />}
      {data && (
        <>
          <p class="subtle" role="status">
            {data.pending.length === 0
              ? 'Nothing waits for you.'
              : `${data.pending.length} ${data.pending.length === 1 ? 'review waits' : 'reviews wait'} for you${
                  overdue.length ? `, ${overdue.length} overdue` : ''
                }.`}
          </p>
          {overdue.length > 0 && (
            <Pending title="Overdue" id="overdue" items={overdue} open={open} danger />
          )}
          <Pending title="Waiting for you" id="waiting" items={waiting} open={open} />
          <Recent items={data.recent} open={open} />
        </>
      )}
    </main>
  );
}

function Pending({ title, id, items, open, danger }) {
  return (
    <section class="stack-tight" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`} class="row">
        {title} <span class={`count${danger ? ' danger' : ''}`}>{items.length}</span>
      </h2>
      {items.length === 0 ? (
        <SectionMessage appearance="information">
          <p>Nothing here: no document waits for your review.</p>
        </SectionMessage>
      ) : (
        <div class="scroll" role="region" aria-labelledby={`${id}-title`} tabIndex={0}>
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Page</th>
                <th scope="col">Status</th>
                <th scope="col">Your part</th>
                <th scope="col">Due</th>
              </tr>
            </thead>
            <tbody>
              {items.map((i) => (
                <tr key={`${i.pageId}-${i.group}-${i.onBehalfOf || ''}`}>
                  <td>
                    <a href={`#page-${i.pageId}`} onClick={open(i.pageId)}>
                      {i.title || `Page ${i.pageId}`}
                    </a>
                    <div class="subtlest">version {i.version}</div>
                  </td>
                  <td>
                    <Lozenge appearance={i.appearance}>{i.lozenge}</Lozenge>
                  </td>
                  <td>
                    {human(i.stage)} / {human(i.group)}
                    {i.onBehalfOf && <div class="subtlest">for {i.onBehalfOf} (delegated to you)</div>}
                    {i.refusal && (
                      <div class="subtle">
                        <Lozenge appearance="removed">Cannot decide</Lozenge>{' '}
                        {i.refusal.message.replace(/^[a-z_]+ refused: /, '')}
                      </div>
                    )}
                  </td>
                  <td class="nowrap">
                    {i.dueAt ? when(i.dueAt) : <span class="subtlest">no due date</span>}
                    {i.overdue && (
                      <div>
                        <Lozenge appearance="removed">Overdue</Lozenge>
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Recent({ items, open }) {
  return (
    <section class="stack-tight" aria-labelledby="recent-title">
      <h2 id="recent-title">Recently decided</h2>
      {items.length === 0 ? (
        <p class="subtle">You have not decided or signed anything yet.</p>
      ) : (
        <div class="scroll" role="region" aria-labelledby="recent-title" tabIndex={0}>
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Page</th>
                <th scope="col">Your decision</th>
                <th scope="col">When</th>
                <th scope="col">Then</th>
              </tr>
            </thead>
            <tbody>
              {items.map((i) => {
                const [text, look] = decisionLozenge(i.action);
                return (
                  <tr key={`${i.pageId}-${i.at}-${i.action}`}>
                    <td>
                      <a href={`#page-${i.pageId}`} onClick={open(i.pageId)}>
                        {i.title || `Page ${i.pageId}`}
                      </a>
                      <div class="subtlest">version {i.version}</div>
                    </td>
                    <td>
                      <Lozenge appearance={look}>{text}</Lozenge>
                      {i.onBehalfOf && <div class="subtlest">for {i.onBehalfOf}</div>}
                    </td>
                    <td class="nowrap">{when(i.at)}</td>
                    <td>{human(i.state)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
