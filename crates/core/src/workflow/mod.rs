//! Workflow definitions: loading YAML or JSON with positions, validation, and the compiled form.
//!
//! A definition is read into a tree that remembers positions ([`signoff_yaml`]; JSON is
//! read by the same parser, since YAML 1.2 is a superset of JSON), deserialized into the
//! serde model of [`model`], then checked. Every problem becomes a [`Diagnostic`] that names
//! the file, line and column. The result is an immutable [`Workflow`] identified by the
//! SHA-256 of its canonical JSON, which documents pin when they are created.

pub mod diagram;
pub mod model;

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use signoff_yaml::{Budget, Node, Pos, Seg};

use crate::time::IsoDuration;

pub use model::*;

/// A validated, immutable workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    def: WorkflowDef,
    hash: String,
    initial: usize,
    index: HashMap<String, usize>,
    next: Vec<[Option<usize>; Trigger::COUNT]>,
}

/// What makes a document leave a state. Each is a key under a state's `on:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Submit,
    Withdraw,
    Approved,
    Rejected,
    ChangesRequested,
    Expired,
    ReviewDue,
    MarkUpToDate,
    Archive,
    Edit,
    /// An administrator moved the document; not a key under `on:` (it may go anywhere).
    Override,
}

/// One problem in a definition (or a scenario), with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Option<Pos>,
    /// A stable snake_case name of the problem, such as `unreachable_state`.
    pub code: &'static str,
    pub message: String,
}

