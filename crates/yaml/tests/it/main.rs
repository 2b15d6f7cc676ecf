//! Differential tests: whenever the fast scanner accepts a text, the tree (values, positions
//! and warnings) must be exactly the one saphyr-parser gives. Generated texts walk the edges
//! of the subset; the project's fixtures and examples, and the real-manifest corpus when
//! `../shared` is beside the clone, are checked too.

use std::path::{Path, PathBuf};

mod input;

use proptest::prelude::*;
use signoff_yaml::{Budget, fast_path_accepts, parse_str, parse_str_general};

/// Parses `text` both ways and demands the same answer when the fast scanner accepted it.
/// Returns whether it did.
fn same(text: &str) -> bool {
    let accepted = fast_path_accepts(text);
    if accepted {
        let fast = parse_str(text, Budget::default());
        let general = parse_str_general(text, Budget::default());
        assert_eq!(fast, general, "fast and general parses differ for:\n{text}");
    }
    accepted
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn fixtures_examples_and_corpus_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in [
        "crates/roa-check/tests/data",
        "examples",
        "../shared/corpus/forge-manifests",
    ] {
        yaml_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 50,
        "expected the fixture corpus, found {} files",
        files.len()
    );
    let mut accepted = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if same(&text) {
            accepted += 1;
        }
    }
    // The fast path must actually carry most manifests, or the benchmark measures nothing.
    assert!(
        accepted * 2 > files.len(),
        "fast path took only {accepted} of {}",
        files.len()
    );
}

#[test]
fn the_fast_path_takes_typical_manifests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for file in [
        "examples/manifests/approvals-eligible.yml",
        "crates/roa-check/tests/data/check/eligible_full.yml",
        "crates/roa-check/tests/data/check/egress_validator_warnings.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(fast_path_accepts(&text), "{file}");
    }
}

#[test]
fn edge_cases_agree() {
    let cases = [
        "a: 1\n",
        "---\na: 1\n",
        "--- \na: 1\n",
        "a:\n- x\n- y\nb: 2\n",
        "a:\n  - x\n  -\n  - \n  - k: v\n    j: 'q'\n",
        "a:   spaced   # comment\n",
        "a: 'it''s'\nb: \"esc \\\" \\n \\x41 \\u00e9\"\n",
        "a: \"unterminated\n",
        "a: x: y\n",
        "a: x:\n",
        "a: value\n  continued\n",
        "a:\n  b: 1\n c: 2\n",
        "- a\n- - b\n",
        "- # comment\n- x\n",
        "a: #c\n",
        "a: x #c\nb: y#z\n",
        "a: [1, 2]\n",
        "a: &x 1\nb: *x\n",
        "a: |\n  text\n",
        "a: 1\na: 2\n",
        "a: 1\n---\nb: 2\n",
        "  a: 1\n",
        "a:\n\n  b: 1\n\n  # c\n  c: 2\n",
        "a: -1\nb: -\n",
        "a: ''\nb: \"\"\n",
        "a: 'x'y\n",
        "a: \"x\"#y\n",
        "a: \"x\" # y\n",
        "key with spaces: v\n",
        "a :b\n",
        "http://x: y\n",
        "a: http://x.com/#frag\n",
        "a:\n  -\n    b: 1\n",
        "a:\n-\n- x\n",
        "- a: 1\n  b:\n  - c\n",
        "- a: 1\n   b: 2\n",
        "a: 1\n\n",
        "a: 1",
        "-\n",
        "- \n",
        "a:\n",
        "a: ~\nb: null\nc: true\nd: 0x1F\ne: 1.5\n",
        "a: \"\\q\"\n",
        "a: 'x'  \n",
        "<<: {a: 1}\n",
        // Found by the fuzzer: control characters are not YAML.
        "\0\0N:",
        "- /\0\n",
        "a: b\x7f\n",
        "a: b\x0c\n",
        "--- --:\n",
        "--- a\n",
        "a: 1\n...\n",
        "a: 1\n--- \n",
        "---x: 1\n",
    ];
    let mut accepted = 0;
    for case in cases {
        accepted += usize::from(same(case));
    }
    // These are in the subset, so the comparison above really happened for them.
    for case in [
        "a: 1\n",
        "---\na: 1\n",
        "a:\n- x\n- y\nb: 2\n",
        "a:\n  - x\n  -\n  - \n  - k: v\n    j: 'q'\n",
        "a: 'it''s'\nb: \"esc \\\" \\n \\x41 \\u00e9\"\n",
        "a: x #c\nb: y#z\n",
        "a: 1\na: 2\n",
        "- a: 1\n  b:\n  - c\n",
        "a: ~\nb: null\nc: true\nd: 0x1F\ne: 1.5\n",
    ] {
        assert!(same(case), "not taken by the fast path: {case:?}");
    }
    assert!(
        accepted >= 20,
        "only {accepted} edge cases took the fast path"
    );
}

