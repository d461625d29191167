//! PostgreSQL connection URLs (`postgres://user:password@host:port/db?k=v`),
//! parsed here rather than by the driver: one parser decides both what the
//! connection uses and what a message shows, so a password the connection
//! sends is always the part a message masks. It accepts what libpq accepts
//! that the driver refuses (`sslmode=verify-ca|verify-full`, `sslrootcert`)
//! and the timeouts of this tool.
//!
//! The rule for the user information: it ends at the *last* `@` of the URL,
//! so a password may hold `@`, `:`, `/` or `?` unencoded (percent-encoding
//! works too); an `@` elsewhere (in a query value) must be written `%40`.

use zeroize::Zeroizing;

/// What a URL says, decoded. Its `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct UrlParts {
    /// Host names, IP addresses or (starting with `/`) socket folders.
    pub hosts: Vec<String>,
    pub ports: Vec<u16>,
    pub user: Option<String>,
    pub password: Option<Zeroizing<String>>,
    pub dbname: Option<String>,
    /// Every other `key=value` of the query, decoded, in order.
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for UrlParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlParts")
            .field("hosts", &self.hosts)
            .field("ports", &self.ports)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("params", &self.params)
            .finish()
    }
}

impl UrlParts {
    /// The value of query parameter `key` (the last one wins, as in libpq).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The pieces of a URL as written (still encoded).
struct Split<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hostspec: &'a str,
    /// After the host list, from `/` (the database) up to the query.
    path: &'a str,
    query: Option<&'a str>,
}

fn split(url: &str) -> Option<Split<'_>> {
    let scheme_end = url.find("://")? + 3;
    let (scheme, rest) = url.split_at(scheme_end);
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (before_query, query) = match after.find('?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    let (hostspec, path) = match before_query.find('/') {
        Some(s) => before_query.split_at(s),
        None => (before_query, ""),
    };
    Some(Split {
        scheme,
        userinfo,
        hostspec,
        path,
        query,
    })
}

fn is_secret_param(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// The URL with every password masked as `***`: the one in the user
/// information (encoded or not) and any query parameter whose name holds
/// `password`. Text that is not a URL is returned whole, since it has no
/// place for a password.
pub fn redact(url: &str) -> String {
    let Some(parts) = split(url) else {
        return url.to_string();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.scheme);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.find(':') {
            Some(colon) => {
                out.push_str(&userinfo[..colon]);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    out.push_str(parts.hostspec);
    out.push_str(parts.path);
    if let Some(query) = parts.query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) if is_secret_param(&percent_decode(k).unwrap_or_default()) => {
                    out.push_str(k);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are
/// not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a `postgres://` or `postgresql://` URL. Errors never quote the
/// password.
pub fn parse(url: &str) -> Result<UrlParts, String> {
    let parts = split(url).ok_or("is not a URL (postgres://user@host:port/database)")?;
    if parts.scheme != "postgres://" && parts.scheme != "postgresql://" {
        return Err("is not a postgres:// or postgresql:// URL".into());
    }
    let mut out = UrlParts::default();
    if let Some(userinfo) = parts.userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            out.user =
                Some(percent_decode(user).ok_or("has a malformed %-escape in the user name")?);
        }
        if let Some(p) = password {
            // A password that is not valid percent-encoding is taken as
            // written (it may hold a literal `%`).
            let decoded = percent_decode(p).unwrap_or_else(|| p.to_string());
            out.password = Some(Zeroizing::new(decoded));
        }
    }
    for (i, entry) in split_hosts(parts.hostspec).into_iter().enumerate() {
        let (host, port) = entry;
        if !host.is_empty() {
            out.hosts
                .push(percent_decode(host).ok_or("has a malformed %-escape in a host")?);
        } else if !parts.hostspec.is_empty() {
            out.hosts.push(String::new());
        }
        if let Some(port) = port {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("has an invalid port '{port}' (host {})", i + 1))?;
            out.ports.push(port);
        }
    }
    if let Some(db) = parts.path.strip_prefix('/') {
        if !db.is_empty() {
            out.dbname =
                Some(percent_decode(db).ok_or("has a malformed %-escape in the database name")?);
        }
    }
    if let Some(query) = parts.query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                format!(
                    "has a query parameter without a value ('{}')",
                    if is_secret_param(pair) { "***" } else { pair }
                )
            })?;
            let key = percent_decode(k).ok_or("has a malformed %-escape in a query parameter")?;
            let value = percent_decode(v).ok_or_else(|| {
                format!("has a malformed %-escape in the value of query parameter '{key}'")
            })?;
            match key.as_str() {
                "host" => out.hosts = value.split(',').map(str::to_string).collect(),
                "port" => {
                    out.ports = value
                        .split(',')
                        .map(|p| p.parse().map_err(|_| format!("has an invalid port '{p}'")))
                        .collect::<Result<_, _>>()?
                }
                "user" => out.user = Some(value),
                "password" => out.password = Some(Zeroizing::new(value)),
                "dbname" => out.dbname = Some(value),
                _ => out.params.push((key, value)),
            }
        }
    }
    Ok(out)
}

