//! Drawings of workflows: the templates in every format, the highlight, hostile names and
//! determinism.

use signoff_core::Workflow;
use signoff_core::workflow::diagram::{Diagram, HighlightError};

use crate::{crate_dir, read, template};

const TEMPLATES: [&str; 4] = [
    "basic.yaml",
    "two-stage.yaml",
    "periodic-review.yaml",
    "regulated.yaml",
];

/// Snapshots one format of one template, and checks what every drawing must be.
fn check(name: &str, diagram: &Diagram<'_>) {
    let (mermaid, dot, svg) = (diagram.mermaid(), diagram.dot(), diagram.svg());
    well_formed_svg(&svg);
    balanced_dot(&dot);
    insta::assert_snapshot!(format!("{name}.mmd"), mermaid);
    insta::assert_snapshot!(format!("{name}.dot"), dot);
    insta::assert_snapshot!(format!("{name}.svg"), svg);
}

#[test]
fn every_template_in_every_format() {
    for name in TEMPLATES {
        let wf = template(name);
        check(name.trim_end_matches(".yaml"), &Diagram::new(&wf));
    }
}

#[test]
fn the_current_state_and_stage_are_highlighted() {
    let wf = template("regulated.yaml");
    let d = Diagram::new(&wf)
        .highlight("in_approval", Some("approval"))
        .unwrap();
    check("regulated-current", &d);
    // In the text diagram too, and only where asked.
    let text = d.text();
    assert_eq!(text.matches("<== current").count(), 2, "{text}");
    assert!(
        text.contains("[in_approval] (due P21D)  <== current\n"),
        "{text}"
    );
    assert!(text.contains("  stage 2 approval  <== current\n"), "{text}");
    // Without a highlight the text is the one `workflow show` always printed.
    assert_eq!(Diagram::new(&wf).text(), wf.diagram());

    // A state without stages: one box highlighted in each format.
    let d = Diagram::new(&wf).highlight("published", None).unwrap();
    assert_eq!(
        d.svg().matches("sw-current").count(),
        2,
        "the rule and one box"
    );
    assert_eq!(d.mermaid().matches("style ").count(), 1);
    assert_eq!(d.dot().matches("fillcolor=\"#E9F2FF\"").count(), 1);
}

