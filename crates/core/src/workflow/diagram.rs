//! Drawings of a workflow: one graph built from a validated definition, rendered as text,
//! Mermaid, Graphviz DOT or a self-contained SVG, with a document's current state (and
//! stage) highlighted.
//!
//! The graph has the states (the initial one marked by an arrow from a start dot, final ones
//! by a double border or a stadium shape and the word "final"), the transitions labelled
//! with their triggers (several triggers between the same two states share one arrow), and
//! inside each state that runs an approval its stages in order, each with its groups and
//! their rules. Mermaid is for Markdown (GitHub and Confluence render it), DOT for Graphviz,
//! and the SVG, laid out here without a dependency, is what the approval app shows.
//!
//! Every name comes from whoever wrote the definition, so each format escapes it: control
//! and bidirectional formatting characters become visible escapes (`\n`, `\u{202e}`) in
//! every format, so a name can never add a line or reverse a label, and then each format
//! escapes what it must (Mermaid's entity codes, DOT's quoted strings, XML's entities).

mod svg;

use std::fmt::Write as _;

use super::{Trigger, Workflow, describe_group, stale_name};

/// A drawing of a workflow, with an optional highlighted state and stage.
#[derive(Debug, Clone)]
pub struct Diagram<'w> {
    wf: &'w Workflow,
    graph: Graph,
    current: Option<Current>,
}

/// Why a state or stage to highlight is not in the workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HighlightError {
    #[error("workflow {workflow:?} has no state {state:?} (its states: {})", .known.join(", "))]
    UnknownState {
        workflow: String,
        state: String,
        known: Vec<String>,
    },
    #[error("state {state:?} of workflow {workflow:?} has no stage {stage:?} ({})", known_stages(.known))]
    UnknownStage {
        workflow: String,
        state: String,
        stage: String,
        known: Vec<String>,
    },
}

impl<'w> Diagram<'w> {
    /// The drawing of `wf`, nothing highlighted.
    pub fn new(wf: &'w Workflow) -> Diagram<'w> {
        Diagram {
            wf,
            graph: Graph::build(wf),
            current: None,
        }
    }

    /// Highlights `state` (a document's current state) and, when given, one of its
    /// approval stages.
    pub fn highlight(
        mut self,
        state: &str,
        stage: Option<&str>,
    ) -> Result<Diagram<'w>, HighlightError> {
        let wf = self.wf;
        let Some(s) = wf.state_index(state) else {
            return Err(HighlightError::UnknownState {
                workflow: wf.name().to_owned(),
                state: state.to_owned(),
                known: wf.states().iter().map(|s| s.name.clone()).collect(),
            });
        };
        let stage = match stage {
            None => None,
            Some(name) => {
                let stages = wf.state(s).approval.as_ref().map(|a| a.stages.as_slice());
                let stages = stages.unwrap_or_default();
                match stages.iter().position(|st| st.name == name) {
                    Some(k) => Some(k),
                    None => {
                        return Err(HighlightError::UnknownStage {
                            workflow: wf.name().to_owned(),
                            state: state.to_owned(),
                            stage: name.to_owned(),
                            known: stages.iter().map(|st| st.name.clone()).collect(),
                        });
                    }
                }
            }
        };
        self.current = Some(Current { state: s, stage });
        Ok(self)
    }

    /// The text diagram of [`Workflow::diagram`], with the highlighted state and stage
    /// marked `<== current`.
    pub fn text(&self) -> String {
        self.wf
            .text_diagram(self.current.map(|c| (c.state, c.stage)))
    }

