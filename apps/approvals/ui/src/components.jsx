// Small building blocks in the design system's look: lozenges, buttons, section messages,
// fields, tabs, the live regions that announce results and errors, avatars.

import { useCallback, useRef, useState } from 'preact/hooks';

import { avatarClass, initials } from './format.js';

export function Lozenge({ appearance = 'default', bold = false, children, label }) {
  const cls = `lozenge ${appearance}${bold ? ' bold' : ''}`;
  return (
    <span class={cls} title={label}>
      {children}
    </span>
  );
}

/** A real `<button>`; `appearance` is `default`, `primary`, `danger`, `subtle` or `link`. */
export function Button({ appearance = 'default', type = 'button', busy = false, selected = false, children, ...rest }) {
  return (
    <button
      type={type}
      class={`btn ${appearance}${selected ? ' selected' : ''}`}
      aria-busy={busy ? 'true' : undefined}
      {...rest}
    >
      {busy && <span class="spinner" aria-hidden="true" />}
      {children}
    </button>
  );
}

const ICONS = { information: 'i', success: '✓', warning: '!', error: '!' };

export function SectionMessage({ appearance = 'information', title, children, ...rest }) {
  return (
    <div class={`message ${appearance}`} {...rest}>
      <span class="icon" aria-hidden="true">
        {ICONS[appearance]}
      </span>
      <div class="body">
        {title && <h3>{title}</h3>}
        {children}
      </div>
    </div>
  );
}

export function Spinner({ label = 'Loading' }) {
  return (
    <p class="row subtle" role="status">
      <span class="spinner" aria-hidden="true" />
      <span>{label}…</span>
    </p>
  );
}

/** A labelled form control: `children` is the control, which gets `id`. */
export function Field({ id, label, hint, required, children }) {
  return (
    <div class="field">
      <label for={id}>
        {label}
        {required && (
          <span class="required" aria-hidden="true">
            *
          </span>
        )}
      </label>
      {children}
      {hint && (
        <span class="hint" id={`${id}-hint`}>
          {hint}
        </span>
      )}
    </div>
  );
}

export function Avatar({ id }) {
  return (
    <span class={`avatar ${avatarClass(id)}`} aria-hidden="true">
      {initials(id)}
    </span>
  );
}

/**
 * Results and errors, announced: a polite status region and an assertive alert region,
 * always in the page so that screen readers hear what is put in them.
 */
export function useAnnouncer() {
  const [state, setState] = useState({ status: null, error: null });
  const announce = useCallback((status) => setState({ status, error: null }), []);
  const fail = useCallback((error) => setState({ status: null, error }), []);
  const clear = useCallback(() => setState({ status: null, error: null }), []);
  return { ...state, announce, fail, clear };
}

export function LiveRegions({ status, error, onDismiss }) {
  return (
    <>
      <div class="live" role="status" aria-live="polite" aria-atomic="true">
        {status && (
          <SectionMessage appearance="success">
            <div class="spread">
              <p>{status}</p>
              {onDismiss && (
                <Button appearance="subtle dismiss" aria-label="Dismiss the message" onClick={onDismiss}>
                  ×
                </Button>
              )}
            </div>
          </SectionMessage>
        )}
      </div>
      <div class="live" role="alert" aria-atomic="true">
        {error && <ErrorMessage error={error} onDismiss={onDismiss} />}
      </div>
    </>
  );
}

export function ErrorMessage({ error, onDismiss, title }) {
  return (
    <SectionMessage appearance="error" title={title}>
      <div class="spread">
        <p>
          {error.code && <code>{error.code}</code>} {error.message}
        </p>
        {onDismiss && (
          <Button appearance="subtle dismiss" aria-label="Dismiss the error" onClick={onDismiss}>
            ×
          </Button>
        )}
      </div>
    </SectionMessage>
  );
}

/**
 * Tabs as the WAI-ARIA pattern has them: arrow keys, Home and End move between tabs (and
 * select them); Tab moves into the panel.
 */
export function Tabs({ label, tabs, selected, onSelect, idPrefix = 'tab' }) {
  const refs = useRef({});
  const onKeyDown = (e) => {
    const i = tabs.findIndex((t) => t.id === selected);
    let next = null;
    if (e.key === 'ArrowRight') next = (i + 1) % tabs.length;
    else if (e.key === 'ArrowLeft') next = (i - 1 + tabs.length) % tabs.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = tabs.length - 1;
    if (next === null) return;
    e.preventDefault();
    onSelect(tabs[next].id);
    refs.current[tabs[next].id]?.focus();
  };
  return (
    <div class="tabs" role="tablist" aria-label={label} onKeyDown={onKeyDown}>
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          class="tab"
          id={`${idPrefix}-${t.id}`}
          key={t.id}
          ref={(el) => {
            refs.current[t.id] = el;
          }}
          aria-selected={t.id === selected ? 'true' : 'false'}
          aria-controls={`${idPrefix}-panel-${t.id}`}
          tabIndex={t.id === selected ? 0 : -1}
          onClick={() => onSelect(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function TabPanel({ id, idPrefix = 'tab', children }) {
  return (
    <div
      class="tabpanel"
      role="tabpanel"
      id={`${idPrefix}-panel-${id}`}
      aria-labelledby={`${idPrefix}-${id}`}
      tabIndex={0}
    >
      {children}
    </div>
  );
}