#[test]
fn an_unknown_state_or_stage_is_named() {
    let wf = template("basic.yaml");
    let err = Diagram::new(&wf).highlight("in_reveiw", None).unwrap_err();
    assert!(matches!(&err, HighlightError::UnknownState { state, .. } if state == "in_reveiw"));
    assert_eq!(
        err.to_string(),
        "workflow \"basic-approval\" has no state \"in_reveiw\" (its states: draft, in_approval, approved)"
    );
    let err = Diagram::new(&wf)
        .highlight("in_approval", Some("review"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "state \"in_approval\" of workflow \"basic-approval\" has no stage \"review\" (its stages: approval)"
    );
    let err = Diagram::new(&wf)
        .highlight("draft", Some("approval"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "state \"draft\" of workflow \"basic-approval\" has no stage \"approval\" (it runs no approval)"
    );
}

/// Names that break each format when written raw: quotes, markup, a line break that would
/// forge a line, Mermaid's `end`, `#`, `;`, `|`, `%%` and backticks, DOT's `\N`, a
/// right-to-left override, and a loop from a state with an approval to itself.
const HOSTILE: &str = r#"
name: "hostile \"<wf>\" & co"
initial: "draft \"1\""
groups:
  "a|b": ["<script>alert(1)</script>", "bob & 'carol'"]
states:
  - name: "draft \"1\""
    on:
      submit: "end"
  - name: "end"
    approval:
      stages:
        - name: "review <b>now</b> #1; `x` 100%"
          groups:
            - name: "g\"]; s0 --> s1; %%"
              reviewers:
                - group: "a|b"
                - user: "\\N \\G \\l"
                - user: "<script>alert(1)</script>"
              rule: { min: 2 }
    on:
      approved: "published\nfinal: forged"
      rejected: "draft \"1\""
      edit: "end"
  - name: "published\nfinal: forged"
    final: true
    on:
      edit: "\u202Eevil"
  - name: "\u202Eevil"
    final: true
"#;

#[test]
fn hostile_names_are_escaped_in_every_format() {
    let wf = Workflow::from_text(HOSTILE, "hostile.yaml").unwrap_or_else(|e| panic!("{e}"));
    let d = Diagram::new(&wf)
        .highlight("end", Some("review <b>now</b> #1; `x` 100%"))
        .unwrap();
    check("hostile", &d);
    let (mermaid, dot, svg) = (d.mermaid(), d.dot(), d.svg());
    // The line break and the override are visible escapes, never the characters (Mermaid
    // writes the backslash of the escape as an entity code).
    for (out, backslash) in [(&mermaid, "#92;"), (&dot, "\\\\"), (&svg, "\\")] {
        assert!(!out.contains('\u{202e}'), "{out}");
        assert!(out.contains(&format!("{backslash}u{{202e}}evil")), "{out}");
        assert!(
            out.contains(&format!("published{backslash}nfinal: forged")),
            "{out}"
        );
    }
    // Mermaid: every label is one quoted string without a quote, `#`, `;`, `|` or markup
    // of its own; the only statements are the ones the renderer writes.
    for line in mermaid.lines().skip(2) {
        let line = line.trim_start();
        let labels: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert_eq!(line.matches('"').count() % 2, 0, "{line}");
        for l in labels {
            let no_markup = l.replace("<br>", "");
            assert!(
                !no_markup.contains(['<', '>', '|', '`', '%', '\\']),
                "{line}"
            );
            // Every `#` and `;` is part of an entity code.
            let stripped = strip_entities(&no_markup);
            assert!(!stripped.contains(['#', ';', '&']), "{line}");
        }
    }
    assert!(mermaid.contains("#60;b#62;now#60;/b#62; #35;1#59; #96;x#96; 100#37;"));
    // DOT: the backslashes of `\N` are doubled, so Graphviz prints them.
    assert!(dot.contains(r"\\N \\G \\l"), "{dot}");
    // SVG: the script is text.
    assert!(
        svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{svg}"
    );
    assert!(!svg.contains("<script"), "{svg}");
}

#[test]
fn drawings_are_deterministic_and_ignore_the_layout_of_the_file() {
    for name in TEMPLATES {
        let a = template(name);
        let json = serde_json::to_string_pretty(a.def()).unwrap();
        let b = Workflow::from_text(&json, "b.json").unwrap();
        let (da, db) = (Diagram::new(&a), Diagram::new(&b));
        assert_eq!(da.svg(), db.svg(), "{name}");
        assert_eq!(da.svg(), Diagram::new(&a).svg(), "{name}");
        assert_eq!(da.mermaid(), db.mermaid(), "{name}");
        assert_eq!(da.dot(), db.dot(), "{name}");
    }
}

#[test]
fn svg_boxes_never_overlap_and_fit_the_view_box() {
    // The templates, the hostile names, and every workflow written inline in a scenario.
    let mut workflows: Vec<Workflow> = TEMPLATES.iter().map(|n| template(n)).collect();
    workflows.push(Workflow::from_text(HOSTILE, "hostile.yaml").unwrap());
    let dir = crate_dir().join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let doc = signoff_yaml::parse_str(&read(&path), signoff_yaml::Budget::default()).unwrap();
        if let Some(node) = doc
            .root
            .get("workflow")
            .filter(|n| n.get("states").is_some())
        {
            workflows.push(Workflow::from_node(node, &path.display().to_string()).unwrap());
        }
    }
    assert!(workflows.len() >= 20, "{} workflows", workflows.len());
    for wf in &workflows {
        apart_and_inside(wf);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Random workflows (cycles, loops, arrows that skip rows, approvals of several stages)
    /// draw without overlaps, inside the view box, as well-formed SVG.
    #[test]
    fn random_workflows_draw_without_overlaps(
        n in 2usize..9,
        extra in proptest::collection::vec((0usize..9, 0usize..4, 0usize..9), 0..12),
        approvals in proptest::collection::vec((0usize..9, 1usize..4), 0..4),
    ) {
        let text = random_workflow(n, &extra, &approvals);
        let wf = Workflow::from_text(&text, "random.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        apart_and_inside(&wf);
        let d = Diagram::new(&wf).highlight(&wf.states()[n - 1].name, None).unwrap();
        well_formed_svg(&d.svg());
        balanced_dot(&d.dot());
    }
}

/// A valid workflow: a chain of `submit`s to the final last state, plus `extra` arrows
/// (from, trigger, to) and approvals (state, stages) on states before the last.
fn random_workflow(
    n: usize,
    extra: &[(usize, usize, usize)],
    approvals: &[(usize, usize)],
) -> String {
    let mut text = String::from("name: random\ninitial: s0\nstates:\n");
    for i in 0..n {
        text.push_str(&format!("  - name: s{i}\n"));
        let stages = approvals
            .iter()
            .find(|(s, _)| *s == i && i + 1 < n)
            .map(|(_, k)| *k);
        if i + 1 == n {
            text.push_str("    final: true\n");
        }
        if let Some(k) = stages {
            text.push_str("    approval:\n      stages:\n");
            for j in 0..k {
                text.push_str(&format!(
                    "        - name: stage {j} of s{i}\n          groups:\n            - name: reviewers\n              reviewers: [{{ user: bob }}, {{ user: carol }}]\n              rule: any\n"
                ));
            }
        }
        let mut on: Vec<(String, usize)> = Vec::new();
        if i + 1 < n {
            on.push(("submit".into(), i + 1));
        }
        if stages.is_some() {
            on.push(("approved".into(), (i + 2).min(n - 1)));
            on.push(("rejected".into(), 0));
        }
        for &(from, t, to) in extra {
            let trigger = ["withdraw", "edit", "archive", "mark_up_to_date"][t];
            if from % n == i && !on.iter().any(|(x, _)| x == trigger) {
                on.push((trigger.into(), to % n));
            }
        }
        if !on.is_empty() {
            text.push_str("    on:\n");
            for (t, to) in on {
                text.push_str(&format!("      {t}: s{to}\n"));
            }
        }
    }
    text
}

/// No two boxes of the drawing overlap unless one holds the other, and all are inside the
/// view box.
fn apart_and_inside(wf: &Workflow) {
    let svg = Diagram::new(wf).svg();
    let (w, h) = view_box(&svg);
    let rects = rects(&svg);
    for (i, a) in rects.iter().enumerate() {
        assert!(
            a.0 >= 0.0 && a.1 >= 0.0 && a.0 + a.2 <= w && a.1 + a.3 <= h,
            "{}: {a:?} outside {w}x{h}",
            wf.name()
        );
        for b in &rects[i + 1..] {
            let apart =
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
            let nested = inside(a, b) || inside(b, a);
            assert!(
                apart || nested,
                "{}: {a:?} overlaps {b:?}\n{svg}",
                wf.name()
            );
        }
    }
}

/// `(x, y, width, height)` of every `rect` of a drawing.
fn rects(svg: &str) -> Vec<(f64, f64, f64, f64)> {
    svg.lines()
        .filter(|l| l.starts_with("<rect "))
        .map(|l| {
            let attr = |name: &str| -> f64 {
                let start = l.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                l[start..start + l[start..].find('"').unwrap()]
                    .parse()
                    .unwrap()
            };
            (attr("x"), attr("y"), attr("width"), attr("height"))
        })
        .collect()
}

fn inside(a: &(f64, f64, f64, f64), b: &(f64, f64, f64, f64)) -> bool {
    a.0 >= b.0 && a.1 >= b.1 && a.0 + a.2 <= b.0 + b.2 && a.1 + a.3 <= b.1 + b.3
}

fn view_box(svg: &str) -> (f64, f64) {
    let start = svg.find("viewBox=\"0 0 ").unwrap() + 13;
    let v: Vec<f64> = svg[start..start + svg[start..].find('"').unwrap()]
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

fn strip_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('#') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').expect("an entity code ends with ;");
        let code = &rest[i + 1..i + end];
        assert!(
            code == "quot" || code.chars().all(|c| c.is_ascii_digit()),
            "entity {code}"
        );
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every quoted DOT string is closed, and braces balance outside strings.
fn balanced_dot(dot: &str) {
    let (mut in_string, mut escaped, mut depth) = (false, false, 0i32);
    for c in dot.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                (false, '\n') => panic!("a line break inside a DOT string:\n{dot}"),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0, "{dot}");
    }
    assert!(!in_string && depth == 0, "{dot}");
}

/// A small well-formedness check: elements nest and close, attribute values are quoted,
/// `&` starts only the five entities and numeric references, and text holds no `<`.
fn well_formed_svg(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    let mut in_style = false;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if !in_style {
            check_entities(text);
        }
        let gt = rest[lt..].find('>').expect("a tag closes") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "closing {name}");
            in_style = false;
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split(' ').next().unwrap().to_owned();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "<{tag}>"
        );
        // Attributes: name="value" pairs, values without `<` or a raw quote.
        let mut attrs = &body[name.len()..];
        while !attrs.trim().is_empty() {
            let a = attrs.trim_start();
            let eq = a
                .find("=\"")
                .unwrap_or_else(|| panic!("attribute in <{tag}>"));
            let end = a[eq + 2..].find('"').unwrap() + eq + 2;
            let value = &a[eq + 2..end];
            assert!(!value.contains('<'), "<{tag}>");
            check_entities(value);
            attrs = &a[end + 1..];
        }
        if !self_closing {
            in_style = name == "style";
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert!(rest.trim().is_empty());
}

fn check_entities(text: &str) {
    for (i, _) in text.match_indices('&') {
        let end = text[i..].find(';').expect("an entity ends with ;");
        let entity = &text[i + 1..i + end];
        assert!(
            ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())),
            "&{entity};"
        );
    }
}
