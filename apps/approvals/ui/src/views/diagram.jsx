// The drawing of the document's workflow (states, stages and groups, the current state
// highlighted), as the app's `workflow-diagram` resolver draws it: `{svg: "<svg …>"}`. It is
// shown as an image (a data URL), so nothing in it runs; if the call fails, its error is
// shown, never a stand-in picture.

import { useEffect, useState } from 'preact/hooks';

import { asResolverError, call } from '../api.js';
import { Button, ErrorMessage, Spinner } from '../components.jsx';

export function Diagram({ pageId, revision, panel }) {
  const [svg, setSvg] = useState(null);
  const [error, setError] = useState(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let live = true;
    setError(null);
    call('workflow-diagram', { pageId }).then(
      (answer) => {
        if (!live) return;
        if (answer && typeof answer.svg === 'string' && answer.svg.includes('<svg')) setSvg(answer.svg);
        else setError({ code: null, message: 'The app answered without a drawing (no `svg`).' });
      },
      (e) => live && setError(asResolverError(e)),
    );
    return () => {
      live = false;
    };
  }, [pageId, revision, attempt]);

  const alt = `The workflow ${panel.workflow}: its states, stages and groups; the current state, ${panel.lozenge}, is highlighted.`;
  return (
    <section class="stack-tight" aria-labelledby="diagram-title">
      <div class="spread">
        <h2 id="diagram-title">Workflow {panel.workflow}</h2>
        <Button appearance="subtle" onClick={() => setAttempt((a) => a + 1)}>
          Reload the drawing
        </Button>
      </div>
      {error ? (
        <ErrorMessage error={error} title="The workflow drawing is not available" />
      ) : svg == null ? (
        <Spinner label="Drawing the workflow" />
      ) : (
        <figure class="diagram" style="margin:0">
          <img src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`} alt={alt} />
        </figure>
      )}
    </section>
  );
}
