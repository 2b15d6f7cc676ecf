//! `signoff doc|pending|audit|tick --store postgres://...`: the built binary against a real
//! PostgreSQL server (`SIGNOFF_PG_URL`, or a throwaway server this process starts), each
//! test in a schema of its own (`SIGNOFF_PG_SCHEMA`).

use std::process::Command;
use std::sync::OnceLock;

use signoff_storage::throwaway_pg::ThrowawayServer;

fn url() -> String {
    static SERVER: OnceLock<ThrowawayServer> = OnceLock::new();
    match std::env::var("SIGNOFF_PG_URL") {
        Ok(url) => url,
        Err(_) => SERVER
            .get_or_init(|| ThrowawayServer::start().unwrap_or_else(|e| panic!("{e}")))
            .url(),
    }
}

/// Runs `signoff ARGS --store STORE` with the tables in `schema`; (exit code, stdout, stderr).
fn signoff(schema: &str, store: &str, args: &str) -> (i32, String, String) {
    let mut all: Vec<&str> = args.split_whitespace().collect();
    all.extend(["--store", store]);
    signoff_args(schema, &all)
}

#[test]
fn a_document_through_its_life_in_postgres() {
    let schema = format!("cli_{}", std::process::id());
    let url = url();
    let basic = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/templates/basic.yaml");
    let run = |args: &str| signoff(&schema, &url, args);

    let (code, out, err) = run(&format!(
        "doc create travel --workflow {basic} --by alice --at 2026-01-05T09:00:00Z"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("travel: created by alice"), "{out}");
    // Created once: a second create is refused, naming the server and schema, not the password.
    let (code, _, err) = run(&format!("doc create travel --workflow {basic} --by alice"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists in postgres://"), "{err}");
    assert!(err.contains(&format!("(schema {schema})")), "{err}");
    assert!(
        !err.contains(signoff_storage::throwaway_pg::PASSWORD),
        "{err}"
    );

    let (code, out, err) = run("doc submit travel --by alice --at 2026-01-05T10:00:00Z");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("waiting for bob, carol"), "{out}");
    let (code, out, _) = run("pending --user bob --at 2026-01-05T11:00:00Z");
    assert_eq!(code, 0);
    assert!(out.starts_with("travel\tin_approval\tversion 1"), "{out}");
    let (code, _, err) =
        run("doc approve travel --by bob --comment Fine --at 2026-01-06T08:30:00Z");
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run("pending --user bob --at 2026-01-06T09:00:00Z");
    assert_eq!((code, out.trim()), (0, "nothing pending for bob"));
    let (code, out, _) = run("doc status travel");
    assert_eq!(code, 0);
    assert!(out.contains("approved"), "{out}");
    let (code, out, err) = run("audit verify");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 1 documents, "), "{out}");
    assert!(out.contains("every hash chain verifies"), "{out}");
    let (code, out, _) = run("doc history travel");
    assert_eq!(code, 0);
    assert!(out.contains("bob") && out.contains("Fine"), "{out}");
    let (code, out, err) = run("tick --now 2026-03-01T00:00:00Z");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("tick 2026-03-01T00:00:00Z:"), "{out}");
    let (code, out, err) = run("audit export --format jsonl");
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 3, "{out}");
    // Anchors live beside a store file; a database has none, so their folder is named.
    let (code, _, err) = run("audit anchor --key /nonexistent.key");
    assert_eq!(code, 2);
    assert!(
        err.contains("name their folder with --anchors DIR"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("signoff-cli-pg-anchors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("anchor.key").display().to_string();
    let anchors = dir.join("anchors").display().to_string();
    let (code, out, err) = run(&format!("audit keygen --out {key}"));
    assert_eq!(code, 0, "{err}");
    let public = out.trim().rsplit(' ').next().unwrap().to_owned();
    let (code, out, err) = run(&format!(
        "audit anchor --key {key} --anchors {anchors} --at 2026-03-02T00:00:00Z"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 documents, "), "{out}");
    let anchor = format!("{anchors}/000001-20260302T000000Z.json");
    let (code, out, err) = run(&format!(
        "audit verify --anchor {anchor} --public-key {public}"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: 1 documents"), "{out}");
    // A self-verifying export takes the folder's latest anchor, and verifies offline.
    let (code, _, err) = run("audit export --format verifiable");
    assert_eq!(code, 2, "the folder is needed here too");
    assert!(err.contains("--anchors DIR"), "{err}");
    let (code, _, err) = run(&format!(
        "audit export --format verifiable --anchors {}/nothing-here",
        dir.display()
    ));
    assert_eq!(code, 2, "a named folder without an anchor: {err}");
    assert!(err.contains("no anchor in"), "{err}");
    let (code, export, err) = run(&format!(
        "audit export --format verifiable --anchors {anchors}"
    ));
    assert_eq!(code, 0, "{err}");
    let file = dir.join("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let (code, out, err) = run(&format!(
        "audit verify --export {} --public-key {public}",
        file.display()
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_is_down_is_named_in_a_typed_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = format!("postgres://signoff:secret@127.0.0.1:{port}/postgres");
    let started = std::time::Instant::now();
    let (code, _, err) = signoff("signoff", &store, "pending --user bob");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(&format!(
            "signoff: cannot reach PostgreSQL at 127.0.0.1:{port}: "
        )),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}

/// Runs `signoff ARGS` (no `--store`) with PostgreSQL tables in `schema`.
fn signoff_args(schema: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signoff"))
        .args(args)
        .env("SIGNOFF_PG_SCHEMA", schema)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the signoff binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `signoff store copy`: a redb store into PostgreSQL, caught up after it grew, a document
/// both hold differently left out, the outbox on request, and back into a new file.
#[test]
fn a_redb_store_copied_into_postgres_and_back() {
    let schema = format!("cli_copy_{}", std::process::id());
    let url = url();
    let dir = std::env::temp_dir().join(format!("signoff-cli-pg-copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src.redb").display().to_string();
    let back = dir.join("back.redb").display().to_string();
    let basic = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/templates/basic.yaml");
    let on = |store: &str, args: &str| signoff(&schema, store, args);
    let ok = |store: &str, args: &str| {
        let (code, out, err) = on(store, args);
        assert_eq!(code, 0, "{args}: {err}");
        out
    };
    let at = "--at 2026-01-05T09:00:00Z";
    for id in ["a", "b", "c"] {
        ok(
            &src,
            &format!("doc create {id} --workflow {basic} --by alice {at}"),
        );
    }
    ok(&src, &format!("doc submit a --by alice {at}"));
    ok(&src, &format!("doc submit c --by alice {at}"));
    ok(&src, "doc approve c --by bob --at 2026-01-05T10:00:00Z");

    let (code, out, err) = signoff_args(&schema, &["store", "copy", &src, &url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!(
            "3 documents in {src}: 3 copied, 0 caught up, 0 already there; "
        )),
        "{out}"
    );
    assert!(
        out.contains(" records and 1 workflow into postgres://127.0.0.1:"),
        "{out}"
    );
    assert!(
        out.contains("notifications waiting for delivery stay in the source only"),
        "{out}"
    );
    // Everything reads the same from both: pending lists (from the rebuilt index rows),
    // histories, states; the copied chains verify.
    for args in [
        "pending --user carol --at 2026-01-06T00:00:00Z",
        "pending --user bob --at 2026-01-06T00:00:00Z",
        "doc history a",
        "doc history c",
        "doc status c",
    ] {
        assert_eq!(on(&src, args), on(&url, args), "{args}");
    }
    assert!(
        ok(&url, "pending --user carol --at 2026-01-06T00:00:00Z").starts_with("a\tin_approval")
    );
    assert!(ok(&url, "audit verify").starts_with("ok: 3 documents, "));

    // The source goes on; a second copy appends what is new and leaves the rest.
    ok(&src, "doc approve a --by carol --at 2026-01-06T10:00:00Z");
    let (code, out, err) = signoff_args(&schema, &["store", "copy", &src, &url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(": 0 copied, 1 caught up, 2 already there;"),
        "{out}"
    );
    assert_eq!(on(&src, "doc history a"), on(&url, "doc history a"));
    assert_eq!(
        ok(&url, "pending --user carol --at 2026-01-07T00:00:00Z").trim(),
        "nothing pending for carol"
    );

    // b goes on differently in each: the copy leaves it out, says so, and changes nothing.
    ok(&src, &format!("doc submit b --by alice {at}"));
    ok(&url, "doc submit b --by alice --at 2026-01-05T11:00:00Z");
    let before = ok(&url, "doc history b");
    let (code, out, err) = signoff_args(&schema, &["store", "copy", &src, &url]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(", 1 left out;"), "{out}");
    assert!(
        err.contains("document b: holds other records than ") && err.contains("; not copied"),
        "{err}"
    );
    assert!(
        err.contains(
            "left out (reported above): 0 damaged documents in the source, 1 document the \
             destination holds otherwise"
        ),
        "{err}"
    );
    assert_eq!(ok(&url, "doc history b"), before);

    // Back into a new file, with the notifications waiting in the database.
    let (code, out, err) = signoff_args(&schema, &["store", "copy", "--outbox", &url, &back]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(": 3 copied, 0 caught up, 0 already there;"),
        "{out}"
    );
    let copied: usize = out
        .lines()
        .find_map(|l| l.strip_suffix(" notifications waiting for delivery copied"))
        .and_then(|n| n.parse().ok())
        .expect("the outbox line");
    assert!(copied > 0, "{out}");
    for args in ["doc history a", "doc history b", "doc status c"] {
        assert_eq!(on(&url, args), on(&back, args), "{args}");
    }
    // A second --outbox copy would deliver them twice: refused before anything is written.
    let (code, _, err) = signoff_args(&schema, &["store", "copy", "--outbox", &url, &back]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has notifications waiting for delivery"),
        "{err}"
    );
    // Between two schemas of one database.
    let moved = format!("{schema}_moved");
    let (code, out, err) = signoff_args(
        &schema,
        &["store", "copy", "--to-schema", &moved, &url, &url],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(": 3 copied, 0 caught up, 0 already there;"),
        "{out}"
    );
    assert!(out.contains(&format!("(schema {moved})")), "{out}");
    assert_eq!(
        signoff(&moved, &url, "doc history a"),
        signoff(&schema, &url, "doc history a")
    );
    // A source that is not there (another schema) is refused, and nothing is created.
    let lost = dir.join("lost.redb");
    let (code, _, err) = signoff_args(
        &format!("{schema}_typo"),
        &["store", "copy", &url, &lost.display().to_string()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("no signoff store in the schema \"{schema}_typo\"")),
        "{err}"
    );
    assert!(!lost.exists());
    let (code, _, err) = signoff(&format!("{schema}_typo"), &url, "pending --user bob");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no signoff store in the schema"), "{err}");
    // A store into itself is refused.
    let (code, _, err) = signoff_args(&schema, &["store", "copy", &url, &url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("are the same PostgreSQL store"), "{err}");
    assert!(
        !err.contains(signoff_storage::throwaway_pg::PASSWORD),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `signoff outbox deliver` on PostgreSQL: two workers at once drain one outbox, and every
/// notification reaches the program exactly once (each worker takes what no other holds).
#[test]
fn two_delivery_workers_share_one_outbox() {
    let schema = format!("cli_outbox_{}", std::process::id());
    let url = url();
    let dir = std::env::temp_dir().join(format!("signoff-cli-pg-outbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let basic = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/templates/basic.yaml");
    let at = "--at 2026-01-05T09:00:00Z";
    for i in 0..8 {
        for args in [
            format!("doc create d{i} --workflow {basic} --by alice {at}"),
            format!("doc submit d{i} --by alice {at}"),
        ] {
            let (code, _, err) = signoff(&schema, &url, &args);
            assert_eq!(code, 0, "{args}: {err}");
        }
    }
    let (_, listed, _) = signoff(&schema, &url, "outbox list --format jsonl");
    assert_eq!(listed.lines().count(), 16, "{listed}");

    // A failed run gives back what it took: the workers below find everything at once.
    let (code, _, err) = signoff_args(
        &schema,
        &[
            "outbox", "deliver", "--limit", "3", "--store", &url, "--", "false",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("it stays waiting").count(), 3, "{err}");

    let got = dir.join("got.jsonl");
    // One write per notification (O_APPEND), so the two workers' lines never interleave.
    let program = format!(
        "sleep 0.02; line=$(cat); printf '%s\\n' \"$line\" >> {}",
        got.display()
    );
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_signoff"))
                .args([
                    "outbox", "deliver", "--store", &url, "--", "sh", "-c", &program,
                ])
                .env("SIGNOFF_PG_SCHEMA", &schema)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut delivered = 0;
    for w in workers {
        let out = w.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        delivered += stdout
            .split(' ')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .expect("N delivered");
    }
    assert_eq!(delivered, 16);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&got)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = lines
        .iter()
        .map(|n| {
            (
                n["doc"].to_string(),
                n["seq"].to_string(),
                n["kind"].to_string(),
            )
        })
        .collect();
    assert_eq!((lines.len(), unique.len()), (16, 16), "each exactly once");
    let (_, out, _) = signoff(&schema, &url, "outbox list");
    assert!(
        out.starts_with("no notifications waiting in postgres://"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
