//! The corruption sweep: a small store built with the CLI, then a seeded series of damages
//! (flipped bytes, zeroed 4 KiB pages, truncations, appended garbage), and every read and
//! write command of `signoff doc|audit|pending|tick` (and `sim inspect`) run on each damaged
//! copy. It fails on a panic (exit 101 or `panicked` on stderr), on a read command that
//! changes the file, and on an exported trail that changed without an error.
//!
//! `SIGNOFF_SWEEP=N` runs N damages instead of the short form's 24; `SIGNOFF_SWEEP_SEED=S`
//! starts from another seed. A failure prints the seed and the damage that reproduce it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The short form's number of damages: a few seconds.
const SHORT: u64 = 24;

#[test]
fn no_damage_crashes_the_cli_or_changes_the_trail_silently() {
    let cases = env_u64("SIGNOFF_SWEEP").unwrap_or(SHORT);
    let seed = env_u64("SIGNOFF_SWEEP_SEED").unwrap_or(0x5eed_0013);
    let dir = Scratch::new("sweep");
    let base = dir.0.join("base.redb");
    build(&base);
    let good = std::fs::read(&base).unwrap();
    let trail = run(&["audit", "export"], &base);
    assert_eq!(trail.code, 0, "{}", trail.stderr);
    let trail = trail.stdout;
    assert!(trail.lines().count() >= 10, "{trail}");
    let csv = run(&["audit", "export", "--format", "csv"], &base).stdout;

    let mut rng = Rng(seed);
    let mut found: Vec<String> = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for case in 0..cases {
        let damage = Damage::pick(&mut rng, &good);
        let bytes = damage.apply(&good, &mut rng.clone());
        let what = format!("seed {seed:#x}, case {case}: {damage:?}");
        // Read commands: each on the same copy, which must never change.
        let path = dir.0.join(format!("case-{case}.redb"));
        std::fs::write(&path, &bytes).unwrap();
        let before = stamp(&path);
        for args in READS {
            let r = run(args, &path);
            check_no_panic(&r, args, &what, &mut found);
            *outcomes
                .entry(format!("{} exit {}", args[0], r.code))
                .or_default() += 1;
            if stamp(&path) != before {
                found.push(format!("{what}: `{}` changed the file", args.join(" ")));
            }
            let expected = match *args {
                ["audit", "export"] => Some(&trail),
                ["audit", "export", "--format", "csv"] => Some(&csv),
                _ => None,
            };
            if let Some(expected) = expected
                && r.code == 0
                && r.stdout != *expected
            {
                found.push(format!(
                    "{what}: `{}` exited 0 with a different trail",
                    args.join(" ")
                ));
            }
        }
        // sim inspect on the damaged file as a realm's store: no panic, no change.
        let realm = dir.0.join(format!("realm-{case}"));
        std::fs::create_dir_all(&realm).unwrap();
        std::fs::write(realm.join("EU.redb"), &bytes).unwrap();
        let before_realm = stamp(&realm.join("EU.redb"));
        let r = signoff(&["sim", "inspect", "--data", realm.to_str().unwrap()]);
        check_no_panic(&r, &["sim", "inspect"], &what, &mut found);
        if stamp(&realm.join("EU.redb")) != before_realm {
            found.push(format!("{what}: `sim inspect` changed the file"));
        }
        // Write commands: each on a fresh copy; what they leave must still hold the trail
        // or be reported as damaged.
        for args in WRITES {
            std::fs::write(&path, &bytes).unwrap();
            let r = run(args, &path);
            check_no_panic(&r, args, &what, &mut found);
            *outcomes
                .entry(format!("{} exit {}", args[0], r.code))
                .or_default() += 1;
            let after = run(&["audit", "export"], &path);
            check_no_panic(&after, &["audit", "export"], &what, &mut found);
            if after.code == 0 {
                let missing = trail.lines().filter(|l| !after.stdout.contains(l)).count();
                if missing > 0 {
                    found.push(format!(
                        "{what}: after `{}` (exit {}), `audit export` exited 0 without {missing} records of the trail",
                        args.join(" "),
                        r.code
                    ));
                }
            }
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(&realm);
    }
    // What the damages did, shown with `--no-capture`: a test's only report.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("sweep of {cases} damages (seed {seed:#x}): {outcomes:?}");
    }
    assert!(
        found.is_empty(),
        "{} findings:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn every_read_command_reads_a_store_file_without_write_permission_and_leaves_it_as_it_was() {
    let dir = Scratch::new("readonly");
    let store = dir.0.join("ro.redb");
    build(&store);
    let mut perms = std::fs::metadata(&store).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&store, perms).unwrap();
    // Tests run as root, where permission bits stop no write: the bytes and the mtime are
    // what shows that nothing was written.
    let before = stamp(&store);
    for args in READS {
        let r = run(args, &store);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!r.stdout.is_empty(), "{args:?}");
    }
    assert!(stamp(&store) == before, "a read command changed the store");
}

