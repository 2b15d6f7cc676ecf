// The space's approval settings (`approval-settings`, a space settings page): the workflow
// assigned to the space, and for its administrators a form to assign another, a built-in
// template or their own definition (YAML or JSON), whose problems the engine reports at
// their line and column.

import { useEffect, useRef, useState } from 'preact/hooks';

import { asResolverError, call, parseDiagnostics } from '../api.js';
import { Button, ErrorMessage, Field, LiveRegions, SectionMessage, Spinner, useAnnouncer } from '../components.jsx';
import { human, when } from '../format.js';

export function SpaceSettings({ context }) {
  const space = context.extension?.space?.key;
  const [current, setCurrent] = useState(null);
  const [templates, setTemplates] = useState(null);
  const [error, setError] = useState(null);

  const load = async () => {
    try {
      const [c, t] = await Promise.all([call('space-workflow', { space }), call('templates', {})]);
      setCurrent(c);
      setTemplates(t.items || t.templates.map((name) => ({ name, description: null, source: null })));
      setError(null);
    } catch (e) {
      setError(asResolverError(e));
    }
  };
  useEffect(() => {
    if (space) load();
  }, [space]);

  if (!space) {
    return <ErrorMessage error={{ code: null, message: 'This view belongs to a space, and no space was given.' }} />;
  }
  return (
    <main class="stack page-narrow" aria-labelledby="settings-title">
      <div class="stack-tight">
        <h1 id="settings-title">Approval workflow</h1>
        <p class="subtle">
          The workflow that pages of the space {space} follow. A page starts its approval when it is created or
          next edited; documents already started keep the workflow they started with.
        </p>
      </div>
      {error && <ErrorMessage error={error} title="The settings could not be loaded" />}
      {!error && (!current || !templates) && <Spinner label="Reading the space's workflow" />}
      {current && templates && (
        <>
          <Current current={current} />
          <AssignForm space={space} current={current} templates={templates} onAssigned={load} />
        </>
      )}
    </main>
  );
}

function Current({ current }) {
  if (!current.assigned) {
    return (
      <SectionMessage appearance="information" title="No workflow yet">
        <p>Pages of this space are not under approval until a workflow is assigned.</p>
      </SectionMessage>
    );
  }
  return (
    <section class="card stack-tight" aria-labelledby="current-title">
      <h2 id="current-title">Current workflow: {current.workflow}</h2>
      <dl class="meta">
        <div>
          <dt>Source</dt>
          <dd>{current.template ? `the template ${current.template}` : 'an own definition'}</dd>
        </div>
        <div>
          <dt>States</dt>
          <dd>{current.states.map(human).join(' · ')}</dd>
        </div>
        <div>
          <dt>Assigned</dt>
          <dd>
            by {current.assignedBy}, {when(current.at)}
          </dd>
        </div>
        <div>
          <dt>Administrators</dt>
          <dd>{current.spaceAdmins.join(', ')}</dd>
        </div>
      </dl>
      <p class="hash">{current.workflowHash}</p>
    </section>
  );
}

const STARTER = `name: my-workflow
initial: draft
states:
  - name: draft
    on:
      submit: in_review
  - name: in_review
    approval:
      stages:
        - name: review
          groups:
            - name: reviewers
              reviewers:
                - role: space_admin
              rule: any
    on:
      approved: approved
      rejected: draft
      withdraw: draft
  - name: approved
    final: true
    on:
      edit: draft
`;

/** The largest definition file the form reads: real definitions are a few KB; a bigger file is refused before it is read. */
const MAX_FILE_BYTES = 256 * 1024;

