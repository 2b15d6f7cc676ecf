//! Scenario files: a workflow, timed commands and expectations, run against the engine.
//!
//! The same runner serves the test suite (`crates/core/tests/scenarios/*.yaml`) and
//! `signoff workflow test`. It does no IO: a scenario names its workflow by path, and the
//! caller's `load` function reads it. Every expectation that fails is reported with its
//! line and column in the scenario file; the run goes on after a failure, so one run lists
//! them all. The format is documented in `crates/core/README.md`.

use std::fmt;

use serde_json::Value as J;
use signoff_yaml::{Budget, Node, Pos};

use std::sync::Arc;

use crate::audit;
use crate::engine::Engine;
use crate::event::{Command, Record};
use crate::evidence::TableVerifier;
use crate::time::{FixedClock, Timestamp};
use crate::workflow::{Diagnostic, LoadError, Workflow, yaml_ambiguities};

/// The result of a run: the failed expectations and the engine as the steps left it.
#[derive(Debug)]
pub struct Report {
    pub file: String,
    pub workflow: String,
    pub steps: usize,
    pub expectations: usize,
    pub failures: Vec<Failure>,
    pub engine: Engine,
}

/// One expectation that did not hold, or one step that could not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
    pub pos: Pos,
    pub message: String,
}

/// The most steps a scenario may have, counted before the run (a step repeated through a
/// YAML alias counts each time). The format has no loops and a tick is one evaluation
/// however far it moves the clock (deadlines and reminders do not catch up), so the work of
/// a run grows with its steps; checks such as `verifies` read a document's whole trail,
/// which makes the worst run quadratic in the steps. At this limit the worst run we know
/// (1,000 steps adding records to one document, then 1,000 `verifies` of it) takes about
/// 1.4 s in a release build; real scenarios have tens of steps.
pub const MAX_STEPS: usize = 2_000;

/// The most expectations a scenario may have, counted before the run: each key under an
/// `expect:`, with each user of `pending_for` and each state of `by_state` counting as one.
pub const MAX_EXPECTATIONS: usize = 2_000;

/// Runs a scenario. `load` returns the text of a workflow file named in the scenario
/// (relative to the scenario, as the caller sees fit). An unreadable scenario or workflow
/// is an error; a failed expectation is a [`Failure`] in the report.
pub fn run(
    text: &str,
    file: &str,
    load: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Report, LoadError> {
    let doc = signoff_yaml::parse_str(text, Budget::default())
        .map_err(|e| diag(file, e.pos(), "syntax", e.to_string()))?;
    let root = &doc.root;
    // Nothing ambiguous is run: every structural problem is reported first, all at once.
    let mut problems = yaml_ambiguities(&doc.warnings, file);
    let verifier = shape(root, file, &mut problems);
    if !problems.is_empty() {
        return Err(LoadError {
            diagnostics: problems,
        });
    }
    let wf = match root.get("workflow") {
        Some(n) if n.as_str().is_some() => {
            let path = n.as_str().unwrap_or_default();
            let source = load(path).map_err(|e| {
                diag(
                    file,
                    Some(n.pos),
                    "unreadable",
                    format!("cannot read workflow {path}: {e}"),
                )
            })?;
            Workflow::from_text(&source, path)?
        }
        Some(n) => Workflow::from_node(n, file)?,
        None => {
            return Err(diag(
                file,
                Some(root.pos),
                "schema",
                "a scenario needs a `workflow:` (a path or a mapping)".into(),
            ));
        }
    };
    let Some(steps) = root.get("steps").and_then(Node::as_seq) else {
        return Err(diag(
            file,
            Some(root.pos),
            "schema",
            "a scenario needs a list of `steps:`".into(),
        ));
    };
    check_limits(steps, file)?;
    let default_doc = root
        .get("doc")
        .and_then(Node::scalar_string)
        .unwrap_or_else(|| "doc".to_owned());
    let mut run = Run {
        file: file.to_owned(),
        engine: Engine::new().with_verifier(Arc::new(verifier)),
        hash: String::new(),
        now: Timestamp::default(),
        last: Vec::new(),
        failures: Vec::new(),
        expectations: 0,
        default_doc,
    };
    run.hash = run.engine.register(wf.clone()).hash().to_owned();
    for step in steps {
        run.step(step);
    }
    Ok(Report {
        file: file.to_owned(),
        workflow: wf.name().to_owned(),
        steps: steps.len(),
        expectations: run.expectations,
        failures: run.failures,
        engine: run.engine,
    })
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.column, self.message
        )
    }
}

