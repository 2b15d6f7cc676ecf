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
