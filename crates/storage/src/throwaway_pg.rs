//! A throwaway PostgreSQL server for tests and benchmarks: `initdb` into a temporary folder,
//! `pg_ctl start` on a free port of 127.0.0.1, and `pg_ctl stop` plus removal of the folder
//! when dropped (or when the process that started it is gone, see [`ThrowawayServer::start`]).
//!
//! Standard library only: `cargo xtask test` includes this same file (`#[path]`), so that the
//! test run and the tests themselves start servers the same way.
//!
//! The binaries are looked up on `PATH`, then in `/usr/lib/postgresql/*/bin` (Debian's
//! layout, newest version first). PostgreSQL refuses to run as root: when this process is
//! root, the server runs as the `postgres` user (or `nobody`) through `runuser`, and the
//! folder is handed to that user.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The superuser of a throwaway cluster, and its password (logins over TCP need it).
pub const USER: &str = "signoff";
pub const PASSWORD: &str = "signoff-test";

/// A running throwaway server. Dropping it stops the server and removes its folder.
#[derive(Debug)]
pub struct ThrowawayServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The user the server runs as, when this process is root.
    run_as: Option<String>,
    /// With [`ThrowawayServer::start_tls`]: TLS on, with a certificate for 127.0.0.1 signed
    /// by the CA in `ca.crt` of the folder.
    tls: bool,
    /// With [`ThrowawayServer::start_mtls`]: TCP logins need TLS and a client certificate
    /// signed by the same CA, naming the user.
    client_certs: bool,
}

/// Why a throwaway server could not be started or restarted.
#[derive(Debug)]
pub struct ServerError(pub String);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

impl ThrowawayServer {
    /// Creates a cluster in a new temporary folder and starts it on a free port of
    /// 127.0.0.1, with password logins over TCP for [`USER`].
    ///
    /// A small watchdog (`sh`) stops the server and removes the folder once this process
    /// has exited, so that a test process that never drops the server (a `static`) or is
    /// killed leaves nothing running behind.
    pub fn start() -> Result<ThrowawayServer, ServerError> {
        Self::start_with(false, false)
    }

    /// As [`start`](Self::start), with TLS on (and plain connections still accepted): a
    /// certificate for `127.0.0.1` (not `localhost`), signed by a CA made for this server
    /// ([`ca_file`](Self::ca_file)). Needs `openssl` on `PATH`.
    pub fn start_tls() -> Result<ThrowawayServer, ServerError> {
        Self::start_with(true, false)
    }

    /// As [`start_tls`](Self::start_tls), and a login over TCP needs TLS, the password and a
    /// client certificate signed by the same CA whose common name is the user
    /// (`clientcert=verify-full`): [`client_cert`](Self::client_cert) is one for [`USER`].
    pub fn start_mtls() -> Result<ThrowawayServer, ServerError> {
        Self::start_with(true, true)
    }

