//! TLS to the PostgreSQL server, as libpq's `sslmode` and `sslrootcert` ask for it, with
//! rustls (ring provider) through `tokio-postgres-rustls`.
//!
//! | `sslmode` | what the store does |
//! |---|---|
//! | `disable` | plain TCP |
//! | `prefer` (the default) | TLS when the server offers it, plain otherwise; the certificate is not checked (as libpq) |
//! | `require` | TLS or no connection; the certificate is not checked, unless a root certificate file is given (`sslrootcert`, or `~/.postgresql/root.crt` exists): then as `verify-ca` (as libpq) |
//! | `verify-ca` | TLS, the certificate must chain to the root certificates |
//! | `verify-full` | as `verify-ca`, and the certificate must name the host |
//!
//! `sslrootcert` is a PEM file, or `system` for the system's CAs (then `sslmode` is
//! `verify-full` unless set, and a weaker mode is refused, as libpq 16 does). `sslcert` and
//! `sslkey` are a client certificate (PEM, with its chain) and its private key (PEM: PKCS#8,
//! PKCS#1 or SEC1), for servers that ask for one (`clientcert=verify-full`, or `cert`
//! authentication); without them libpq's defaults `~/.postgresql/postgresql.crt` and
//! `postgresql.key` are used when the certificate file exists. Stricter than libpq: a
//! certificate file named explicitly must exist. The key file may not be readable by group or
//! others (as libpq: 0600, or 0640 when root owns it), and an encrypted key is refused
//! (`sslpassword` is not supported). The parameters are read from a URL's query
//! (`?sslmode=verify-full&sslrootcert=/etc/ca.pem`) or from libpq's `key=value` form (values
//! quoted with `'...'` as libpq quotes them), and removed before `tokio-postgres` reads the
//! rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How to talk to the server, from `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Disable,
    Prefer,
    /// TLS with the certificate unchecked.
    Require,
    /// TLS, the certificate chained to these roots, any name.
    VerifyCa(Roots),
    /// TLS, the certificate chained to these roots and naming the host.
    VerifyFull(Roots),
}

/// What the URL asks of TLS: the mode, and the client certificate to present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tls {
    pub(crate) mode: TlsMode,
    pub(crate) client: Option<ClientCert>,
}

/// A client certificate (PEM, leaf first) and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// The CAs a verifying mode trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    File(PathBuf),
    System,
}

/// The URL without the TLS parameters, and what they ask for. A bad value is an error that
/// says what is accepted.
pub(crate) fn split(url: &str) -> Result<(String, Tls), String> {
    let mut mode: Option<String> = None;
    let mut root: Option<String> = None;
    let mut cert: Option<String> = None;
    let mut key: Option<String> = None;
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    match k {
                        "sslmode" => mode = Some(percent_decode(v)),
                        "sslrootcert" => root = Some(percent_decode(v)),
                        "sslcert" => cert = Some(percent_decode(v)),
                        "sslkey" => key = Some(percent_decode(v)),
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = String::new();
        for (name, value, text) in key_values(url)? {
            match name.as_str() {
                "sslmode" => mode = Some(value),
                "sslrootcert" => root = Some(value),
                "sslcert" => cert = Some(value),
                "sslkey" => key = Some(value),
                _ => {
                    if !kept.is_empty() {
                        kept.push(' ');
                    }
                    kept.push_str(text);
                }
            }
        }
        kept
    };
    // libpq's files under ~/.postgresql; without HOME there is no default client
    // certificate, and the default root file is one that cannot exist (a verifying mode then
    // fails naming it).
    let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
    let default_file = || {
        home().map_or_else(
            || PathBuf::from("~/.postgresql/root.crt"),
            |h| h.join("root.crt"),
        )
    };
    let default_key = || {
        home().map_or_else(
            || PathBuf::from("~/.postgresql/postgresql.key"),
            |h| h.join("postgresql.key"),
        )
    };
    let roots = match root.as_deref() {
        Some("system") => Some(Roots::System),
        Some(path) => Some(Roots::File(PathBuf::from(path))),
        None => None,
    };
    let system = roots == Some(Roots::System);
    let mode = match mode.as_deref() {
        None if system => TlsMode::VerifyFull(Roots::System),
        Some("verify-full") => {
            TlsMode::VerifyFull(roots.unwrap_or_else(|| Roots::File(default_file())))
        }
        Some("verify-ca") => {
            TlsMode::VerifyCa(roots.unwrap_or_else(|| Roots::File(default_file())))
        }
        Some(weak) if system => {
            return Err(format!(
                "sslmode={weak} may not be used with sslrootcert=system: use verify-full"
            ));
        }
        None | Some("prefer") | Some("allow") => TlsMode::Prefer,
        Some("disable") => TlsMode::Disable,
        Some("require") => match roots {
            Some(r) => TlsMode::VerifyCa(r),
            None if default_file().is_file() => TlsMode::VerifyCa(Roots::File(default_file())),
            None => TlsMode::Require,
        },
        Some(other) => {
            return Err(format!(
                "sslmode={other:?}: use disable, prefer, require, verify-ca or verify-full"
            ));
        }
    };
    let client = match (cert, mode == TlsMode::Disable) {
        (_, true) => None,
        (Some(cert), false) => {
            if !Path::new(&cert).is_file() {
                return Err(format!("sslcert {cert}: no such file"));
            }
            Some(ClientCert {
                cert: cert.into(),
                key: key.map_or_else(default_key, PathBuf::from),
            })
        }
        (None, false) => home()
            .map(|h| h.join("postgresql.crt"))
            .filter(|cert| cert.is_file())
            .map(|cert| ClientCert {
                cert,
                key: key.map_or_else(default_key, PathBuf::from),
            }),
    };
    Ok((rest, Tls { mode, client }))
}

