// The byline item's panel (`approval-status`): the document's state, version and stages,
// who is pending and who decided what, the actions the engine offers the viewer, the audit
// trail, the workflow's drawing and the authenticator enrolment.

import { useCallback, useEffect, useState } from 'preact/hooks';

import { asResolverError, call } from '../api.js';
import {
  Avatar,
  ErrorMessage,
  Lozenge,
  SectionMessage,
  Spinner,
  TabPanel,
  Tabs,
  useAnnouncer,
} from '../components.jsx';
import { decisionLozenge, doneLabel, human, outcomeLozenge, when } from '../format.js';
import { Actions } from './actions.jsx';
import { Diagram } from './diagram.jsx';
import { History } from './history.jsx';
import { Authenticator } from './totp.jsx';

const TABS = [
  { id: 'status', label: 'Status' },
  { id: 'audit', label: 'Audit trail' },
  { id: 'workflow', label: 'Workflow' },
  { id: 'authenticator', label: 'Authenticator' },
];

export function ApprovalPanel({ context }) {
  const pageId = context.extension?.content?.id;
  const [tab, setTab] = useState('status');
  const [panel, setPanel] = useState(null);
  const [loadError, setLoadError] = useState(null);
  // Bumped after each action, so that the audit trail and the drawing are read again.
  const [revision, setRevision] = useState(0);
  const live = useAnnouncer();

  const load = useCallback(async () => {
    try {
      setPanel(await call('panel', { pageId: String(pageId) }));
      setLoadError(null);
    } catch (e) {
      setLoadError(asResolverError(e));
    }
  }, [pageId]);

  useEffect(() => {
    if (pageId != null) load();
  }, [load, pageId]);

  // A User Timing mark when the panel is first interactive (its actions rendered, their
  // handlers attached), for measuring; it costs nothing and sends nothing anywhere.
  const loaded = panel != null;
  useEffect(() => {
    if (loaded && !performance.getEntriesByName('signoff:panel-interactive').length) {
      performance.mark('signoff:panel-interactive');
    }
  }, [loaded]);

  /** Runs an action's resolver, then reads the panel again; true when it was carried out. */
  const act = async (action, payload) => {
    live.clear();
    let summary;
    try {
      summary = await call(action, { pageId: String(pageId), ...payload });
    } catch (e) {
      live.fail(asResolverError(e));
      return false;
    }
    setRevision((r) => r + 1);
    const done = `${doneLabel(action)}. The document is ${String(summary.lozenge).toLowerCase()}, version ${summary.version}.`;
    try {
      setPanel(await call('panel', { pageId: String(pageId) }));
      live.announce(done);
    } catch (e) {
      // The action was carried out; only the refreshed view is missing.
      const error = asResolverError(e);
      live.fail({ code: error.code, message: `${done} The panel could not be refreshed: ${error.message}` });
    }
    return true;
  };

  if (pageId == null) {
    return <ErrorMessage error={{ code: null, message: 'This view belongs to a page, and no page was given.' }} />;
  }
  if (loadError) {
    if (loadError.code === 'UNKNOWN_PAGE') {
      return (
        <main class="stack" aria-labelledby="panel-title">
          <div class="header">
            <h1 id="panel-title" class="h-panel">
              Approval
            </h1>
            <Lozenge>Not under approval</Lozenge>
          </div>
          <SectionMessage appearance="information" title="This page is not under approval">
            <p>
              Its space has no approval workflow, or the page was written before one was assigned: its next
              edit starts its approval. A space administrator assigns the workflow in the space settings.
            </p>
          </SectionMessage>
        </main>
      );
    }
    return (
      <main class="stack">
        <ErrorMessage error={loadError} title="The approval could not be loaded" />
      </main>
    );
  }
  if (!panel) return <Spinner label="Loading the approval" />;

  return (
    <main class="stack" aria-labelledby="panel-title">
      <Header panel={panel} />
      <Tabs label="Approval" tabs={TABS} selected={tab} onSelect={setTab} />
      {tab === 'status' && (
        <TabPanel id="status">
          <div class="stack">
            <Actions panel={panel} act={act} live={live} />
            <Stages panel={panel} />
            <Decisions panel={panel} />
            <Delegations panel={panel} />
          </div>
        </TabPanel>
      )}
      {tab === 'audit' && (
        <TabPanel id="audit">
          <History pageId={String(pageId)} revision={revision} />
        </TabPanel>
      )}
      {tab === 'workflow' && (
        <TabPanel id="workflow">
          <Diagram pageId={String(pageId)} revision={revision} panel={panel} />
        </TabPanel>
      )}
      {tab === 'authenticator' && (
        <TabPanel id="authenticator">
          <Authenticator />
        </TabPanel>
      )}
    </main>
  );
}

function Header({ panel }) {
  const readers =
    panel.readerPageVersion != null && panel.readerPageVersion !== panel.pageVersion ? panel.readerPageVersion : null;
  return (
    <header class="stack-tight">
      <div class="header">
        <h1 id="panel-title" class="h-panel">
          {panel.title || 'Approval'}
        </h1>
        <Lozenge appearance={panel.appearance} bold label={`State: ${panel.lozenge}`}>
          {panel.lozenge}
        </Lozenge>
      </div>
      <dl class="meta">
        <div>
          <dt>Version</dt>
          <dd>
            {panel.version}
            {panel.pageVersion != null && ` (page version ${panel.pageVersion})`}
          </dd>
        </div>
        <div>
          <dt>Workflow</dt>
          <dd>{panel.workflow}</dd>
        </div>
        {panel.dueAt && (
          <div>
            <dt>Due</dt>
            <dd>{when(panel.dueAt)}</dd>
          </div>
        )}
        {panel.lastApproved && (
          <div>
            <dt>Last approved</dt>
            <dd>
              version {panel.lastApproved.version}, {when(panel.lastApproved.at)}
            </dd>
          </div>
        )}
        <div>
          <dt>Audit trail</dt>
          <dd>{panel.verified ? 'verified' : 'does not verify'}</dd>
        </div>
      </dl>
      {readers != null && (
        <p class="subtlest">Readers see page version {readers}, the last approved one, while this version is in review.</p>
      )}
    </header>
  );
}

