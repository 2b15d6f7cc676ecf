//! The bounded reader: only regular files, sizes checked before reading, clear errors.

use std::path::PathBuf;

use signoff_yaml::input::{FileKind, InputError, read_file};
use signoff_yaml::{Budget, ParseError, parse_str};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("signoff-yaml-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_regular_file_within_the_limit_is_read() {
    let path = scratch("small.yaml");
    std::fs::write(&path, "a: 1\n").unwrap();
    assert_eq!(read_file(&path, 16).unwrap(), b"a: 1\n");
    assert_eq!(read_file(&path, 5).unwrap(), b"a: 1\n");
}

#[test]
fn a_large_or_sparse_file_is_refused_before_it_is_read() {
    let path = scratch("sparse.yaml");
    let f = std::fs::File::create(&path).unwrap();
    // 2 GB of nothing on disk: refused from its size, without reading a byte.
    f.set_len(2 << 30).unwrap();
    let err = read_file(&path, 4 << 20).unwrap_err();
    assert!(
        matches!(err, InputError::TooLarge { size, limit, .. } if size == 2 << 30 && limit == 4 << 20),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("is 2147483648 bytes, more than the limit of 4194304 bytes")
    );
}

#[test]
fn devices_directories_and_fifos_are_refused() {
    let kind = |p: &std::path::Path| match read_file(p, 1 << 20) {
        Err(InputError::NotAFile { kind, .. }) => Some(kind),
        _ => None,
    };
    assert_eq!(kind("/dev/zero".as_ref()), Some(FileKind::CharDevice));
    assert_eq!(kind(&std::env::temp_dir()), Some(FileKind::Directory));
    // A FIFO with no writer would block a reader forever: it is refused before opening.
    let fifo = scratch("fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(kind(&fifo), Some(FileKind::Fifo));
    let err = read_file(&fifo, 1).unwrap_err().to_string();
    assert!(
        err.ends_with("is a FIFO (named pipe), not a regular file"),
        "{err}"
    );
}

#[test]
fn a_missing_file_names_its_path() {
    let path = scratch("missing.yaml");
    let err = read_file(&path, 1).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
}

#[test]
fn the_node_budget_says_what_was_hit() {
    let budget = Budget {
        max_nodes: 100,
        ..Budget::default()
    };
    // A big file without aliases is big, not an alias bomb.
    let plain: String = (0..200).map(|i| format!("k{i}: v\n")).collect();
    let err = parse_str(&plain, budget).unwrap_err();
    assert!(
        matches!(
            err,
            ParseError::TooManyNodes {
                from_aliases: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the file makes 101 nodes, more than the limit of 100"),
        "{err}"
    );
    assert!(!err.to_string().contains("alias"), "{err}");
    // Aliases that copy a lot say so.
    let bomb =
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
    let err = parse_str(bomb, budget).unwrap_err();
    assert!(err.to_string().contains("copies made by aliases"), "{err}");
}