/// Keys of a command step that belong to the runner, not to the command.
const STEP_KEYS: [&str; 4] = ["at", "doc", "refused", "emits"];

struct Run {
    file: String,
    engine: Engine,
    hash: String,
    now: Timestamp,
    /// The records the last step produced, for `emits`.
    last: Vec<Record>,
    failures: Vec<Failure>,
    expectations: usize,
    default_doc: String,
}

impl Run {
    fn step(&mut self, step: &Node) {
        if let Some(at) = step.get("at") {
            match at.scalar_string().unwrap_or_default().parse::<Timestamp>() {
                Ok(t) if t < self.now => self.fail(at.pos, format!("time goes backwards to {t}")),
                Ok(t) => self.now = t,
                Err(e) => return self.fail(at.pos, e.to_string()),
            }
        }
        if let Some(tick) = step.get("tick") {
            match tick
                .scalar_string()
                .unwrap_or_default()
                .parse::<Timestamp>()
            {
                Ok(t) => {
                    // `shape` refused ticks that go back in time.
                    self.now = self.now.max(t);
                    self.last = self.engine.tick(t);
                }
                Err(e) => return self.fail(tick.pos, e.to_string()),
            }
            self.check_emits(step);
        } else if let Some(expect) = step.get("expect") {
            self.expect(expect);
        } else if step.get("do").is_some() {
            self.command(step);
        } else {
            self.fail(
                step.pos,
                "a step needs `do:` (a command), `tick:` or `expect:`".into(),
            );
        }
    }

    fn command(&mut self, step: &Node) {
        let doc = step
            .get("doc")
            .and_then(Node::scalar_string)
            .unwrap_or_else(|| self.default_doc.clone());
        let mut json = step.to_json();
        if let J::Object(map) = &mut json {
            for k in STEP_KEYS {
                map.remove(k);
            }
        }
        let cmd: Command = match serde_json::from_value(json.clone()) {
            Ok(c) => c,
            Err(e) => return self.fail(step.pos, format!("not a command: {e}")),
        };
        // Flattened enums let unknown keys through; a typo such as `coment:` must not pass
        // silently, so compare with what the command says it holds.
        let known = serde_json::to_value(&cmd).unwrap_or_default();
        if let (J::Object(given), J::Object(known)) = (&json, &known) {
            if let Some(key) = given.keys().find(|k| !known.contains_key(*k)) {
                let pos = step.get_entry(key).map_or(step.pos, |(k, _)| k.pos);
                return self.fail(
                    pos,
                    format!("unknown key `{key}` in a `{}` step", cmd.action.name()),
                );
            }
        }
        // Serde reads the out-of-range text an earlier version stored (see
        // `Timestamp`'s `Deserialize`); a scenario is new input, so it gets the range.
        if let crate::event::Action::Delegate { until, .. } = &cmd.action {
            if !until.in_range() {
                let pos = step.get("until").map_or(step.pos, |n| n.pos);
                let text = step
                    .get("until")
                    .and_then(Node::scalar_string)
                    .unwrap_or_default();
                return self.fail(pos, crate::time::TimeError::OutOfRange(text).to_string());
            }
        }
        let clock = FixedClock(self.now);
        let result = if matches!(cmd.action, crate::event::Action::Create { .. }) {
            let hash = self.hash.clone();
            self.engine.create(&doc, &hash, &cmd, &clock)
        } else {
            self.engine.execute(&doc, &cmd, &clock)
        };
        let expected = step.get("refused");
        match (result, expected) {
            (Ok(records), None) => self.last = records.to_vec(),
            (Ok(_), Some(code)) => {
                self.expectations += 1;
                self.last.clear();
                let code = code.scalar_string().unwrap_or_default();
                self.fail(
                    step.get("refused").map_or(step.pos, |n| n.pos),
                    format!(
                        "expected `{}` to be refused ({code}), but it was carried out",
                        cmd.action.name()
                    ),
                );
            }
            (Err(refusal), None) => {
                self.last.clear();
                self.fail(step.pos, format!("unexpected refusal: {refusal}"));
            }
            (Err(refusal), Some(code)) => {
                self.expectations += 1;
                self.last.clear();
                let want = code.scalar_string().unwrap_or_default();
                if refusal.reason.code() != want {
                    self.fail(
                        code.pos,
                        format!(
                            "expected refusal {want}, got {}: {refusal}",
                            refusal.reason.code()
                        ),
                    );
                }
            }
        }
        self.check_emits(step);
    }

