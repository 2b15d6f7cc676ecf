//! Every `console` block of README.md is run: lines starting with `$ signoff` are commands,
//! the lines after them are the output they must print. The README cannot drift from the
//! code, and every example in it is something a new user can run.

use signoff_e2e::{root, signoff};

#[test]
fn readme_console_examples_print_what_the_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut examples = 0;
    let mut in_block = false;
    let mut current: Option<(String, String)> = None;
    let mut all: Vec<(String, String)> = Vec::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            if in_block {
                all.extend(current.take());
            }
            in_block = !in_block && line.trim() == "```console";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            all.extend(current.take());
            current = Some((cmd.to_string(), String::new()));
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (cmd, expected) in all {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(words[0], "signoff", "README examples run signoff: {cmd}");
        let run = signoff(&words[1..]);
        assert_eq!(
            run.stdout, expected,
            "README example `{cmd}` prints something else"
        );
        examples += 1;
    }
    assert!(examples >= 2, "the README lost its examples");
}

/// Every `mermaid` block of README.md is what a `console` example just before it prints,
/// so the drawing GitHub shows is the one the command makes today.
#[test]
fn readme_mermaid_blocks_are_the_output_of_their_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in readme.lines() {
        let fence = line.trim();
        if let Some((kind, body)) = open.as_mut() {
            if fence == "```" {
                blocks.push((std::mem::take(kind), std::mem::take(body)));
                open = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(kind) = fence.strip_prefix("```") {
            open = Some((kind.to_owned(), String::new()));
        }
    }
    let mut checked = 0;
    for (i, (kind, body)) in blocks.iter().enumerate() {
        if kind != "mermaid" {
            continue;
        }
        let console = blocks[..i]
            .iter()
            .rev()
            .find(|(k, _)| k == "console")
            .expect("a console block shows the command of a mermaid block");
        let cmd = console
            .1
            .lines()
            .next()
            .unwrap()
            .strip_prefix("$ ")
            .unwrap();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(
            signoff(&words[1..]).stdout,
            *body,
            "README mermaid block of `{cmd}`"
        );
        checked += 1;
    }
    assert!(checked >= 1, "the README lost its Mermaid drawing");
}

#[test]
fn readme_documents_every_rule_and_reason() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ids = roa_check::rules::ELIGIBILITY_RULES
        .iter()
        .chain(roa_check::rules::WARNING_RULES)
        .map(|(id, _)| *id)
        .chain(roa_check::diff::REASONS.iter().map(|(id, _, _)| *id));
    let missing: Vec<&str> = ids
        .filter(|id| !readme.contains(&format!("`{id}`")))
        .collect();
    assert!(missing.is_empty(), "README does not document {missing:?}");
}