#[derive(Debug, Clone)]
enum Tree {
    Scalar(String),
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9.:/_-]{0,10}",
        Just(String::new()),
        Just("'quoted'".to_string()),
        Just("'it''s'".to_string()),
        Just("\"dq \\\" \\n \\t x\"".to_string()),
        Just("true".to_string()),
        Just("-5".to_string()),
        Just("x # comment".to_string()),
        Just("a#b".to_string()),
        Just("a: b".to_string()),
        Just("a:".to_string()),
        Just("[1, 2]".to_string()),
        Just("{a: 1}".to_string()),
        Just("&anchor x".to_string()),
        Just("- x".to_string()),
        Just("*".to_string()),
        Just("https://example.com/a?b=c#d".to_string()),
        Just("${VAR}".to_string()),
        Just("~".to_string()),
        Just("'unterminated".to_string()),
        Just("x  ".to_string()),
    ]
}

fn key_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-zA-Z0-9:_-]{0,8}",
        Just("jira:adminPage".to_string()),
        Just("two words".to_string()),
        Just("<<".to_string()),
        Just("'q'".to_string()),
        Just("k ".to_string()),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    scalar_text()
        .prop_map(Tree::Scalar)
        .prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(Tree::Seq),
                prop::collection::vec((key_text(), inner), 1..4).prop_map(Tree::Map),
            ]
        })
}

/// Layout choices for rendering a tree as block YAML.
#[derive(Debug, Clone)]
struct Style {
    indent: usize,
    indentless: bool,
    comments: bool,
    blank_lines: bool,
    jitter: u8,
}

fn next(salt: &mut u64) -> u8 {
    *salt = salt
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*salt >> 33) as u8
}

fn render(t: &Tree, depth: usize, st: &Style, out: &mut String, salt: &mut u64) {
    let pad = " ".repeat(depth * st.indent);
    match t {
        Tree::Scalar(s) => out.push_str(&format!("{pad}{s}\n")),
        Tree::Seq(items) => {
            for item in items {
                if st.comments && next(salt) % 5 == 0 {
                    out.push_str(&format!("{pad}# note\n"));
                }
                match item {
                    Tree::Scalar(s) => out.push_str(&format!("{pad}- {s}\n")),
                    Tree::Map(entries) if next(salt) % 2 == 0 => {
                        // Compact: the first key on the dash line.
                        let mut inner = String::new();
                        render(&Tree::Map(entries.clone()), depth + 1, st, &mut inner, salt);
                        let inner_pad = " ".repeat((depth + 1) * st.indent);
                        let first = inner.strip_prefix(&inner_pad).unwrap_or(&inner);
                        let dash = format!(
                            "{pad}-{}",
                            " ".repeat((depth + 1) * st.indent - depth * st.indent - 1)
                                .max(" ".to_string())
                        );
                        out.push_str(&dash);
                        out.push_str(first);
                    }
                    other => {
                        out.push_str(&format!("{pad}-\n"));
                        render(other, depth + 1, st, out, salt);
                    }
                }
            }
        }
        Tree::Map(entries) => {
            for (k, v) in entries {
                if st.blank_lines && next(salt) % 4 == 0 {
                    out.push('\n');
                }
                match v {
                    Tree::Scalar(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    Tree::Seq(_) if st.indentless => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        render(v, depth, st, out, salt);
                    }
                    _ => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        let extra = if st.jitter > 0 && next(salt) % 7 == 0 {
                            1
                        } else {
                            0
                        };
                        let mut inner = String::new();
                        render(v, depth + 1, st, &mut inner, salt);
                        for line in inner.lines() {
                            if line.is_empty() {
                                out.push('\n');
                            } else {
                                out.push_str(&" ".repeat(extra));
                                out.push_str(line);
                                out.push('\n');
                            }
                        }
                    }
                }
            }
        }
    }
}

fn style() -> impl Strategy<Value = Style> {
    (
        2..5usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0..2u8,
    )
        .prop_map(
            |(indent, indentless, comments, blank_lines, jitter)| Style {
                indent,
                indentless,
                comments,
                blank_lines,
                jitter,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn generated_block_yaml_agrees(t in tree(), st in style(), salt in any::<u64>(), header in any::<bool>()) {
        let mut text = if header { "---\n".to_string() } else { String::new() };
        let mut salt = salt;
        render(&t, 0, &st, &mut text, &mut salt);
        same(&text);
    }

    #[test]
    fn mutated_texts_agree(t in tree(), st in style(), cut in any::<prop::sample::Index>(), insert in prop::sample::select(vec![" ", "  ", "- ", ":", "#", "'", "\"", "\n", "x", "\n  "])) {
        let mut text = String::new();
        let mut salt = 7;
        render(&t, 0, &st, &mut text, &mut salt);
        let at = cut.index(text.len() + 1);
        text.insert_str(at, insert);
        same(&text);
    }
}

/// The generator must reach the fast path often, or the differential test compares little.
#[test]
fn generated_yaml_often_takes_the_fast_path() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (tree(), style(), any::<u64>());
    let mut accepted = 0;
    for _ in 0..500 {
        let (t, st, mut salt) = strategy.new_tree(&mut runner).unwrap().current();
        let mut text = String::new();
        render(&t, 0, &st, &mut text, &mut salt);
        accepted += usize::from(same(&text));
    }
    assert!(
        accepted > 100,
        "only {accepted} of 500 generated texts took the fast path"
    );
}