    /// A Mermaid flowchart (top to bottom): states are nodes, a state with an approval is a
    /// subgraph of its stages, and the highlighted state and stage are filled.
    pub fn mermaid(&self) -> String {
        let g = &self.graph;
        let mut out = String::new();
        let _ = writeln!(out, "flowchart TD");
        let _ = writeln!(out, "    %% workflow {} ({})", g.name, g.hash12);
        let _ = writeln!(out, "    start((\" \")) --> {}", g.entry(g.initial));
        let mut finals = Vec::new();
        let mut current_nodes = Vec::new();
        for (i, s) in g.states.iter().enumerate() {
            let here = self.current.filter(|c| c.state == i);
            if s.stages.is_empty() {
                let label = mermaid_label(&s.lines());
                if s.is_final {
                    let _ = writeln!(out, "    s{i}([\"{label}\"])");
                    finals.push(format!("s{i}"));
                } else {
                    let _ = writeln!(out, "    s{i}(\"{label}\")");
                }
                if here.is_some() {
                    current_nodes.push(format!("s{i}"));
                }
                continue;
            }
            // A subgraph's title is one line: more would run into its first node.
            let _ = writeln!(
                out,
                "    subgraph s{i}[\"{}\"]",
                mermaid_label(&[s.lines().join(" · ")])
            );
            let _ = writeln!(out, "        direction TB");
            for (k, st) in s.stages.iter().enumerate() {
                let _ = writeln!(out, "        s{i}_{k}[\"{}\"]", mermaid_label(&st.lines()));
                if here.is_some_and(|c| c.stage == Some(k)) {
                    current_nodes.push(format!("s{i}_{k}"));
                }
            }
            for k in 1..s.stages.len() {
                let _ = writeln!(out, "        s{i}_{} --> s{i}_{k}", k - 1);
            }
            let _ = writeln!(out, "    end");
            if s.is_final {
                finals.push(format!("s{i}"));
            }
            if here.is_some() {
                current_nodes.push(format!("s{i}"));
            }
        }
        // Arrows end at a subgraph's first stage and leave from its last one, as in DOT:
        // Mermaid's layout breaks cycles from the order of nodes, which puts subgraphs
        // first, so arrows to a subgraph itself would draw the workflow upside down.
        for e in &g.edges {
            let _ = writeln!(
                out,
                "    {} -->|\"{}\"| {}",
                g.exit(e.from),
                mermaid_label(&[e.label()]),
                g.entry(e.to)
            );
        }
        let _ = writeln!(out, "    classDef start fill:#172B4D,stroke:#172B4D");
        let _ = writeln!(out, "    class start start");
        if !finals.is_empty() {
            let _ = writeln!(out, "    classDef final stroke-width:3px");
            let _ = writeln!(out, "    class {} final", finals.join(","));
        }
        // `style` rather than a class: it applies to subgraphs as well as to nodes.
        for id in current_nodes {
            let _ = writeln!(
                out,
                "    style {id} fill:#E9F2FF,stroke:#0C66E4,stroke-width:3px,color:#172B4D"
            );
        }
        out
    }

