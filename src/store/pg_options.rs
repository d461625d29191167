//! The parameters of a PostgreSQL URL other than where to connect: TLS
//! (modes, trusted roots, `verify-ca`'s verifier), timeouts, keepalives,
//! and the password sources libpq knows (a pgpass file).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::{ChannelBinding, TargetSessionAttrs};
use zeroize::Zeroizing;

use crate::postgres_url::UrlParts;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);
/// The largest CA file read for `sslrootcert`.
const MAX_CA_FILE: u64 = 4 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tls {
    Disable,
    /// TLS when the server offers it, as `require` does it.
    Prefer,
    /// TLS required. As in libpq: the certificate is not verified (the
    /// connection is encrypted, not authenticated), unless `sslrootcert`
    /// names a file, which makes it `verify-ca`.
    Require,
    /// The chain is verified, the host name not.
    VerifyCa,
    VerifyFull,
}

/// The URL's parameters other than where to connect.
pub(crate) struct Settings {
    pub(crate) tls: Tls,
    pub(crate) rootcert: Option<String>,
    pub(crate) passfile: Option<std::path::PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) idle_in_transaction: Duration,
    pub(crate) keepalives: bool,
    pub(crate) keepalives_idle: Duration,
    pub(crate) keepalives_interval: Duration,
    pub(crate) keepalives_count: u32,
    pub(crate) tcp_user_timeout: Option<Duration>,
    pub(crate) application_name: Option<String>,
    pub(crate) options: Option<String>,
    pub(crate) target_session_attrs: Option<TargetSessionAttrs>,
    pub(crate) channel_binding: Option<ChannelBinding>,
}

impl Settings {
    pub(crate) fn from_parts(parts: &UrlParts) -> std::result::Result<Settings, String> {
        let mut s = Settings {
            tls: Tls::Prefer,
            rootcert: None,
            passfile: std::env::var_os("PGPASSFILE").map(Into::into).or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass"))
            }),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            idle_in_transaction: DEFAULT_IDLE_IN_TRANSACTION,
            keepalives: true,
            keepalives_idle: Duration::from_secs(15),
            keepalives_interval: Duration::from_secs(5),
            keepalives_count: 3,
            tcp_user_timeout: None,
            application_name: None,
            options: None,
            target_session_attrs: None,
            channel_binding: None,
        };
        for (key, value) in &parts.params {
            let bad = || format!("has an invalid value '{value}' for {key}");
            let seconds = || -> std::result::Result<Duration, String> {
                value
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| bad())
            };
            match key.as_str() {
                "sslmode" => {
                    s.tls = match value.as_str() {
                        "disable" => Tls::Disable,
                        "allow" | "prefer" => Tls::Prefer,
                        "require" => Tls::Require,
                        "verify-ca" => Tls::VerifyCa,
                        "verify-full" => Tls::VerifyFull,
                        _ => return Err(format!("has an invalid sslmode '{value}' (disable, allow, prefer, require, verify-ca, verify-full)")),
                    }
                }
                "sslrootcert" => s.rootcert = Some(value.clone()),
                "passfile" => s.passfile = Some(value.into()),
                "connect_timeout" => {
                    // libpq: seconds; 0 means wait forever, which this tool does not.
                    let t = seconds()?;
                    s.connect_timeout = if t.is_zero() { Duration::from_secs(3600) } else { t.max(Duration::from_secs(1)) };
                }
                "statement_timeout" => s.statement_timeout = server_duration(value).ok_or_else(bad)?,
                "lock_timeout" => s.lock_timeout = server_duration(value).ok_or_else(bad)?,
                "idle_in_transaction_session_timeout" => s.idle_in_transaction = server_duration(value).ok_or_else(bad)?,
                "keepalives" => s.keepalives = value != "0",
                "keepalives_idle" => s.keepalives_idle = seconds()?,
                "keepalives_interval" => s.keepalives_interval = seconds()?,
                "keepalives_count" => s.keepalives_count = value.parse().map_err(|_| bad())?,
                "tcp_user_timeout" => {
                    s.tcp_user_timeout = Some(Duration::from_millis(value.parse().map_err(|_| bad())?))
                }
                "application_name" | "fallback_application_name" => s.application_name = Some(value.clone()),
                "options" => s.options = Some(value.clone()),
                "target_session_attrs" => {
                    s.target_session_attrs = Some(match value.as_str() {
                        "any" => TargetSessionAttrs::Any,
                        "read-write" => TargetSessionAttrs::ReadWrite,
                        "read-only" => TargetSessionAttrs::ReadOnly,
                        _ => return Err(bad()),
                    })
                }
                "channel_binding" => {
                    s.channel_binding = Some(match value.as_str() {
                        "disable" => ChannelBinding::Disable,
                        "prefer" => ChannelBinding::Prefer,
                        "require" => ChannelBinding::Require,
                        _ => return Err(bad()),
                    })
                }
                "gssencmode" if value == "disable" || value == "prefer" => {}
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "gssencmode" | "krbsrvname" | "requirepeer" | "service" => {
                    return Err(format!("uses {key}, which mage-secrets does not support"))
                }
                _ => {
                    return Err(format!(
                        "has an unknown parameter '{key}' (known: sslmode, sslrootcert, connect_timeout, statement_timeout, lock_timeout, idle_in_transaction_session_timeout, keepalives*, tcp_user_timeout, application_name, options, target_session_attrs, channel_binding, passfile, host, port, user, password, dbname)"
                    ))
                }
            }
        }
        Ok(s)
    }
}