function AssignForm({ space, current, templates, onAssigned }) {
  const own = current.assigned && !current.template;
  const [mode, setMode] = useState(own ? 'source' : 'template');
  const [template, setTemplate] = useState(current.template || templates[0]?.name);
  const [source, setSource] = useState(own ? current.source || '' : '');
  const [problems, setProblems] = useState(null);
  const [checked, setChecked] = useState(null);
  const [busy, setBusy] = useState(null);
  const [caret, setCaret] = useState(null);
  const live = useAnnouncer();
  const editor = useRef(null);
  const canAssign = current.canAssign;
  const chosen = templates.find((t) => t.name === template);

  // Each validation gets a number; a reply is used only while it is the latest one and the
  // text it checked is still the text in the editor (typing or loading another file makes
  // a pending reply stale).
  const latest = useRef(0);
  const validate = async (text, name) => {
    const seq = ++latest.current;
    setBusy('check');
    let v = null;
    let error = null;
    try {
      v = await call('validate-workflow', { source: text });
    } catch (e) {
      error = asResolverError(e);
    }
    if (seq !== latest.current) return;
    setBusy(null);
    if (error) {
      live.fail(error);
    } else if (v.valid) {
      setProblems(null);
      setChecked(v);
      live.announce(`${name || 'The definition'} is valid: workflow ${v.workflow}, states ${v.states.join(', ')}.`);
    } else {
      setChecked(null);
      setProblems(v.diagnostics);
      if (name) live.fail({ code: null, message: `${name} does not validate; the problems are listed below it.` });
    }
  };

  const check = () => {
    live.clear();
    return validate(source, null);
  };

  const assign = async (e) => {
    e.preventDefault();
    live.clear();
    setBusy('assign');
    const payload = mode === 'template' ? { space, template } : { space, source };
    try {
      const a = await call('assign-workflow', payload);
      setProblems(null);
      live.announce(`The workflow ${a.workflow} is assigned to the space ${a.space}.`);
      await onAssigned();
    } catch (err) {
      const error = asResolverError(err);
      if (error.code === 'BAD_WORKFLOW') {
        setProblems(parseDiagnostics(error.message));
        live.fail({ code: error.code, message: 'The definition does not validate; the problems are listed below it.' });
      } else {
        live.fail(error);
      }
    }
    setBusy(null);
  };

  /** Puts the caret at a problem's place in the definition. */
  const goTo = (p) => {
    const el = editor.current;
    if (!el || p.line == null) return;
    const lines = source.split('\n');
    let offset = 0;
    for (let i = 0; i < p.line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += Math.max(0, (p.column || 1) - 1);
    el.focus();
    el.setSelectionRange(offset, offset);
    setCaret({ line: p.line, column: p.column || 1 });
    const lineHeight = parseFloat(getComputedStyle(el).lineHeight) || 18;
    el.scrollTop = Math.max(0, (p.line - 3) * lineHeight);
  };

  /** Reads a definition from a file the admin picked into the editor (it is checked, not assigned). */
  const loadFile = async (e) => {
    const input = e.currentTarget;
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    live.clear();
    if (file.size > MAX_FILE_BYTES) {
      live.fail({
        code: null,
        message: `${file.name} is ${file.size} bytes; a workflow definition is at most ${MAX_FILE_BYTES} bytes.`,
      });
      return;
    }
    let text;
    try {
      text = await file.text();
    } catch (err) {
      live.fail({ code: null, message: `${file.name} could not be read: ${err && err.message}` });
      return;
    }
    // The editor's value has `\n` line ends whatever the file had; line and column count
    // on that text.
    text = text.replace(/\r\n?/g, '\n');
    setSource(text);
    setProblems(null);
    setChecked(null);
    // What was loaded is checked at once, so its problems show at their lines.
    await validate(text, file.name);
  };

  const copyTemplate = () => {
    if (!chosen?.source) return;
    setSource(chosen.source);
    setMode('source');
    setProblems(null);
    setChecked(null);
    setTimeout(() => editor.current?.focus(), 0);
  };

  return (
    <section class="stack" aria-labelledby="assign-title">
      <h2 id="assign-title">{current.assigned ? 'Assign another workflow' : 'Assign a workflow'}</h2>
      {!canAssign && (
        <SectionMessage appearance="warning" title="Only the space's administrators can change its workflow">
          <p>They are {current.spaceAdmins.join(', ')}.</p>
        </SectionMessage>
      )}
      <LiveRegions status={live.status} error={live.error} onDismiss={live.clear} />
      <form class="stack" onSubmit={assign} aria-labelledby="assign-title">
        <fieldset class="stack-tight" disabled={!canAssign}>
          <legend class="label">Where the workflow comes from</legend>
          <label class="radio" for="mode-template">
            <input
              id="mode-template"
              type="radio"
              name="mode"
              value="template"
              checked={mode === 'template'}
              onChange={() => setMode('template')}
            />
            A built-in template
          </label>
          <label class="radio" for="mode-source">
            <input
              id="mode-source"
              type="radio"
              name="mode"
              value="source"
              checked={mode === 'source'}
              onChange={() => {
                setMode('source');
                if (!source) setSource(STARTER);
              }}
            />
            My own definition
          </label>
        </fieldset>
        {mode === 'template' ? (
          <fieldset class="stack-tight" disabled={!canAssign}>
            <Field id="template" label="Template">
              <select id="template" value={template} onChange={(e) => setTemplate(e.currentTarget.value)}>
                {templates.map((t) => (
                  <option key={t.name} value={t.name}>
                    {t.name}
                  </option>
                ))}
              </select>
            </Field>
            {chosen?.description && <p class="subtle">{chosen.description}</p>}
            {chosen?.source && (
              <div>
                <Button appearance="link" onClick={copyTemplate}>
                  Start an own definition from this template
                </Button>
              </div>
            )}
          </fieldset>
        ) : (
          <fieldset class="stack-tight" disabled={!canAssign}>
            <Field id="definition-file" label="Load a definition from a file" hint="A .yaml, .yml or .json file; it is checked at once.">
              <input
                id="definition-file"
                type="file"
                accept=".yaml,.yml,.json,application/json,application/yaml,text/yaml,text/plain"
                aria-describedby="definition-file-hint"
                disabled={busy != null}
                onChange={loadFile}
              />
            </Field>
            <Field
              id="definition"
              label="Workflow definition (YAML or JSON)"
              hint="States, transitions and approval stages; the engine checks it before it is used."
            >
              <textarea
                ref={editor}
                id="definition"
                class="code"
                spellcheck={false}
                autocapitalize="off"
                value={source}
                onInput={(e) => {
                  setSource(e.currentTarget.value);
                  setChecked(null);
                  // A check still on its way was of the text before this edit.
                  latest.current += 1;
                  if (busy === 'check') setBusy(null);
                  setCaret(place(e.currentTarget));
                }}
                onKeyUp={(e) => setCaret(place(e.currentTarget))}
                onClick={(e) => setCaret(place(e.currentTarget))}
                onFocus={(e) => setCaret(place(e.currentTarget))}
                aria-invalid={problems && problems.length ? 'true' : 'false'}
                aria-describedby={problems && problems.length ? 'definition-hint problems' : 'definition-hint'}
              />
            </Field>
            {caret && (
              <p class="subtlest" aria-hidden="true">
                Line {caret.line}, column {caret.column}
              </p>
            )}
            {problems && problems.length > 0 && <Problems problems={problems} goTo={goTo} />}
            {checked && <p class="subtle">Valid: {checked.states.length} states.</p>}
          </fieldset>
        )}
        <div class="row">
          {mode === 'source' && (
            <Button onClick={check} disabled={!canAssign || busy != null} busy={busy === 'check'}>
              Check the definition
            </Button>
          )}
          <Button type="submit" appearance="primary" disabled={!canAssign || busy != null} busy={busy === 'assign'}>
            Assign to space {space}
          </Button>
        </div>
      </form>
    </section>
  );
}

/** The caret's line and column (1-based) in a textarea, as the engine counts them. */
function place(el) {
  const before = el.value.slice(0, el.selectionStart).split('\n');
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

function Problems({ problems, goTo }) {
  return (
    <div id="problems">
      <SectionMessage
        appearance="error"
        title={`The definition has ${problems.length} ${problems.length === 1 ? 'problem' : 'problems'}`}
      >
        <ul class="diag-list">
          {problems.map((p, i) => (
            <li key={i}>
              {p.line != null ? (
                <Button appearance="link" onClick={() => goTo(p)} aria-label={`Go to line ${p.line}, column ${p.column}`}>
                  Line {p.line}, column {p.column}
                </Button>
              ) : (
                <strong>Whole definition</strong>
              )}
              {': '}
              {p.code && <code>{p.code}</code>} {p.message}
            </li>
          ))}
        </ul>
      </SectionMessage>
    </div>
  );
}