    /// The PEM files of a client certificate for [`USER`] and its key (mode 0600), signed by
    /// the CA of [`ca_file`](Self::ca_file).
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    /// The PEM file of the CA that signed a [`start_tls`](Self::start_tls) server's
    /// certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn start_with(tls: bool, client_certs: bool) -> Result<ThrowawayServer, ServerError> {
        let bin = find_bin()?;
        let run_as = if is_root() {
            Some(unprivileged_user()?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "signoff-pg-{}-{}",
            std::process::id(),
            next_serial()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        std::fs::write(dir.join("pwfile"), PASSWORD)
            .map_err(|e| err(format!("{}: {e}", dir.display())))?;
        if tls {
            make_certificates(&dir, client_certs)?;
        }
        let mut server = ThrowawayServer {
            dir,
            bin,
            port: 0,
            run_as,
            tls,
            client_certs,
        };
        if let Some(user) = &server.run_as {
            run(Command::new("chown").args(["-R", user]).arg(&server.dir))?;
        }
        let data = server.data();
        let pwfile = server.dir.join("pwfile");
        server.run_pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                USER.as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        if client_certs {
            // Rewritten in place: the file keeps its owner, the server's user.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n",
            )
            .map_err(|e| err(format!("{}: {e}", data.display())))?;
        }
        // A port can be taken between the probe and the server's bind: try a few.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => {
                    server.watch();
                    return Ok(server);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| err("the server did not start".into())))
    }

    /// `postgres://signoff:PASSWORD@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server the way a crash would: `pg_ctl stop -m immediate` (no checkpoint,
    /// every backend killed; the next start replays the WAL).
    pub fn stop_immediate(&self) -> Result<(), ServerError> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])
    }

    /// Starts the server again on the same port, after [`stop_immediate`](Self::stop_immediate).
    pub fn restart(&self) -> Result<(), ServerError> {
        self.pg_ctl_start()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl_start(&self) -> Result<(), ServerError> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 \
             -c fsync=on -c synchronous_commit=on",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.dir.join("server.crt").display(),
                self.dir.join("server.key").display()
            ));
        }
        if self.client_certs {
            options.push_str(&format!(
                " -c ssl_ca_file={}",
                self.dir.join("ca.crt").display()
            ));
        }
        let log = self.dir.join("log");
        self.run_pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data().as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        )
        .map_err(|e| err(format!("{e}\n{}", tail(&self.log()))))
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), ServerError> {
        let data = self.data();
        let mut all: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), data.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        self.run_pg("pg_ctl", &all)
    }

    /// Runs one of the server's programs, as the unprivileged user when we are root.
    fn run_pg(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), ServerError> {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new(runuser());
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(&self.dir);
        run(&mut cmd)
    }

    /// Starts the watchdog: waits for this process to end, then stops the server (if it
    /// still runs) and removes the folder.
    fn watch(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match &self.run_as {
            Some(user) => format!(
                "'{}' -u {user} -- '{}'",
                runuser().display(),
                pg_ctl.display()
            ),
            None => format!("'{}'", pg_ctl.display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {stop} -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        // Best effort: without it, `Drop` still stops the server when it runs.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for ThrowawayServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The folder holding `initdb` and `pg_ctl`: on `PATH`, else Debian's
/// `/usr/lib/postgresql/VERSION/bin`, newest first.
pub fn find_bin() -> Result<PathBuf, ServerError> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(d) = std::env::split_paths(&path).find(|d| has_both(d)) {
            return Ok(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or_else(|| {
        err("PostgreSQL's initdb and pg_ctl are neither on PATH nor in \
             /usr/lib/postgresql/*/bin: install PostgreSQL (Debian: apt-get install postgresql), \
             or set SIGNOFF_PG_URL to a server of yours"
            .into())
    })
}

/// A CA and a server certificate for 127.0.0.1 (only: `localhost` is another name) signed by
/// it, in `dir`
/// (`ca.crt`, `server.crt`, `server.key` with mode 0600, as the server requires), and with
/// `client` a client certificate for [`USER`] (`client.crt`, `client.key`, mode 0600).
fn make_certificates(dir: &Path, client: bool) -> Result<(), ServerError> {
    let openssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(dir);
        run(&mut cmd).map_err(|e| err(format!("openssl (needed for a TLS test server): {e}")))
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3",
                "-subj",
                "/CN=signoff throwaway CA",
            ][..],
        ]
        .concat(),
    )?;
    // A key and a certificate `NAME.key`, `NAME.crt` for `subject`, signed by the CA, with
    // the X.509 extensions `ext`.
    let issue = |name: &str, subject: &str, ext: &str| {
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            &[
                &["req"][..],
                &ec[..],
                &["-keyout", &key, "-out", &csr, "-subj", subject][..],
            ]
            .concat(),
        )?;
        std::fs::write(dir.join(&extfile), ext)
            .map_err(|e| err(format!("{}: {e}", dir.display())))?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "3",
            "-extfile",
            &extfile,
        ])
    };
    issue(
        "server",
        "/CN=127.0.0.1",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )?;
    if client {
        issue(
            "client",
            &format!("/CN={USER}"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )?;
    }
    #[cfg(unix)]
    for key in ["server.key", "client.key"] {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(key);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// util-linux's `runuser`, which root's `PATH` does not always reach (`/usr/sbin`).
fn runuser() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `postgres` if that user exists, else `nobody`.
fn unprivileged_user() -> Result<String, ServerError> {
    for user in ["postgres", "nobody"] {
        let exists = Command::new("id")
            .arg("-u")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            return Ok(user.to_owned());
        }
    }
    Err(err(
        "running as root, and neither the postgres nor the nobody user exists to run \
         PostgreSQL as"
            .into(),
    ))
}

fn free_port() -> Result<u16, ServerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| err(format!("no free port on 127.0.0.1: {e}")))
}

fn run(cmd: &mut Command) -> Result<(), ServerError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("cannot run {cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn err(s: String) -> ServerError {
    ServerError(s)
}