/// A PostgreSQL duration setting: a number with an optional unit (`ms`,
/// `s`, `min`, `h`, `d`); a bare number is milliseconds, as in PostgreSQL.
fn server_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..split].parse().ok()?;
    let ms = match text[split..].trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// The password a pgpass file gives for this connection, if any: lines of
/// `host:port:database:user:password`, `*` matching anything, `\` escaping.
/// Like libpq, a file that others may read is ignored.
pub(crate) fn passfile_password(
    path: &std::path::Path,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
) -> Option<Zeroizing<String>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.mode() & 0o077 != 0 || meta.len() > 1 << 20 {
        return None;
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).ok()?);
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut field = Zeroizing::new(String::new());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        field.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(&fields[0], host)
            && matches(&fields[1], &port)
            && matches(&fields[2], db)
            && matches(&fields[3], user)
        {
            return Some(fields.pop().expect("five fields"));
        }
    }
    None
}

/// The TLS configuration for a mode: trusted roots from `sslrootcert` (a
/// PEM file; `system` for the system's store) or else the system's store.
pub(crate) fn tls_config(
    mode: Tls,
    rootcert: Option<&str>,
) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) if path != "system" => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
            let meta = file
                .metadata()
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
            if !meta.is_file() || meta.len() > MAX_CA_FILE {
                return Err(format!(
                    "sslrootcert {path} is not a PEM file of at most 4 MiB"
                ));
            }
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
            for cert in CertificateDer::pem_slice_iter(&bytes) {
                let cert = cert.map_err(|e| format!("sslrootcert {path} is not valid PEM: {e}"))?;
                roots.add(cert).map_err(|e| {
                    format!("sslrootcert {path} holds a certificate that cannot be used: {e}")
                })?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {path} holds no certificate"));
            }
        }
        _ => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?;
    let roots = Arc::new(roots);
    let given_roots = rootcert.is_some_and(|path| path != "system");
    let unverified = matches!(mode, Tls::Prefer | Tls::Require) && !given_roots;
    let chain_only =
        mode == Tls::VerifyCa || matches!(mode, Tls::Prefer | Tls::Require) && given_roots;
    let config = if unverified {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth()
    } else if chain_only {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("TLS set-up failed: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `verify-ca`: the certificate must chain to a trusted root; its names
/// are not compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError;
        // The chain is checked before the name: a name mismatch means the
        // chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without `sslrootcert`, as libpq does them: the
/// connection is encrypted, and the handshake's signatures are checked,
/// but the certificate is not (a self-signed server certificate works).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_postgresql_reads_them() {
        assert_eq!(server_duration("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(server_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(server_duration("1min"), Some(Duration::from_secs(60)));
        assert_eq!(server_duration("soon"), None);
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# comment\nother:*:*:*:no\ndb.example:5432:*:me:p\\:w\\\\d\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let found = passfile_password(&path, "db.example", 5432, "mage", "me").unwrap();
        assert_eq!(found.as_str(), "p:w\\d");
        assert!(passfile_password(&path, "db.example", 5433, "mage", "me").is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(passfile_password(&path, "db.example", 5432, "mage", "me").is_none());
    }
}