#[test]
fn sim_inspect_never_creates_a_store() {
    let dir = Scratch::new("inspect");
    let r = signoff(&["sim", "inspect", "--data", dir.0.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no realm store"), "{}", r.stderr);
    std::fs::write(dir.0.join("EU.redb"), b"").unwrap();
    let r = signoff(&["sim", "inspect", "--data", dir.0.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("EU.redb") && r.stderr.contains("empty"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::metadata(dir.0.join("EU.redb")).unwrap().len(), 0);
}

/// The read commands, on the documents `build` makes.
const READS: &[&[&str]] = &[
    &["doc", "status", "d0"],
    &["doc", "history", "d1"],
    &["audit", "verify"],
    &["audit", "export"],
    &["audit", "export", "--format", "csv"],
    &["pending", "--user", "carol", "--at", "2026-01-05T09:00:00Z"],
];

/// The write commands, each run on a fresh damaged copy.
const WRITES: &[&[&str]] = &[
    &["doc", "approve", "d1", "--by", "bob", "--comment", "ok"],
    &["doc", "submit", "d2", "--by", "alice"],
    &["tick", "--now", "2027-01-05T09:00:00Z"],
];

/// Three documents: one approved, one in approval, one draft.
fn build(store: &Path) {
    let basic = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/templates/basic.yaml");
    let basic = basic.to_str().unwrap();
    for (i, doc) in ["d0", "d1", "d2"].iter().enumerate() {
        let steps: Vec<Vec<&str>> = match i {
            0 => vec![
                vec!["doc", "create", doc, "--workflow", basic, "--by", "alice"],
                vec!["doc", "submit", doc, "--by", "alice"],
                vec!["doc", "approve", doc, "--by", "bob", "--comment", "Fine"],
            ],
            1 => vec![
                vec!["doc", "create", doc, "--workflow", basic, "--by", "alice"],
                vec!["doc", "submit", doc, "--by", "alice"],
            ],
            _ => vec![vec![
                "doc",
                "create",
                doc,
                "--workflow",
                basic,
                "--by",
                "alice",
            ]],
        };
        for step in steps {
            let r = run(&step, store);
            assert_eq!(r.code, 0, "{step:?}: {}", r.stderr);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// XOR the byte at this offset with this mask.
    Flip(usize, u8),
    /// Zero the 4 KiB page with this number.
    ZeroPage(usize),
    /// Keep only this many bytes.
    Truncate(usize),
    /// Append this many bytes of garbage.
    Append(usize),
}

impl Damage {
    /// A damage of `good`, at places that hold something (redb preallocates zeros).
    fn pick(rng: &mut Rng, good: &[u8]) -> Damage {
        let used: Vec<usize> = (0..good.len())
            .step_by(64)
            .filter(|at| {
                good[*at..(*at + 64).min(good.len())]
                    .iter()
                    .any(|b| *b != 0)
            })
            .collect();
        let place = used[rng.below(used.len())] + rng.below(64);
        match rng.below(8) {
            0..=3 => Damage::Flip(place.min(good.len() - 1), 1 << rng.below(8)),
            4 | 5 => Damage::ZeroPage(place / 4096),
            6 => Damage::Truncate(rng.below(good.len())),
            _ => Damage::Append(1 + rng.below(8192)),
        }
    }

    fn apply(self, good: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut bytes = good.to_vec();
        match self {
            Damage::Flip(at, mask) => bytes[at] ^= mask,
            Damage::ZeroPage(page) => {
                let end = ((page + 1) * 4096).min(bytes.len());
                bytes[page * 4096..end].fill(0);
            }
            Damage::Truncate(len) => bytes.truncate(len),
            Damage::Append(n) => bytes.extend((0..n).map(|_| rng.below(256) as u8)),
        }
        bytes
    }
}

/// xorshift64*: seeded, so a failing damage can be replayed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n.max(1)
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], store: &Path) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--store", store.to_str().unwrap()]);
    signoff(&all)
}

fn signoff(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the signoff binary runs");
    Run {
        // A signal (no code) counts as a crash too.
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// No panic, and an unusable store (exit 2) is named in the message.
fn check_no_panic(r: &Run, args: &[&str], what: &str, found: &mut Vec<String>) {
    if r.code == 101 || r.code < 0 || r.stderr.contains("panicked") {
        found.push(format!(
            "{what}: `{}` exited {}: {}",
            args.join(" "),
            r.code,
            r.stderr.trim()
        ));
    } else if r.code == 2 && !r.stderr.contains("case-") && !r.stderr.contains("realm-") {
        found.push(format!(
            "{what}: `{}` exited 2 without naming the store: {}",
            args.join(" "),
            r.stderr.trim()
        ));
    }
}

fn stamp(path: &Path) -> Option<(Vec<u8>, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((std::fs::read(path).ok()?, meta.modified().ok()?))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("signoff-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