    /// A Graphviz `digraph` (top to bottom): a state with an approval is a cluster of its
    /// stages, which arrows enter and leave (`compound=true`); final states have a double
    /// border; the highlighted state and stage are filled.
    pub fn dot(&self) -> String {
        const SELECTED: &str =
            "style=\"rounded,filled\", fillcolor=\"#E9F2FF\", color=\"#0C66E4\", penwidth=2";
        let g = &self.graph;
        let mut out = String::new();
        let _ = writeln!(out, "digraph workflow {{");
        let _ = writeln!(
            out,
            "    graph [label=\"{}\", labelloc=t, rankdir=TB, compound=true, fontname=\"Helvetica\", fontsize=12];",
            dot_label(&[format!("workflow {} ({})", g.name, g.hash12)])
        );
        let _ = writeln!(
            out,
            "    node [shape=box, style=rounded, color=\"#758195\", fontcolor=\"#172B4D\", fontname=\"Helvetica\", fontsize=11];"
        );
        let _ = writeln!(
            out,
            "    edge [color=\"#758195\", fontcolor=\"#44546F\", fontname=\"Helvetica\", fontsize=10];"
        );
        let _ = writeln!(
            out,
            "    start [shape=point, width=0.15, color=\"#172B4D\", label=\"\"];"
        );
        for (i, s) in g.states.iter().enumerate() {
            let here = self.current.filter(|c| c.state == i);
            if s.stages.is_empty() {
                let mut attrs = format!("label=\"{}\"", dot_label(&s.lines()));
                if s.is_final {
                    attrs.push_str(", peripheries=2");
                }
                if here.is_some() {
                    let _ = write!(attrs, ", {SELECTED}");
                }
                let _ = writeln!(out, "    s{i} [{attrs}];");
                continue;
            }
            let _ = writeln!(out, "    subgraph cluster_s{i} {{");
            // `\l` ends a left-justified line.
            let _ = writeln!(
                out,
                "        label=\"{}\\l\";",
                dot_lines(&s.lines(), "\\l")
            );
            let _ = writeln!(out, "        labeljust=l;");
            if here.is_some() {
                let _ = writeln!(
                    out,
                    "        style=\"rounded,filled\"; fillcolor=\"#E9F2FF\"; color=\"#0C66E4\"; penwidth=2;"
                );
            } else {
                let _ = writeln!(
                    out,
                    "        style=\"rounded,filled\"; fillcolor=\"#F7F8F9\"; color=\"#758195\";"
                );
            }
            for (k, st) in s.stages.iter().enumerate() {
                let mut attrs = format!(
                    "label=\"{}\", style=\"rounded,filled\", fillcolor=\"#FFFFFF\"",
                    dot_label(&st.lines())
                );
                if here.is_some_and(|c| c.stage == Some(k)) {
                    let _ = write!(attrs, ", {SELECTED}");
                }
                let _ = writeln!(out, "        s{i}_{k} [{attrs}];");
            }
            for k in 1..s.stages.len() {
                let _ = writeln!(out, "        s{i}_{} -> s{i}_{k};", k - 1);
            }
            let _ = writeln!(out, "    }}");
        }
        // An arrow into a cluster ends at its first stage, clipped at the cluster's border
        // (`lhead`); an arrow out of one starts at its last stage (`ltail`).
        let cluster = |i: usize| {
            let has = !g.states[i].stages.is_empty();
            has.then(|| format!("cluster_s{i}"))
        };
        let entry = |i: usize| (g.entry(i), cluster(i));
        let exit = |i: usize| (g.exit(i), cluster(i));
        let (first, head) = entry(g.initial);
        let head = head.map(|h| format!(" [lhead={h}]")).unwrap_or_default();
        let _ = writeln!(out, "    start -> {first}{head};");
        for e in &g.edges {
            let (from, tail) = exit(e.from);
            let (to, head) = entry(e.to);
            let mut attrs = format!("label=\"{}\"", dot_label(&[e.label()]));
            // An arrow that closes a cycle does not rank its ends, so the drawing reads
            // from the initial state down, as the SVG does.
            if e.back {
                attrs.push_str(", constraint=false");
            }
            // Graphviz cannot clip both ends of a loop at the same cluster.
            if e.from != e.to {
                if let Some(t) = tail {
                    let _ = write!(attrs, ", ltail={t}");
                }
                if let Some(h) = head {
                    let _ = write!(attrs, ", lhead={h}");
                }
            }
            let _ = writeln!(out, "    {from} -> {to} [{attrs}];");
        }
        let _ = writeln!(out, "}}");
        out
    }

    /// A self-contained SVG picture (a deterministic layered layout, top to bottom), styled
    /// with Atlassian design tokens (`var(--ds-text, #172B4D)`): inside Confluence it takes
    /// the page's theme, elsewhere the light fallbacks.
    pub fn svg(&self) -> String {
        svg::render(&self.graph, self.current)
    }
}

/// A highlighted state (index) and stage (index within its approval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    state: usize,
    stage: Option<usize>,
}

/// What every format draws. Text is already made visible ([`visible`]); each renderer
/// escapes it for its format.
#[derive(Debug, Clone)]
struct Graph {
    name: String,
    hash12: String,
    initial: usize,
    states: Vec<StateNode>,
    edges: Vec<Edge>,
    /// The order in which the depth-first search of [`Graph::find_cycles`] reached the
    /// states: the layouts' tie-breaker.
    discovered: Vec<usize>,
}