/// Why a definition could not be loaded: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_all(.diagnostics))]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl Workflow {
    /// Reads and validates a definition from YAML or JSON text. `file` names it in messages.
    pub fn from_text(text: &str, file: &str) -> Result<Workflow, LoadError> {
        let doc = signoff_yaml::parse_str(text, Budget::default()).map_err(|e| LoadError {
            diagnostics: vec![Diagnostic {
                file: file.to_owned(),
                pos: e.pos(),
                code: "syntax",
                message: strip_pos(&e.to_string()),
            }],
        })?;
        // Anything the YAML reader had to guess at (a duplicate key, where the last one would
        // silently win; several documents) is an error in a definition: a second
        // `initial: approved` must not make documents start approved.
        let diagnostics = yaml_ambiguities(&doc.warnings, file);
        // What validation would say about a tree in which one value silently replaced
        // another is a follow-on of the ambiguity, so it is not reported beside it.
        if !diagnostics.is_empty() {
            return Err(LoadError { diagnostics });
        }
        Workflow::from_node(&doc.root, file)
    }

    /// Reads and validates a definition from an already parsed tree (for example a
    /// workflow written inline in a scenario file; positions are then those of that file).
    pub fn from_node(node: &Node, file: &str) -> Result<Workflow, LoadError> {
        let json = node.to_json();
        let def: WorkflowDef = serde_path_to_error::deserialize(&json).map_err(|e| {
            let path = parse_serde_path(&e.path().to_string());
            LoadError {
                diagnostics: vec![Diagnostic {
                    file: file.to_owned(),
                    pos: Some(if e.inner().to_string().starts_with("unknown field") {
                        locate_key(node, &path)
                    } else {
                        locate(node, &path)
                    }),
                    code: "schema",
                    message: format!(
                        "{}: {}",
                        display_path(&path),
                        shorten_quoted(&e.inner().to_string())
                    ),
                }],
            }
        })?;
        let mut problems = Vec::new();
        let compiled = compile(def, &mut problems);
        if problems.is_empty() {
            if let Some(wf) = compiled {
                return Ok(wf);
            }
        }
        let mut diagnostics: Vec<Diagnostic> = problems
            .into_iter()
            .map(|p| Diagnostic {
                file: file.to_owned(),
                pos: Some(locate(node, &p.path)),
                code: p.code,
                message: p.message,
            })
            .collect();
        diagnostics.sort_by_key(|d| d.pos);
        Err(LoadError { diagnostics })
    }

    /// Compiles a definition built in code. Problems have no positions.
    pub fn from_def(def: WorkflowDef) -> Result<Workflow, LoadError> {
        let mut problems = Vec::new();
        match compile(def, &mut problems) {
            Some(wf) if problems.is_empty() => Ok(wf),
            _ => Err(LoadError {
                diagnostics: problems
                    .into_iter()
                    .map(|p| Diagnostic {
                        file: String::new(),
                        pos: None,
                        code: p.code,
                        message: format!("{}: {}", display_path(&p.path), p.message),
                    })
                    .collect(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The SHA-256 (hex) of the canonical JSON of the definition: the version documents pin.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn def(&self) -> &WorkflowDef {
        &self.def
    }

    pub fn initial(&self) -> usize {
        self.initial
    }

    pub fn states(&self) -> &[StateDef] {
        &self.def.states
    }

    pub fn state(&self, i: usize) -> &StateDef {
        &self.def.states[i]
    }

    pub fn state_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Where `trigger` leads from state `i`, if anywhere.
    pub fn next(&self, i: usize, trigger: Trigger) -> Option<usize> {
        self.next[i][trigger as usize]
    }

    /// The members of a fixed group of the definition.
    pub fn group_members(&self, group: &str) -> Option<&[String]> {
        self.def.groups.get(group).map(Vec::as_slice)
    }

    /// A text diagram of the states, their transitions and their approval stages. (The
    /// pictures, and this text with a state marked as the current one: [`diagram::Diagram`].)
    pub fn diagram(&self) -> String {
        self.text_diagram(None)
    }

    /// The text diagram, with `current` (a state, and maybe one of its stages) marked.
    pub(crate) fn text_diagram(&self, current: Option<(usize, Option<usize>)>) -> String {
        const HERE: &str = "  <== current";
        let mut out = format!("workflow {} ({})\n", self.def.name, &self.hash[..12]);
        for (i, s) in self.def.states.iter().enumerate() {
            let mut marks = Vec::new();
            if i == self.initial {
                marks.push("initial".to_owned());
            }
            if s.is_final {
                marks.push("final".to_owned());
            }
            if let Some(d) = s.due {
                marks.push(format!("due {d}"));
            }
            if let Some(r) = &s.review {
                if let Some(e) = r.every {
                    marks.push(format!("review every {e}"));
                }
                if let Some(e) = r.idle {
                    marks.push(format!("review after {e} idle"));
                }
            }
            let marks = if marks.is_empty() {
                String::new()
            } else {
                format!(" ({})", marks.join(", "))
            };
            let here = |yes: bool| if yes { HERE } else { "" };
            let this_state = current.is_some_and(|(c, _)| c == i);
            out.push_str(&format!("[{}]{marks}{}\n", s.name, here(this_state)));
            if let Some(a) = &s.approval {
                out.push_str(&format!(
                    "  approval, new version: {}\n",
                    stale_name(a.on_new_version)
                ));
                for (k, st) in a.stages.iter().enumerate() {
                    let due = st.due.map(|d| format!(" (due {d})")).unwrap_or_default();
                    let this_stage = this_state && current.is_some_and(|(_, g)| g == Some(k));
                    out.push_str(&format!(
                        "  stage {} {}{due}{}\n",
                        k + 1,
                        st.name,
                        here(this_stage)
                    ));
                    for g in &st.groups {
                        out.push_str(&format!("    || {}\n", describe_group(g)));
                    }
                }
            }
            for t in Trigger::ALL {
                if let Some(to) = self.next(i, t) {
                    out.push_str(&format!(
                        "  --{}--> [{}]\n",
                        t.name(),
                        self.def.states[to].name
                    ));
                }
            }
        }
        out
    }
}

impl Trigger {
    pub const COUNT: usize = 10;
    /// The triggers that appear under `on:`, in file-format order.
    pub const ALL: [Trigger; Trigger::COUNT] = [
        Trigger::Submit,
        Trigger::Withdraw,
        Trigger::Approved,
        Trigger::Rejected,
        Trigger::ChangesRequested,
        Trigger::Expired,
        Trigger::ReviewDue,
        Trigger::MarkUpToDate,
        Trigger::Archive,
        Trigger::Edit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Trigger::Submit => "submit",
            Trigger::Withdraw => "withdraw",
            Trigger::Approved => "approved",
            Trigger::Rejected => "rejected",
            Trigger::ChangesRequested => "changes_requested",
            Trigger::Expired => "expired",
            Trigger::ReviewDue => "review_due",
            Trigger::MarkUpToDate => "mark_up_to_date",
            Trigger::Archive => "archive",
            Trigger::Edit => "edit",
            Trigger::Override => "override",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TransitionsDef {
    pub fn get(&self, t: Trigger) -> Option<&String> {
        match t {
            Trigger::Submit => self.submit.as_ref(),
            Trigger::Withdraw => self.withdraw.as_ref(),
            Trigger::Approved => self.approved.as_ref(),
            Trigger::Rejected => self.rejected.as_ref(),
            Trigger::ChangesRequested => self.changes_requested.as_ref(),
            Trigger::Expired => self.expired.as_ref(),
            Trigger::ReviewDue => self.review_due.as_ref(),
            Trigger::MarkUpToDate => self.mark_up_to_date.as_ref(),
            Trigger::Archive => self.archive.as_ref(),
            Trigger::Edit => self.edit.as_ref(),
            Trigger::Override => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, p.line, p.column, self.code, self.message
            ),
            None => write!(f, "{}: {}: {}", self.file, self.code, self.message),
        }
    }
}

/// One step of a path in a definition, owned (see [`Seg`] for the borrowed form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSeg {
    Key(String),
    Index(usize),
}

/// The node at `path`, or the deepest node on the way when the rest is missing (for
/// instance a required key that is absent: we point at the mapping that lacks it).
pub(crate) fn locate(root: &Node, path: &[PathSeg]) -> Pos {
    let mut node = root;
    for seg in path {
        let next = match seg {
            PathSeg::Key(k) => node.at(&[Seg::Key(k)]),
            PathSeg::Index(i) => node.at(&[Seg::Index(*i)]),
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node.pos
}

/// Like [`locate`], but for a path ending in a key, the place of the key itself.
pub(crate) fn locate_key(root: &Node, path: &[PathSeg]) -> Pos {
    if let Some((PathSeg::Key(last), parent)) = path.split_last() {
        let mut node = root;
        for seg in parent {
            let next = match seg {
                PathSeg::Key(k) => node.at(&[Seg::Key(k)]),
                PathSeg::Index(i) => node.at(&[Seg::Index(*i)]),
            };
            match next {
                Some(n) => node = n,
                None => return locate(root, path),
            }
        }
        if let Some((key, _)) = node.get_entry(last) {
            return key.pos;
        }
    }
    locate(root, path)
}

/// Renders a path as `states[2].on.submit`.
pub(crate) fn display_path(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

/// Reads a path as rendered by `serde_path_to_error` (`states[2].on.submit`).
pub(crate) fn parse_serde_path(s: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    if s == "." {
        return out;
    }
    for part in s.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(PathSeg::Key(key.to_owned()));
        }
        for idx in rest.split('[').filter(|x| !x.is_empty()) {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(PathSeg::Index(i));
            }
        }
    }
    out
}

/// A problem found by [`compile`], with the path it concerns.
struct Problem {
    path: Vec<PathSeg>,
    code: &'static str,
    message: String,
}

fn compile(def: WorkflowDef, problems: &mut Vec<Problem>) -> Option<Workflow> {
    let mut report = |path: Vec<PathSeg>, code: &'static str, message: String| {
        problems.push(Problem {
            path,
            code,
            message,
        })
    };
    let k = |s: &str| PathSeg::Key(s.to_owned());
    let st = |i: usize| vec![k("states"), PathSeg::Index(i)];
    let with = |mut base: Vec<PathSeg>, more: &[PathSeg]| {
        base.extend_from_slice(more);
        base
    };

    // Names: states are unique; so are stages within an approval and groups within a stage.
    // States whose problems are already reported, so the graph checks stay quiet on them.
    let mut noisy = vec![false; def.states.len()];
    // Set when a state name does not resolve: the graph is then unknown where it matters,
    // and what the graph checks would say is a follow-on of that error, not a problem of
    // its own (`in_review` is "unreachable" only because `submit` names a misspelt state).
    let mut unresolved = false;
    let mut index = HashMap::new();
    for (i, s) in def.states.iter().enumerate() {
        if index.contains_key(&s.name) {
            report(
                with(st(i), &[k("name")]),
                "duplicate_name",
                format!("state {:?} is defined twice", s.name),
            );
            noisy[i] = true;
        } else {
            index.insert(s.name.clone(), i);
        }
    }
    if def.states.is_empty() {
        report(
            vec![k("states")],
            "no_states",
            "the workflow has no states".into(),
        );
        return None;
    }
    let initial = match index.get(&def.initial) {
        Some(&i) => i,
        None => {
            report(
                vec![k("initial")],
                "unknown_state",
                format!("initial state {:?} is not defined", def.initial),
            );
            unresolved = true;
            0
        }
    };

    // Transitions resolve to states.
    let mut next = vec![[None; Trigger::COUNT]; def.states.len()];
    for (i, s) in def.states.iter().enumerate() {
        for t in Trigger::ALL {
            let Some(target) = s.on.get(t) else { continue };
            match index.get(target) {
                Some(&j) => next[i][t as usize] = Some(j),
                None => {
                    noisy[i] = true;
                    unresolved = true;
                    report(
                        with(st(i), &[k("on"), k(t.name())]),
                        "unknown_state",
                        format!(
                            "state {:?}: `{t}` leads to {target:?}, which is not defined",
                            s.name
                        ),
                    )
                }
            }
        }
    }

    // Each state's shape: what it needs given what it has.
    for (i, s) in def.states.iter().enumerate() {
        let needs =
            |t: Trigger,
             why: &str,
             problems: &mut dyn FnMut(Vec<PathSeg>, &'static str, String)| {
                if s.on.get(t).is_none() {
                    problems(
                        with(st(i), &[k("on")]),
                        "missing_transition",
                        format!("state {:?} {why} but has no `on.{t}` transition", s.name),
                    );
                }
            };
        if s.approval.is_some() {
            needs(Trigger::Approved, "runs an approval", &mut report);
            needs(Trigger::Rejected, "runs an approval", &mut report);
        } else {
            for t in [
                Trigger::Approved,
                Trigger::Rejected,
                Trigger::ChangesRequested,
            ] {
                if s.on.get(t).is_some() {
                    report(
                        with(st(i), &[k("on"), k(t.name())]),
                        "no_approval",
                        format!(
                            "state {:?} has an `on.{t}` transition but runs no approval",
                            s.name
                        ),
                    );
                }
            }
        }
        let stage_due = s
            .approval
            .as_ref()
            .is_some_and(|a| a.stages.iter().any(|x| x.due.is_some()));
        if s.due.is_some() || stage_due {
            needs(Trigger::Expired, "has a due date", &mut report);
        }
        if let Some(r) = &s.review {
            needs(Trigger::ReviewDue, "has a periodic review", &mut report);
            if r.every.is_some() == r.idle.is_some() {
                report(
                    with(st(i), &[k("review")]),
                    "bad_review",
                    format!(
                        "state {:?}: a periodic review needs exactly one of `every` or `idle`",
                        s.name
                    ),
                );
            }
        }
        let mut durations = vec![(with(st(i), &[k("due")]), "due", s.due)];
        if let Some(r) = &s.review {
            durations.push((
                with(st(i), &[k("review"), k("every")]),
                "review.every",
                r.every,
            ));
            durations.push((
                with(st(i), &[k("review"), k("idle")]),
                "review.idle",
                r.idle,
            ));
        }
        for (path, key, d) in durations {
            check_duration(&format!("state {:?}", s.name), key, d, path, &mut report);
        }
        let Some(a) = &s.approval else { continue };
        let ap = with(st(i), &[k("approval")]);
        if a.stages.is_empty() {
            report(
                with(ap.clone(), &[k("stages")]),
                "no_stages",
                format!("state {:?}: the approval has no stages", s.name),
            );
        }
        let mut stage_names = HashSet::new();
        for (si, stage) in a.stages.iter().enumerate() {
            let sp = with(ap.clone(), &[k("stages"), PathSeg::Index(si)]);
            if !stage_names.insert(&stage.name) {
                report(
                    with(sp.clone(), &[k("name")]),
                    "duplicate_name",
                    format!(
                        "stage {:?} is defined twice in state {:?}",
                        stage.name, s.name
                    ),
                );
            }
            check_duration(
                &format!("stage {:?}", stage.name),
                "due",
                stage.due,
                with(sp.clone(), &[k("due")]),
                &mut report,
            );
            if stage.groups.is_empty() {
                report(
                    with(sp.clone(), &[k("groups")]),
                    "no_reviewers",
                    format!("stage {:?} has no groups of reviewers", stage.name),
                );
            }
            let mut group_names = HashSet::new();
            for (gi, g) in stage.groups.iter().enumerate() {
                let gp = with(sp.clone(), &[k("groups"), PathSeg::Index(gi)]);
                if !group_names.insert(&g.name) {
                    report(
                        with(gp.clone(), &[k("name")]),
                        "duplicate_name",
                        format!(
                            "group {:?} is defined twice in stage {:?}",
                            g.name, stage.name
                        ),
                    );
                }
                check_group(&def, g, &stage.name, &gp, &mut report);
            }
        }
    }

    // The graph: at least one final state, every state reachable, none a dead end, and
    // a final state reachable from each.
    if !def.states.iter().any(|s| s.is_final) {
        report(
            vec![k("states")],
            "no_final_state",
            "no state is marked `final: true`".into(),
        );
    }
    let mut reached = vec![false; def.states.len()];
    let mut todo = vec![initial];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut reached[i], true) {
            continue;
        }
        todo.extend(next[i].iter().flatten().copied());
    }
    // Which states can reach a final state: a fixed point over the reversed edges.
    let mut exits: Vec<bool> = def.states.iter().map(|s| s.is_final).collect();
    loop {
        let mut changed = false;
        for i in 0..def.states.len() {
            if !exits[i] && next[i].iter().flatten().any(|&j| exits[j]) {
                exits[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let has_final = def.states.iter().any(|s| s.is_final);
    for (i, s) in def.states.iter().enumerate() {
        if noisy[i] {
            continue;
        }
        if !reached[i] {
            if unresolved {
                continue;
            }
            report(
                with(st(i), &[k("name")]),
                "unreachable_state",
                format!(
                    "state {:?} cannot be reached from {:?}",
                    s.name, def.initial
                ),
            );
        } else if !s.is_final && next[i].iter().all(Option::is_none) {
            report(
                with(st(i), &[k("name")]),
                "dead_end",
                format!(
                    "state {:?} is a dead end: it is not final and nothing leaves it",
                    s.name
                ),
            );
        } else if has_final && !exits[i] && !unresolved {
            report(
                with(st(i), &[k("name")]),
                "no_exit",
                format!(
                    "state {:?} cannot reach any final state (a cycle without an exit)",
                    s.name
                ),
            );
        }
    }

    let canonical = serde_json::to_value(&def).map(|v| v.to_string()).ok()?;
    Some(Workflow {
        hash: crate::audit::sha256_hex(canonical.as_bytes()),
        initial,
        index,
        next,
        def,
    })
}

fn check_group(
    def: &WorkflowDef,
    g: &GroupDef,
    stage: &str,
    gp: &[PathSeg],
    report: &mut dyn FnMut(Vec<PathSeg>, &'static str, String),
) {
    let k = |s: &str| PathSeg::Key(s.to_owned());
    let at = |more: &[PathSeg]| {
        let mut p = gp.to_vec();
        p.extend_from_slice(more);
        p
    };
    if g.reviewers.is_empty() {
        report(
            at(&[k("reviewers")]),
            "no_reviewers",
            format!("group {:?} of stage {stage:?} has no reviewers", g.name),
        );
    }
    // The number of reviewers when every source is fixed; `None` when a role makes it
    // depend on the document.
    let mut fixed: Option<usize> = Some(0);
    let mut seen = HashSet::new();
    let sources = g
        .reviewers
        .iter()
        .enumerate()
        .map(|(i, s)| (at(&[k("reviewers"), PathSeg::Index(i)]), s))
        .chain(g.escalate.iter().flat_map(|e| {
            e.to.iter()
                .enumerate()
                .map(move |(i, s)| (at(&[k("escalate"), k("to"), PathSeg::Index(i)]), s))
        }));
    let main_count = g.reviewers.len();
    for (n, (path, source)) in sources.enumerate() {
        let counts = n < main_count;
        match source {
            ReviewerSource::User(u) => {
                if counts && seen.insert(u.clone()) {
                    fixed = fixed.map(|f| f + 1);
                }
            }
            ReviewerSource::Group(name) | ReviewerSource::RoundRobin { group: name, .. } => {
                let Some(members) = def.groups.get(name) else {
                    report(
                        path,
                        "unknown_group",
                        format!("group {name:?} is not defined under `groups`"),
                    );
                    continue;
                };
                if members.is_empty() {
                    report(
                        path,
                        "no_reviewers",
                        format!("group {name:?} has no members"),
                    );
                    continue;
                }
                if let ReviewerSource::RoundRobin { count, .. } = source {
                    if *count == 0 || *count as usize > members.len() {
                        report(
                            path,
                            "bad_round_robin",
                            format!(
                                "round robin picks {count} of group {name:?}, which has {} members",
                                members.len()
                            ),
                        );
                    }
                    if counts {
                        fixed = fixed.map(|f| f + *count as usize);
                    }
                } else if counts {
                    for m in members {
                        if seen.insert(m.clone()) {
                            fixed = fixed.map(|f| f + 1);
                        }
                    }
                }
            }
            ReviewerSource::Role(_) => {
                if counts {
                    fixed = None;
                }
            }
        }
    }
    let who = format!("group {:?}", g.name);
    check_duration(
        &who,
        "remind_every",
        g.remind_every,
        at(&[k("remind_every")]),
        report,
    );
    if let Some(e) = &g.escalate {
        let path = at(&[k("escalate"), k("after")]);
        check_duration(&who, "escalate.after", Some(e.after), path, report);
    }
    match g.rule {
        Rule::Min(0) => report(
            at(&[k("rule"), k("min")]),
            "bad_rule",
            format!("group {:?}: `min` must be at least 1", g.name),
        ),
        Rule::Min(n) => {
            if let Some(f) = fixed.filter(|&f| (n as usize) > f && f > 0) {
                report(
                    at(&[k("rule"), k("min")]),
                    "min_too_large",
                    format!(
                        "group {:?} needs {n} approvals but has only {f} reviewers",
                        g.name
                    ),
                );
            }
        }
        Rule::Percent(p) if p == 0 || p > 100 => report(
            at(&[k("rule"), k("percent")]),
            "bad_rule",
            format!("group {:?}: `percent` must be between 1 and 100", g.name),
        ),
        _ => {}
    }
}

/// Refuses a duration that cannot give a deadline within the range of time, whatever the
/// start: counted even from 0001-01-01T00:00:00Z it passes 9999-12-31T23:59:59Z. Shorter
/// durations counted from a late start are clamped at run time instead (see
/// [`Timestamp::plus`](crate::Timestamp::plus)).
fn check_duration(
    owner: &str,
    key: &str,
    d: Option<IsoDuration>,
    path: Vec<PathSeg>,
    report: &mut dyn FnMut(Vec<PathSeg>, &'static str, String),
) {
    let Some(d) = d.filter(|d| !d.fits_in_range()) else {
        return;
    };
    report(
        path,
        "duration_too_long",
        format!(
            "{owner}: `{key}` {d} is too long: even counted from {} it ends after {}, the last \
             time signoff can keep (at most about 9998 years)",
            crate::Timestamp::MIN,
            crate::Timestamp::MAX
        ),
    );
}

pub(crate) fn describe_group(g: &GroupDef) -> String {
    let who: Vec<String> = g
        .reviewers
        .iter()
        .map(|r| match r {
            ReviewerSource::User(u) => u.clone(),
            ReviewerSource::Group(x) => format!("group {x}"),
            ReviewerSource::Role(Role::Author) => "role author".into(),
            ReviewerSource::Role(Role::PageOwner) => "role page_owner".into(),
            ReviewerSource::Role(Role::SpaceAdmin) => "role space_admin".into(),
            ReviewerSource::RoundRobin { group, count } => {
                format!("{count} of group {group} (round robin)")
            }
        })
        .collect();
    let rule = match g.rule {
        Rule::All => "all".to_owned(),
        Rule::Any => "any".to_owned(),
        Rule::Majority => "majority".to_owned(),
        Rule::Min(n) => format!("min {n}"),
        Rule::Percent(p) => format!("{p}%"),
    };
    let reject = match g.reject {
        RejectPolicy::Veto => "veto",
        RejectPolicy::Consensus => "consensus",
    };
    let mut s = format!("{}: {rule} of [{}], {reject}", g.name, who.join(", "));
    if let Some(sig) = &g.signature {
        s.push_str(&format!(
            ", signature: {}{}",
            sig.meaning,
            if sig.reauth { " (re-auth)" } else { "" }
        ));
    }
    if let Some(r) = g.remind_every {
        s.push_str(&format!(", remind every {r}"));
    }
    if let Some(e) = &g.escalate {
        s.push_str(&format!(", escalate after {}", e.after));
    }
    s
}

pub(crate) fn stale_name(p: StalePolicy) -> &'static str {
    match p {
        StalePolicy::Reset => "reset decisions",
        StalePolicy::KeepUnchanged => "keep unchanged decisions",
    }
}

fn display_all(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// signoff-yaml puts `line:column: ` in front of its messages; we print the place ourselves.
fn strip_pos(msg: &str) -> String {
    let mut parts = msg.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(rest)) if a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok() => {
            rest.trim_start().to_owned()
        }
        _ => msg.to_owned(),
    }
}

/// The YAML reader's warnings (a duplicate key, several documents), as errors: in a
/// definition or a scenario nothing may be guessed at.
pub(crate) fn yaml_ambiguities(
    warnings: &[signoff_yaml::YamlWarning],
    file: &str,
) -> Vec<Diagnostic> {
    warnings
        .iter()
        .map(|w| Diagnostic {
            file: file.to_owned(),
            pos: Some(w.pos),
            code: yaml_warning_code(&w.message),
            message: w.message.replace("; the last one is used", ""),
        })
        .collect()
}

/// The stable code of a YAML reader's warning, by what it says.
fn yaml_warning_code(message: &str) -> &'static str {
    if message.starts_with("duplicate key") {
        "duplicate_key"
    } else if message.contains("more than one YAML document") {
        "several_documents"
    } else {
        "ambiguous_yaml"
    }
}

/// A serde message with any long quoted value cut out: `invalid type: string "<a whole
/// file>", expected ...` must not echo the content of a file that was never a workflow (a
/// `workflow:` path pointing at the wrong file would print it). Short values stay: they are
/// what the author typed (`invalid value: string "bogus"`).
fn shorten_quoted(message: &str) -> String {
    const KEEP: usize = 40;
    let Some(start) = message.find('"') else {
        return message.replace(
            "struct WorkflowDef",
            "a workflow (a mapping with name, initial, states)",
        );
    };
    let Some(len) = message[start + 1..]
        .rfind("\", expected")
        .or_else(|| message[start + 1..].rfind('"'))
    else {
        return message.to_owned();
    };
    let value = &message[start + 1..start + 1 + len];
    let shown = if value.chars().count() > KEEP {
        format!("of {} characters", value.chars().count())
    } else {
        format!("\"{value}\"")
    };
    format!(
        "{}{shown}{}",
        &message[..start],
        &message[start + 1 + len + 1..]
    )
    .replace(
        "struct WorkflowDef",
        "a workflow (a mapping with name, initial, states)",
    )
}