    fn check_emits(&mut self, step: &Node) {
        let Some(emits) = step.get("emits") else {
            return;
        };
        self.expectations += 1;
        let want = strings(emits);
        let got: Vec<String> = self
            .last
            .iter()
            .map(|r| r.event.action().to_owned())
            .collect();
        if want != got {
            self.fail(emits.pos, format!("emits: expected {want:?}, got {got:?}"));
        }
    }

    fn expect(&mut self, expect: &Node) {
        let Some(entries) = expect.as_map() else {
            return self.fail(expect.pos, "`expect:` must be a mapping".into());
        };
        let doc_id = expect
            .get("doc")
            .and_then(Node::scalar_string)
            .unwrap_or_else(|| self.default_doc.clone());
        for (key, value) in entries {
            let key = key.scalar_string().unwrap_or_default();
            if key == "doc" {
                continue;
            }
            self.expectations += 1;
            if let Err(message) = self.check(&doc_id, &key, value) {
                self.fail(value.pos, format!("{key}: {message}"));
            }
        }
    }

    /// Checks one expectation; `Err` carries what differed.
    fn check(&self, doc_id: &str, key: &str, value: &Node) -> Result<(), String> {
        let e = &self.engine;
        let doc = || {
            e.doc(doc_id)
                .ok_or(format!("document {doc_id:?} does not exist"))
        };
        let same = |want: String, got: String| {
            if want == got {
                Ok(())
            } else {
                Err(format!("expected {want}, got {got}"))
            }
        };
        match key {
            "state" => {
                let d = doc()?;
                same(
                    value.scalar_string().unwrap_or_default(),
                    d.state.state_name(&d.workflow).to_owned(),
                )
            }
            "version" => same(
                value.scalar_string().unwrap_or_default(),
                doc()?.state.version.to_string(),
            ),
            "last_approved" => same(
                value.scalar_string().unwrap_or_else(|| "none".into()),
                e.last_approved(doc_id)
                    .map_or("none".into(), |a| a.version.to_string()),
            ),
            "pending" => {
                let d = doc()?;
                let mut got: Vec<String> = d
                    .state
                    .pending(&d.workflow)
                    .into_iter()
                    .map(|p| p.reviewer)
                    .collect();
                got.sort();
                let mut want = strings(value);
                want.sort();
                same(format!("{want:?}"), format!("{got:?}"))
            }
            "pending_for" => {
                for (user, docs) in value.as_map().unwrap_or_default() {
                    let user = user.scalar_string().unwrap_or_default();
                    let got: Vec<String> = e
                        .pending_for(&user, self.now)
                        .into_iter()
                        .map(|p| match p.on_behalf_of {
                            Some(who) => format!("{} for {who}", p.doc),
                            None => p.doc,
                        })
                        .collect();
                    same(
                        format!("{user}: {:?}", strings(docs)),
                        format!("{user}: {got:?}"),
                    )?;
                }
                Ok(())
            }
            "by_state" => {
                for (state, docs) in value.as_map().unwrap_or_default() {
                    let state = state.scalar_string().unwrap_or_default();
                    let got: Vec<&str> = e.by_state(&state);
                    same(
                        format!("{state}: {:?}", strings(docs)),
                        format!("{state}: {got:?}"),
                    )?;
                }
                Ok(())
            }
            "overdue" => {
                let got: Vec<String> = e.overdue(self.now).into_iter().map(|o| o.doc).collect();
                same(format!("{:?}", strings(value)), format!("{got:?}"))
            }
            "history" => {
                let version = value
                    .get("version")
                    .and_then(Node::scalar_string)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let got: Vec<String> = e
                    .history(doc_id, version)
                    .into_iter()
                    .map(describe_decision)
                    .collect();
                let want = value.get("decisions").map(strings).unwrap_or_default();
                same(format!("{want:?}"), format!("{got:?}"))
            }
            "verifies" => {
                let d = doc()?;
                let got = audit::verify_head(&d.records, &d.state.head).is_ok();
                same(value.scalar_string().unwrap_or_default(), got.to_string())
            }
            "manifestation" => {
                let version = value
                    .get("version")
                    .and_then(Node::scalar_string)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let text = audit::manifestation(&doc()?.records, version);
                for want in value.get("contains").map(strings).unwrap_or_default() {
                    if !text.contains(&want) {
                        return Err(format!("expected the text to contain {want:?}:\n{text}"));
                    }
                }
                Ok(())
            }
            "delegations" => {
                let got = doc()?
                    .state
                    .delegations
                    .iter()
                    .map(|d| format!("{} -> {}", d.from, d.to))
                    .collect::<Vec<_>>();
                same(format!("{:?}", strings(value)), format!("{got:?}"))
            }
            other => Err(format!(
                "unknown expectation `{other}` (known: state, version, last_approved, pending, \
                 pending_for, by_state, overdue, history, verifies, manifestation, delegations)"
            )),
        }
    }