/// libpq's `key=value` connection string as (key, value, the pair's own text): a value is
/// a run of characters up to white space, or quoted in `'...'` with `\'` and `\\` escapes;
/// white space may surround the `=`.
fn key_values(text: &str) -> Result<Vec<(String, String, &str)>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip(&mut i);
        if i >= bytes.len() {
            return Ok(out);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_owned();
        skip(&mut i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(format!("{key:?} has no value (expected key=value)"));
        }
        i += 1;
        skip(&mut i);
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("the value of {key:?} has no closing quote")),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        let value =
            String::from_utf8(value).map_err(|_| format!("the value of {key:?} is not UTF-8"))?;
        out.push((key, value, &text[start..i]));
    }
}

/// `sslmode` as `tokio-postgres` understands it, for the rest of the URL.
pub(crate) fn tokio_mode(mode: &TlsMode) -> tokio_postgres::config::SslMode {
    use tokio_postgres::config::SslMode;
    match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyCa(_) | TlsMode::VerifyFull(_) => SslMode::Require,
    }
}

/// The rustls configuration for a mode (not for `Disable`), with the client certificate.
pub(crate) fn client_config(tls: &Tls) -> Result<ClientConfig, String> {
    let mode = &tls.mode;
    // ring: no C toolchain beyond what ring builds (aws-lc-rs needs cmake); it lacks the
    // post-quantum key exchange, which PostgreSQL servers do not offer yet either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let wants_client = match mode {
        TlsMode::VerifyFull(roots) => builder.with_root_certificates(root_store(roots)?),
        TlsMode::VerifyCa(roots) => {
            let chain = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(roots)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Relaxed {
                    provider,
                    chain: Some(chain),
                }))
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed {
                provider,
                chain: None,
            })),
    };
    match &tls.client {
        None => Ok(wants_client.with_no_client_auth()),
        Some(client) => {
            let (chain, key) = client.load()?;
            wants_client
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert {}: {e}", client.cert.display()))
        }
    }
}

impl ClientCert {
    /// The certificate chain and the key, read and checked.
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read sslcert {}: {e}", self.cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "sslcert {} holds no PEM certificate",
                self.cert.display()
            ));
        }
        let key = self.key.display();
        let text = std::fs::read_to_string(&self.key)
            .map_err(|e| format!("cannot read sslkey {key}: {e}"))?;
        key_permissions(&self.key)?;
        if text.contains("ENCRYPTED") {
            return Err(format!(
                "sslkey {key} is encrypted: decrypt it (sslpassword is not supported)"
            ));
        }
        let der = PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| format!("sslkey {key}: no private key in PEM form ({e})"))?;
        Ok((chain, der))
    }
}

/// libpq's rule for a key file: no access for group or others (0600 at most), unless root
/// owns it: then read access for the group at most (0640).
#[cfg(unix)]
fn key_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read sslkey {}: {e}", path.display()))?;
    let mode = meta.mode() & 0o777;
    let too_open = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if too_open {
        return Err(format!(
            "sslkey {} has group or world access (mode {mode:o}): it must be u=rw (0600) or \
             less, or u=rw,g=r (0640) or less if root owns it",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn key_permissions(_: &Path) -> Result<(), String> {
    Ok(())
}

fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert {} holds no PEM certificate",
                    path.display()
                ));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("sslrootcert=system: no CA certificate found on this system".into());
            }
        }
    }
    Ok(store)
}