/// `host1:port1,[::1]:port2,host3` into (host, port) pairs, still encoded.
fn split_hosts(spec: &str) -> Vec<(&str, Option<&str>)> {
    if spec.is_empty() {
        return vec![("", None)];
    }
    spec.split(',')
        .map(|entry| {
            if let Some(rest) = entry.strip_prefix('[') {
                if let Some(close) = rest.find(']') {
                    let host = &rest[..close];
                    let port = rest[close + 1..].strip_prefix(':');
                    return (host, port);
                }
            }
            match entry.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (entry, None),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_libpq_documents() {
        let p = parse("postgresql://me:s%40cret@db.example:6543/mage?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x").unwrap();
        assert_eq!(p.hosts, vec!["db.example"]);
        assert_eq!(p.ports, vec![6543]);
        assert_eq!(p.user.as_deref(), Some("me"));
        assert_eq!(p.password.as_deref().map(String::as_str), Some("s@cret"));
        assert_eq!(p.dbname.as_deref(), Some("mage"));
        assert_eq!(p.param("sslmode"), Some("verify-full"));
        assert_eq!(p.param("sslrootcert"), Some("/ca.pem"));

        let p = parse("postgres://[::1]:5433,other/db").unwrap();
        assert_eq!(p.hosts, vec!["::1", "other"]);
        assert_eq!(p.ports, vec![5433]);
        let p = parse("postgres:///db?host=%2Fvar%2Frun%2Fpostgresql").unwrap();
        assert_eq!(p.hosts, vec!["/var/run/postgresql"]);
        let p = parse("postgres://u:p@ss:w/rd@h/d?password=other").unwrap();
        assert_eq!(p.password.as_deref().map(String::as_str), Some("other"));
        assert!(parse("postgres://h:notaport/d").is_err());
        assert!(parse("mysql://h/d").is_err());
    }

    #[test]
    fn passwords_are_masked_in_every_form() {
        for (url, shown) in [
            (
                "postgres://me:s3cr3t@db:5432/m?sslmode=require",
                "postgres://me:***@db:5432/m?sslmode=require",
            ),
            ("postgres://h/d", "postgres://h/d"),
            ("postgres://me@h/d", "postgres://me@h/d"),
            ("postgres://me:p@ss@h/d", "postgres://me:***@h/d"),
            (
                "postgres://u:p%40ss:w/rd@host/db",
                "postgres://u:***@host/db",
            ),
            ("postgres://u:p@ss:w/rd@host/db", "postgres://u:***@host/db"),
            ("postgres://u:pa?ss@host/db", "postgres://u:***@host/db"),
            (
                "postgres://h/d?user=u&password=hunter2&x=1",
                "postgres://h/d?user=u&password=***&x=1",
            ),
            (
                "postgres://h/d?pass%77ord=hunter2",
                "postgres://h/d?pass%77ord=***",
            ),
            ("mysql://u:p@h/d", "mysql://u:***@h/d"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    proptest! {
        /// Whatever the password holds and however it is written, the
        /// connection gets it and no message shows it.
        #[test]
        fn any_password_is_parsed_and_never_shown(
            user in "[a-z]{1,8}",
            password in "PW[ -~]{0,24}",
            host in "[a-z]{1,10}(\\.[a-z]{1,5})?",
            port in proptest::option::of(1u16..),
            db in proptest::option::of("[a-z_]{1,10}"),
            extra in proptest::collection::vec(("[a-z_]{1,8}", "[a-z0-9_.-]{0,8}"), 0..3),
            form in 0..3u8,
        ) {
            let authority = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            let path = db.as_ref().map(|d| format!("/{d}")).unwrap_or_default();
            let mut query: Vec<String> = extra
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "host" | "port" | "user" | "dbname") && !k.contains("password"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            // Raw in the user information (an '@' elsewhere would have to be
            // encoded), encoded there, or in the query.
            let url = match form {
                0 => format!("postgres://{user}:{password}@{authority}{path}{}", if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) }),
                1 => format!("postgres://{user}:{}@{authority}{path}{}", encode(&password), if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) }),
                _ => {
                    query.push(format!("password={}", encode(&password)));
                    format!("postgres://{user}@{authority}{path}?{}", query.join("&"))
                }
            };
            let shown = redact(&url);
            prop_assert!(!shown.contains(&password), "{shown}");
            prop_assert!(!shown.contains(&encode(&password)), "{shown}");
            prop_assert!(!shown.contains("PW"), "{shown}");
            let parts = parse(&url);
            if form != 0 || !password.contains('%') {
                let parts = parts.map_err(TestCaseError::fail)?;
                prop_assert_eq!(parts.password.as_deref().map(String::as_str), Some(password.as_str()));
                prop_assert_eq!(parts.user.as_deref(), Some(user.as_str()));
                prop_assert_eq!(parts.hosts, vec![host]);
                prop_assert_eq!(parts.dbname, db);
                let debug = format!("{:?}", parse(&url));
                prop_assert!(!debug.contains("PW"), "{}", debug);
            }
            if let Err(e) = parse(&url) {
                prop_assert!(!e.contains("PW"), "{e}");
            }
        }
    }
}