    fn fail(&mut self, pos: Pos, message: String) {
        self.failures.push(Failure {
            file: self.file.clone(),
            pos,
            message,
        });
    }
}

/// Refuses a scenario over [`MAX_STEPS`] or [`MAX_EXPECTATIONS`] before anything runs,
/// pointing at the first step past the limit.
fn check_limits(steps: &[Node], file: &str) -> Result<(), LoadError> {
    if let Some(step) = steps.get(MAX_STEPS) {
        return Err(diag(
            file,
            Some(step.pos),
            "too_many_steps",
            format!(
                "the scenario has {} steps; at most {MAX_STEPS} are run",
                steps.len()
            ),
        ));
    }
    let mut expectations = 0;
    for step in steps {
        for (key, value) in step
            .get("expect")
            .and_then(Node::as_map)
            .unwrap_or_default()
        {
            expectations += match key.as_str() {
                Some("pending_for" | "by_state") => value.as_map().map_or(1, <[_]>::len),
                _ => 1,
            };
        }
        if expectations > MAX_EXPECTATIONS {
            return Err(diag(
                file,
                Some(step.pos),
                "too_many_expectations",
                format!(
                    "the scenario has more than {MAX_EXPECTATIONS} expectations by this step; \
                     at most {MAX_EXPECTATIONS} are checked"
                ),
            ));
        }
    }
    Ok(())
}

/// `bob approve`, or `dave approve for bob` under a delegation, or `bob sign approval`.
fn describe_decision(r: &Record) -> String {
    let mut s = match &r.event {
        crate::event::Event::Decided {
            reviewer, decision, ..
        } if reviewer != &r.actor => format!("{} {} for {reviewer}", r.actor, decision.name()),
        crate::event::Event::Decided { decision, .. } => {
            format!("{} {}", r.actor, decision.name())
        }
        _ => match &r.on_behalf_of {
            Some(p) => format!("{} sign for {p}", r.actor),
            None => format!("{} sign", r.actor),
        },
    };
    if let Some(sig) = &r.signature {
        s.push_str(&format!(" ({})", sig.meaning));
    }
    s
}

/// Keys of the top level of a scenario.
const TOP_KEYS: [&str; 4] = ["workflow", "doc", "steps", "credentials"];
/// Keys of a tick step.
const TICK_KEYS: [&str; 2] = ["tick", "emits"];
/// Keys of an expect step.
const EXPECT_STEP_KEYS: [&str; 2] = ["expect", "at"];
/// Keys under `expect:`.
const EXPECTATIONS: [&str; 12] = [
    "doc",
    "state",
    "version",
    "last_approved",
    "pending",
    "pending_for",
    "by_state",
    "overdue",
    "history",
    "verifies",
    "manifestation",
    "delegations",
];