#[derive(Debug, Clone)]
struct StateNode {
    name: String,
    /// `final`, `due P21D`, `review every P2Y`, `new version: reset decisions`.
    details: Vec<String>,
    is_final: bool,
    stages: Vec<StageNode>,
}

#[derive(Debug, Clone)]
struct StageNode {
    /// `stage 1: review`.
    title: String,
    /// `due P10D`.
    details: Vec<String>,
    /// One line per group: `technical_review: majority of [group reviewers], consensus`.
    groups: Vec<String>,
}

/// The transitions from one state to another, in file-format order of their triggers.
#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    triggers: Vec<&'static str>,
    /// The arrow closes a cycle (it goes back to a state on the way from the initial
    /// one): layouts draw it against the flow, so that the rest reads top to bottom.
    back: bool,
}

impl Graph {
    fn build(wf: &Workflow) -> Graph {
        let states = wf
            .states()
            .iter()
            .map(|s| {
                let mut details = Vec::new();
                if s.is_final {
                    details.push("final".to_owned());
                }
                if let Some(d) = s.due {
                    details.push(format!("due {d}"));
                }
                if let Some(r) = &s.review {
                    if let Some(e) = r.every {
                        details.push(format!("review every {e}"));
                    }
                    if let Some(e) = r.idle {
                        details.push(format!("review after {e} idle"));
                    }
                }
                let mut stages = Vec::new();
                if let Some(a) = &s.approval {
                    details.push(format!("new version: {}", stale_name(a.on_new_version)));
                    for (k, st) in a.stages.iter().enumerate() {
                        stages.push(StageNode {
                            title: visible(&format!("stage {}: {}", k + 1, st.name)),
                            details: st.due.iter().map(|d| format!("due {d}")).collect(),
                            groups: st
                                .groups
                                .iter()
                                .map(|g| visible(&describe_group(g)))
                                .collect(),
                        });
                    }
                }
                StateNode {
                    name: visible(&s.name),
                    details,
                    is_final: s.is_final,
                    stages,
                }
            })
            .collect();
        let mut edges: Vec<Edge> = Vec::new();
        for i in 0..wf.states().len() {
            let first = edges.len();
            for t in Trigger::ALL {
                let Some(to) = wf.next(i, t) else { continue };
                match edges[first..].iter_mut().find(|e| e.to == to) {
                    Some(e) => e.triggers.push(t.name()),
                    None => edges.push(Edge {
                        from: i,
                        to,
                        triggers: vec![t.name()],
                        back: false,
                    }),
                }
            }
        }
        let mut g = Graph {
            name: visible(wf.name()),
            hash12: wf.hash()[..12].to_owned(),
            initial: wf.initial(),
            states,
            edges,
            discovered: Vec::new(),
        };
        g.find_cycles();
        g
    }

    /// Marks the arrows that close a cycle, by a depth-first search from the initial state
    /// (then from any state it did not reach) that follows arrows in file order: an arrow
    /// to a state still on the search's path goes back. Loops are not marked.
    fn find_cycles(&mut self) {
        let n = self.states.len();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (e, edge) in self.edges.iter().enumerate() {
            if edge.from != edge.to {
                out[edge.from].push(e);
            }
        }
        // 0: not reached, 1: on the path, 2: done.
        let mut seen = vec![0u8; n];
        self.discovered = vec![0; n];
        let mut next = 0;
        for root in std::iter::once(self.initial).chain(0..n) {
            if seen[root] != 0 {
                continue;
            }
            seen[root] = 1;
            self.discovered[root] = next;
            next += 1;
            let mut path = vec![(root, 0usize)];
            while let Some(&(u, k)) = path.last() {
                let Some(&e) = out[u].get(k) else {
                    seen[u] = 2;
                    path.pop();
                    continue;
                };
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                let v = self.edges[e].to;
                match seen[v] {
                    0 => {
                        seen[v] = 1;
                        self.discovered[v] = next;
                        next += 1;
                        path.push((v, 0));
                    }
                    1 => self.edges[e].back = true,
                    _ => {}
                }
            }
        }
    }
}