function Stages({ panel }) {
  if (!panel.stages.length) {
    return (
      <section class="stack-tight" aria-labelledby="stages-title">
        <h2 id="stages-title">Stages</h2>
        <p class="subtle">No approval is running: the document is {panel.lozenge.toLowerCase()}.</p>
      </section>
    );
  }
  return (
    <section class="stack-tight" aria-labelledby="stages-title">
      <h2 id="stages-title">Stages</h2>
      <ol class="plain-list stack-tight">
        {panel.stages.map((stage, i) => (
          <li key={stage.name}>
            <Stage stage={stage} index={i} />
          </li>
        ))}
      </ol>
    </section>
  );
}

function Stage({ stage, index }) {
  const [text, look] = stage.closed
    ? ['Done', 'success']
    : stage.current
      ? ['Current', 'inprogress']
      : ['Waiting', 'default'];
  const id = `stage-${index}`;
  return (
    <section class={`card stack-tight${stage.current && !stage.closed ? ' current' : ''}`} aria-labelledby={id}>
      <div class="spread">
        <h3 id={id}>
          {index + 1}. {human(stage.name)}
        </h3>
        <div class="row">
          {stage.dueAt && !stage.closed && <span class="subtlest">due {when(stage.dueAt)}</span>}
          <Lozenge appearance={look}>{text}</Lozenge>
        </div>
      </div>
      {stage.groups.map((g) => (
        <Group key={g.name} group={g} />
      ))}
    </section>
  );
}

function Group({ group }) {
  const sig = group.signature;
  return (
    <div class="stack-tight">
      <div class="row">
        <h4>{human(group.name)}</h4>
        <span class="subtlest">
          {group.rule}
          {sig && ` · e-signature (${sig.meaning}${sig.reauth ? ', re-authenticated' : ''})`}
        </span>
        {group.outcome && <Lozenge appearance={outcomeLozenge(group.outcome)[1]}>{outcomeLozenge(group.outcome)[0]}</Lozenge>}
      </div>
      {group.reviewers.length === 0 ? (
        <p class="subtlest">No reviewers yet: they are assigned when the stage starts.</p>
      ) : (
        <ul class="plain-list">
          {group.reviewers.map((r) => (
            <li key={r.reviewer} class="reviewer">
              <Avatar id={r.reviewer} />
              <span class="who">
                {r.reviewer}
                {r.backup && <span class="subtlest"> (backup)</span>}
                {r.decision && r.decision.by !== r.reviewer && <span class="subtlest"> by {r.decision.by}</span>}
              </span>
              {r.decision ? (
                <span class="row">
                  <span class="subtlest">{when(r.decision.at)}</span>
                  <Lozenge appearance={decisionLozenge(r.decision.decision)[1]}>
                    {decisionLozenge(r.decision.decision)[0]}
                  </Lozenge>
                </span>
              ) : group.outcome ? (
                <Lozenge label="The group was decided without this reviewer">Not needed</Lozenge>
              ) : (
                <Lozenge>Pending</Lozenge>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Decisions({ panel }) {
  if (!panel.decisions.length) return null;
  return (
    <section class="stack-tight" aria-labelledby="decisions-title">
      <h2 id="decisions-title">Decisions and signatures on version {panel.version}</h2>
      <ul class="plain-list stack-tight">
        {panel.decisions.map((d) => {
          const [text, look] = decisionLozenge(d.action);
          return (
            <li key={d.seq} class="card stack-tight">
              <div class="reviewer">
                <Avatar id={d.actor} />
                <span class="who">
                  <strong>{d.actor}</strong>
                  {d.onBehalfOf && <span class="subtle"> on behalf of {d.onBehalfOf}</span>}
                  {d.group && <span class="subtlest"> · {human(d.stage)} / {human(d.group)}</span>}
                </span>
                <span class="subtlest">{when(d.at)}</span>
                <Lozenge appearance={look}>{text}</Lozenge>
              </div>
              {d.comment && <p>“{d.comment}”</p>}
              {d.signature && (
                <p class="subtle">
                  Signed “{d.signature.name}” with the meaning {d.signature.meaning}
                  {d.signature.method
                    ? `, re-authenticated by ${d.signature.method}${d.signature.verified ? ' (verified)' : ' (not verified)'}`
                    : ', without re-authentication'}
                  .
                </p>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

function Delegations({ panel }) {
  if (!panel.delegations.length) return null;
  return (
    <section class="stack-tight" aria-labelledby="delegations-title">
      <h2 id="delegations-title">Delegations in force</h2>
      <ul class="plain-list">
        {panel.delegations.map((d) => (
          <li key={`${d.from}-${d.to}`}>
            <strong>{d.to}</strong> decides for <strong>{d.from}</strong> until {when(d.until)}{' '}
            <span class="subtle">({d.reason})</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