/// Checks the structure of a scenario before anything runs: unknown keys anywhere but
/// inside a command (the command's own parser checks those), steps that are two kinds at
/// once, times that go back, expectations missing what they need. Returns the verifier
/// the scenario's `credentials:` describe.
fn shape(root: &Node, file: &str, problems: &mut Vec<Diagnostic>) -> TableVerifier {
    let mut problem = |pos: Pos, message: String| {
        problems.push(Diagnostic {
            file: file.to_owned(),
            pos: Some(pos),
            code: "schema",
            message,
        })
    };
    let Some(entries) = root.as_map() else {
        problem(
            root.pos,
            "a scenario is a mapping with `workflow:` and `steps:`".into(),
        );
        return TableVerifier::new();
    };
    for (key, _) in entries {
        let k = key.scalar_string().unwrap_or_default();
        if !TOP_KEYS.contains(&k.as_str()) {
            problem(
                key.pos,
                format!(
                    "unknown key `{k}` at the top level (known: {})",
                    TOP_KEYS.join(", ")
                ),
            );
        }
    }
    let mut verifier = TableVerifier::new();
    if let Some(creds) = root.get("credentials") {
        match creds.as_seq() {
            Some(items) => {
                for item in items {
                    let field = |name: &str| item.get(name).and_then(Node::scalar_string);
                    let known = item.as_map().is_some_and(|m| {
                        m.iter().all(|(k, _)| {
                            matches!(
                                k.scalar_string().as_deref(),
                                Some("user" | "method" | "credential")
                            )
                        })
                    });
                    match (known, field("user"), field("method"), field("credential")) {
                        (true, Some(u), Some(m), Some(c)) => verifier = verifier.accept(&u, &m, &c),
                        _ => problem(
                            item.pos,
                            "a credential is `{ user: ID, method: METHOD, credential: TEXT }`"
                                .into(),
                        ),
                    }
                }
            }
            None => problem(creds.pos, "`credentials:` must be a list".into()),
        }
    }
    let Some(steps) = root.get("steps").and_then(Node::as_seq) else {
        return verifier;
    };
    let mut now: Option<Timestamp> = None;
    let mut time = |node: &Node, what: &str, problem: &mut dyn FnMut(Pos, String)| {
        let Ok(t) = node
            .scalar_string()
            .unwrap_or_default()
            .parse::<Timestamp>()
        else {
            // The runner reports an unreadable time at its place.
            return;
        };
        match now {
            Some(before) if t < before => problem(
                node.pos,
                format!("{what} {t} goes back in time (the clock is at {before})"),
            ),
            _ => now = Some(t),
        }
    };
    for step in steps {
        let Some(map) = step.as_map() else {
            problem(step.pos, "a step is a mapping".into());
            continue;
        };
        let kinds: Vec<&str> = ["do", "tick", "expect"]
            .into_iter()
            .filter(|k| step.get(k).is_some())
            .collect();
        if kinds.len() > 1 {
            problem(
                step.pos,
                format!(
                    "a step is one of a command (`do:`), a `tick:` or an `expect:`, not {}",
                    kinds
                        .iter()
                        .map(|k| format!("`{k}:`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
            continue;
        }
        if kinds.is_empty() {
            problem(
                step.pos,
                "a step needs `do:` (a command), `tick:` or `expect:`".into(),
            );
            continue;
        }
        let allowed: &[&str] = match kinds.first() {
            Some(&"tick") => &TICK_KEYS,
            Some(&"expect") => &EXPECT_STEP_KEYS,
            // Command steps: the command parser names unknown keys at run time.
            _ => &[],
        };
        if !allowed.is_empty() {
            for (key, _) in map {
                let k = key.scalar_string().unwrap_or_default();
                if !allowed.contains(&k.as_str()) {
                    problem(
                        key.pos,
                        format!(
                            "unknown key `{k}` in a `{}` step (known: {})",
                            kinds[0],
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(at) = step.get("at") {
            time(at, "`at:`", &mut problem);
        }
        if let Some(tick) = step.get("tick") {
            time(tick, "the tick", &mut problem);
        }
        if let Some(expect) = step.get("expect") {
            for (key, value) in expect.as_map().unwrap_or_default() {
                let k = key.scalar_string().unwrap_or_default();
                if !EXPECTATIONS.contains(&k.as_str()) {
                    problem(
                        key.pos,
                        format!(
                            "unknown expectation `{k}` (known: {})",
                            EXPECTATIONS[1..].join(", ")
                        ),
                    );
                    continue;
                }
                let needs: &[&str] = match k.as_str() {
                    "history" => &["version", "decisions"],
                    "manifestation" => &["version", "contains"],
                    _ => continue,
                };
                let Some(fields) = value.as_map() else {
                    problem(value.pos, format!("`{k}` needs {}", needs.join(" and ")));
                    continue;
                };
                for need in needs {
                    if value.get(need).is_none() {
                        problem(value.pos, format!("`{k}` needs `{need}:`"));
                    }
                }
                for (f, _) in fields {
                    let f = f.scalar_string().unwrap_or_default();
                    if !needs.contains(&f.as_str()) {
                        problem(
                            value.pos,
                            format!("unknown key `{f}` in `{k}` (known: {})", needs.join(", ")),
                        );
                    }
                }
                if let Some(v) = value.get("version") {
                    if v.scalar_string()
                        .and_then(|v| v.parse::<u32>().ok())
                        .is_none()
                    {
                        problem(v.pos, format!("`{k}.version` must be a version number"));
                    }
                }
            }
        }
    }
    verifier
}

fn strings(n: &Node) -> Vec<String> {
    match n.as_seq() {
        Some(items) => items.iter().filter_map(Node::scalar_string).collect(),
        None => n.scalar_string().into_iter().collect(),
    }
}

fn diag(file: &str, pos: Option<Pos>, code: &'static str, message: String) -> LoadError {
    LoadError {
        diagnostics: vec![Diagnostic {
            file: file.to_owned(),
            pos,
            code,
            message,
        }],
    }
}