impl Graph {
    /// The node an arrow into state `i` ends at: the state, or its first stage.
    fn entry(&self, i: usize) -> String {
        match self.states[i].stages.len() {
            0 => format!("s{i}"),
            _ => format!("s{i}_0"),
        }
    }

    /// The node an arrow out of state `i` starts from: the state, or its last stage.
    fn exit(&self, i: usize) -> String {
        match self.states[i].stages.len() {
            0 => format!("s{i}"),
            n => format!("s{i}_{}", n - 1),
        }
    }
}

impl StateNode {
    /// The name, then the details.
    fn lines(&self) -> Vec<String> {
        std::iter::once(self.name.clone())
            .chain(self.details.iter().cloned())
            .collect()
    }
}

impl StageNode {
    fn lines(&self) -> Vec<String> {
        std::iter::once(self.title.clone())
            .chain(self.details.iter().cloned())
            .chain(self.groups.iter().cloned())
            .collect()
    }
}

impl Edge {
    fn label(&self) -> String {
        self.triggers.join(", ")
    }
}

fn known_stages(known: &[String]) -> String {
    if known.is_empty() {
        "it runs no approval".to_owned()
    } else {
        format!("its stages: {}", known.join(", "))
    }
}

/// `text` with control characters, bidirectional formatting characters and the two
/// noncharacters XML refuses written as visible escapes (`\n`, `\u{202e}`), and a backslash
/// doubled only when something else was escaped, so ordinary names are unchanged.
fn visible(text: &str) -> String {
    fn needs_escape(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{200e}'
                    | '\u{200f}'
                    | '\u{061c}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{fffe}'
                    | '\u{ffff}'
            )
    }
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Lines for a quoted Mermaid label (`"..."`), joined by `<br>`. Everything that could end
/// the string or an edge label, start markdown, an entity code, a comment or HTML is
/// written as an entity code (`#35;` for `#`), which Mermaid shows as the character
/// itself; brackets, parentheses and underscores are text inside quotes, so names such as
/// `in_review` stay readable in the source.
fn mermaid_label(lines: &[String]) -> String {
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        if n > 0 {
            out.push_str("<br>");
        }
        for c in line.chars() {
            match c {
                '"' => out.push_str("#quot;"),
                '#' | '&' | '<' | '>' | ';' | '|' | '`' | '%' | '\\' => {
                    let _ = write!(out, "#{};", u32::from(c));
                }
                c => out.push(c),
            }
        }
    }
    out
}

/// Lines for a quoted DOT string, centred (joined by `\n`). Only `"` and `\` are special
/// in a quoted DOT string; a backslash is doubled so `\N`, `\G` or `\l` in a name stay
/// text.
fn dot_label(lines: &[String]) -> String {
    dot_lines(lines, "\\n")
}

/// Lines for a quoted DOT string, joined by `separator` (`\n` centres, `\l` left-justifies
/// the line before it).
fn dot_lines(lines: &[String], separator: &str) -> String {
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        if n > 0 {
            out.push_str(separator);
        }
        for c in line.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{dot_label, mermaid_label, visible};

    #[test]
    fn names_are_made_visible_once() {
        assert_eq!(visible("in_review"), "in_review");
        assert_eq!(visible("a\\b"), "a\\b");
        assert_eq!(visible("a\nb\\"), "a\\nb\\\\");
        assert_eq!(visible("x\u{202e}y\u{ffff}"), "x\\u{202e}y\\u{ffff}");
    }

    #[test]
    fn mermaid_and_dot_labels_escape_what_their_strings_cannot_hold() {
        let lines = vec!["a \"b\" <i>&#1; | `c`".to_owned(), "%% end".to_owned()];
        assert_eq!(
            mermaid_label(&lines),
            "a #quot;b#quot; #60;i#62;#38;#35;1#59; #124; #96;c#96;<br>#37;#37; end"
        );
        assert_eq!(dot_label(&lines), "a \\\"b\\\" <i>&#1; | `c`\\n%% end");
        assert_eq!(dot_label(&["\\N".to_owned()]), "\\\\N");
    }
}