/// The checks `verify-full` does not do alone: `prefer` and `require` (`chain: None`) check
/// only the handshake's signatures, not who signed the certificate (libpq's behaviour for
/// these modes); `verify-ca` (`chain: Some`) checks the chain as `verify-full` does, but not
/// the host name.
#[derive(Debug)]
struct Relaxed {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_read_and_removed() {
        let (rest, Tls { mode, .. }) = split(
            "postgres://u:p@h:5/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(mode, TlsMode::VerifyFull(Roots::File("/etc/ca.pem".into())));
        let (rest, Tls { mode, .. }) = split("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(
            (rest.as_str(), mode),
            ("postgres://u@h/db", TlsMode::Disable)
        );
        assert_eq!(split("postgres://u@h/db").unwrap().1.mode, TlsMode::Prefer);
        // require with a root file checks the chain, as libpq.
        assert_eq!(
            split("postgres://h/db?sslmode=require&sslrootcert=/ca.pem")
                .unwrap()
                .1
                .mode,
            TlsMode::VerifyCa(Roots::File("/ca.pem".into()))
        );
        assert_eq!(
            split("postgres://h/db?sslmode=verify-ca&sslrootcert=system")
                .unwrap()
                .1
                .mode,
            TlsMode::VerifyCa(Roots::System)
        );
        // sslrootcert=system means verify-full, and refuses a weaker mode (libpq 16).
        assert_eq!(
            split("postgres://h/db?sslrootcert=system").unwrap().1.mode,
            TlsMode::VerifyFull(Roots::System)
        );
        assert!(
            split("postgres://h/db?sslrootcert=system&sslmode=require")
                .unwrap_err()
                .contains("verify-full")
        );
        assert!(
            split("postgres://h/db?sslmode=sometimes")
                .unwrap_err()
                .contains("disable, prefer")
        );
    }

    #[test]
    fn a_client_certificate_is_read_from_sslcert_and_sslkey() {
        let cert = std::env::temp_dir().join(format!("signoff-tls-{}.crt", std::process::id()));
        std::fs::write(&cert, "x").unwrap();
        let c = cert.display();
        let (rest, tls) = split(&format!(
            "postgres://h/db?sslcert={c}&sslkey=%2Fk%20ey.pem&application_name=x"
        ))
        .unwrap();
        assert_eq!(rest, "postgres://h/db?application_name=x");
        assert_eq!(
            tls.client,
            Some(ClientCert {
                cert: cert.clone(),
                key: "/k ey.pem".into()
            })
        );
        let (rest, tls) = split(&format!("host=h sslcert='{c}' sslkey=/k.pem")).unwrap();
        assert_eq!(rest, "host=h");
        assert_eq!(tls.client.map(|c| c.key), Some(PathBuf::from("/k.pem")));
        // No key named: libpq's default beside the home folder's certificate.
        let (_, tls) = split(&format!("postgres://h/db?sslcert={c}")).unwrap();
        assert!(
            tls.client
                .unwrap()
                .key
                .ends_with(".postgresql/postgresql.key")
        );
        // sslmode=disable sends no certificate; a named file that is not there is an error.
        let (_, tls) = split(&format!("postgres://h/db?sslmode=disable&sslcert={c}")).unwrap();
        assert_eq!(tls.client, None);
        assert_eq!(
            split("postgres://h/db?sslcert=/no/such.crt").unwrap_err(),
            "sslcert /no/such.crt: no such file"
        );
        let _ = std::fs::remove_file(&cert);
    }

    #[test]
    fn key_value_strings_are_read_as_libpq_reads_them() {
        let (rest, Tls { mode, .. }) =
            split("host=h user=u sslmode = verify-full sslrootcert='/my ca.pem'").unwrap();
        assert_eq!(rest, "host=h user=u");
        assert_eq!(mode, TlsMode::VerifyFull(Roots::File("/my ca.pem".into())));
        // A quoted value keeps what looks like another parameter inside it, and its spaces.
        let (rest, Tls { mode, .. }) =
            split("password='a  sslmode=disable b' sslmode=require host=h").unwrap();
        assert_eq!(rest, "password='a  sslmode=disable b' host=h");
        assert_eq!(mode, TlsMode::Require);
        let (_, Tls { mode, .. }) = split(r"password='it\'s' sslmode=disable").unwrap();
        assert_eq!(mode, TlsMode::Disable);
        assert!(
            split("host=h sslmode='require")
                .unwrap_err()
                .contains("closing quote")
        );
        assert!(split("host").unwrap_err().contains("no value"));
    }
}
