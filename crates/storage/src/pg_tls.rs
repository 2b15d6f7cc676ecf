//! TLS to the PostgreSQL server, as libpq's `sslmode` and `sslrootcert` ask for it, with
//! rustls (ring provider) through `tokio-postgres-rustls`.
//!
//! | `sslmode` | what the store does |
//! |---|---|
//! | `disable` | plain TCP |
//! | `prefer` (the default) | TLS when the server offers it, plain otherwise; the certificate is not checked (as libpq) |
//! | `require` | TLS or no connection; the certificate is not checked |
//! | `verify-full` | TLS, the certificate checked against `sslrootcert` (a PEM file, or `system` for the system's CAs; default `~/.postgresql/root.crt`) and the host name |
//!
//! `verify-ca` (the chain without the host name) is refused: use `verify-full`. The
//! parameters are read from a URL's query (`?sslmode=verify-full&sslrootcert=/etc/ca.pem`) or
//! from libpq's `key=value` form, and removed before `tokio-postgres` reads the rest.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How to talk to the server, from `sslmode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyFull(Roots),
}

/// The CAs `verify-full` trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    File(PathBuf),
    System,
}

/// The URL without the TLS parameters, and the mode they ask for. A bad value is an error
/// that says what is accepted.
pub(crate) fn split(url: &str) -> Result<(String, TlsMode), String> {
    let mut mode: Option<String> = None;
    let mut root: Option<String> = None;
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            mode = Some(value);
            true
        }
        "sslrootcert" => {
            root = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        url.split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k.trim(), v.trim_matches('\'').to_owned())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mode = match mode.as_deref().unwrap_or("prefer") {
        "disable" => TlsMode::Disable,
        "prefer" | "allow" => TlsMode::Prefer,
        "require" => TlsMode::Require,
        "verify-full" => TlsMode::VerifyFull(match root.as_deref() {
            Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
            None => Roots::File(
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".postgresql/root.crt"),
            ),
        }),
        "verify-ca" => {
            return Err(
                "sslmode=verify-ca is not supported: use verify-full (the chain and the host \
                 name) or require"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "sslmode={other:?}: use disable, prefer, require or verify-full"
            ));
        }
    };
    Ok((rest, mode))
}

/// `sslmode` as `tokio-postgres` understands it, for the rest of the URL.
pub(crate) fn tokio_mode(mode: &TlsMode) -> tokio_postgres::config::SslMode {
    use tokio_postgres::config::SslMode;
    match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyFull(_) => SslMode::Require,
    }
}

/// The rustls configuration for a mode (not for `Disable`).
pub(crate) fn client_config(mode: &TlsMode) -> Result<ClientConfig, String> {
    // ring: no C toolchain beyond what ring builds (aws-lc-rs needs cmake); it lacks the
    // post-quantum key exchange, which PostgreSQL servers do not offer yet either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    match mode {
        TlsMode::VerifyFull(roots) => {
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
                        return Err(
                            "sslrootcert=system: no CA certificate found on this system".into()
                        );
                    }
                }
            }
            Ok(builder.with_root_certificates(store).with_no_client_auth())
        }
        _ => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()),
    }
}

/// `prefer` and `require`: the connection is encrypted and the handshake's signatures are
/// checked, but not who signed the certificate (libpq's behaviour for these modes).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
        let (rest, mode) =
            split("postgres://u:p@h:5/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
                .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(mode, TlsMode::VerifyFull(Roots::File("/etc/ca.pem".into())));
        let (rest, mode) = split("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), mode),
            ("postgres://u@h/db", TlsMode::Require)
        );
        assert_eq!(split("postgres://u@h/db").unwrap().1, TlsMode::Prefer);
        let (rest, mode) = split("host=h user=u sslmode=verify-full sslrootcert=system").unwrap();
        assert_eq!(
            (rest.as_str(), mode),
            ("host=h user=u", TlsMode::VerifyFull(Roots::System))
        );
        assert!(
            split("postgres://h/db?sslmode=verify-ca")
                .unwrap_err()
                .contains("verify-full")
        );
        assert!(
            split("postgres://h/db?sslmode=sometimes")
                .unwrap_err()
                .contains("disable, prefer")
        );
    }
}
