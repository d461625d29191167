//! One connection to a PostgreSQL server, with every wait bounded: the
//! connection (TCP, TLS handshake, start-up and authentication) by
//! `connect_timeout`, each reply by `statement_timeout` plus a margin on
//! this side (a server that stops answering without closing the socket is
//! noticed), and on the server `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout`. TCP keepalives are on. All are
//! set in the URL; see the README ("PostgreSQL").
//!
//! The driver is asynchronous; each connection owns a one-thread runtime
//! and blocks on it, which is all a command-line tool needs.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::NoTls;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Config, Notification, Row};
use zeroize::Zeroizing;

use super::pg_options::{passfile_password, tls_config, Settings, Tls};
use crate::error::{Error, Result};
use crate::postgres_url;
use crate::settings::PostgresUrl;

/// How much longer than `statement_timeout` this side waits for a reply
/// before it gives the connection up.
const REPLY_MARGIN: Duration = Duration::from_secs(5);

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Pg(tokio_postgres::Error),
    /// No reply within the bound; the connection is given up.
    Timeout(Duration),
    Unexpected(&'static str),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl Failure {
    /// Worth trying again: the server refused for now (too many
    /// connections, starting up, a serialization conflict) or the
    /// connection broke. Callers never retry once COMMIT was sent.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Failure::Pg(e) => match e.code() {
                Some(code) => [
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::ADMIN_SHUTDOWN,
                ]
                .contains(code),
                None => e.is_closed() || is_io(e),
            },
            Failure::Timeout(_) | Failure::Unexpected(_) => false,
        }
    }

    /// For a failure of COMMIT: whether the server may have committed. Only
    /// an error the server itself sent says it did not.
    pub(crate) fn outcome_unknown(&self) -> bool {
        !matches!(self, Failure::Pg(e) if e.as_db_error().is_some())
    }
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The error and its causes, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// How to connect: settings parsed from the URL, the TLS configuration,
/// and the bounds.
pub(crate) struct Connector {
    config: Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    endpoint: String,
    location: String,
    connect_timeout: Duration,
    reply_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(url: &PostgresUrl) -> Result<Connector> {
        let location = url.redacted();
        let invalid = |message: String| Error::Database {
            location: location.clone(),
            message,
            source: None,
        };
        let parts = postgres_url::parse(&url.0)
            .map_err(|m| invalid(format!("{m}; see the README (PostgreSQL) for the URL form")))?;
        let settings = Settings::from_parts(&parts).map_err(invalid)?;
        let mut config = Config::new();
        let hosts = if parts.hosts.is_empty() {
            vec!["localhost".to_string()]
        } else {
            parts.hosts.clone()
        };
        for host in &hosts {
            config.host(if host.is_empty() { "localhost" } else { host });
        }
        for port in &parts.ports {
            config.port(*port);
        }
        let user = match &parts.user {
            Some(u) => u.clone(),
            None => std::env::var("PGUSER")
                .or_else(|_| std::env::var("USER"))
                .or_else(|_| std::env::var("LOGNAME"))
                .map_err(|_| invalid("names no user; write postgres://USER@host/db".into()))?,
        };
        config.user(&user);
        let dbname = parts.dbname.clone().unwrap_or_else(|| user.clone());
        config.dbname(&dbname);
        let port = parts.ports.first().copied().unwrap_or(5432);
        let password = match &parts.password {
            Some(p) => Some(p.clone()),
            None => match std::env::var("PGPASSWORD") {
                Ok(p) if !p.is_empty() => Some(Zeroizing::new(p)),
                _ => settings
                    .passfile
                    .as_deref()
                    .and_then(|path| passfile_password(path, &hosts[0], port, &dbname, &user)),
            },
        };
        if let Some(p) = &password {
            config.password(p.as_bytes());
        }
        config.application_name(
            settings
                .application_name
                .as_deref()
                .unwrap_or("mage-secrets"),
        );
        let mut options = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis(),
            settings.idle_in_transaction.as_millis()
        );
        if let Some(extra) = &settings.options {
            options.push(' ');
            options.push_str(extra);
        }
        config.options(&options);
        config.connect_timeout(settings.connect_timeout);
        config.keepalives(settings.keepalives);
        config.keepalives_idle(settings.keepalives_idle);
        config.keepalives_interval(settings.keepalives_interval);
        config.keepalives_retries(settings.keepalives_count);
        if let Some(t) = settings.tcp_user_timeout {
            config.tcp_user_timeout(t);
        }
        if let Some(attrs) = settings.target_session_attrs {
            config.target_session_attrs(attrs);
        }
        if let Some(binding) = settings.channel_binding {
            config.channel_binding(binding);
        }
        let tls = match settings.tls {
            Tls::Disable => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            mode => {
                config.ssl_mode(if mode == Tls::Prefer {
                    SslMode::Prefer
                } else {
                    SslMode::Require
                });
                Some(tls_config(mode, settings.rootcert.as_deref()).map_err(invalid)?)
            }
        };
        let endpoint = match hosts[0].as_str() {
            h if h.starts_with('/') => format!("{h}/.s.PGSQL.{port}"),
            h if h.contains(':') => format!("[{h}]:{port}"),
            "" => format!("localhost:{port}"),
            h => format!("{h}:{port}"),
        };
        let reply_timeout = if settings.statement_timeout.is_zero() {
            Duration::from_secs(3600)
        } else {
            settings.statement_timeout + REPLY_MARGIN
        };
        Ok(Connector {
            config,
            tls,
            endpoint,
            location,
            connect_timeout: settings.connect_timeout,
            reply_timeout,
        })
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// Connects once, within `connect_timeout` (TCP, TLS and start-up).
    pub(crate) fn connect(&self) -> Result<Session> {
        self.try_connect().map_err(|f| self.error(&f))
    }

    /// Connects, retrying with backoff while the server refuses for now
    /// (too many connections, starting up), for at most `patience`.
    pub(crate) fn connect_retrying(&self, patience: Duration) -> Result<Session> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.try_connect() {
                Ok(s) => return Ok(s),
                Err(Failure::Pg(e))
                    if e.code().is_some_and(|c| {
                        *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::CANNOT_CONNECT_NOW
                    }) && started.elapsed() < patience =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(f) => return Err(self.error(&f)),
            }
        }
    }

    fn try_connect(&self) -> std::result::Result<Session, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| Failure::Unexpected("cannot start the connection's runtime"))?;
        let (sender, notifications) = mpsc::channel();
        let bound = self.connect_timeout;
        let timed_out = |_| Failure::Timeout(bound);
        let client = match &self.tls {
            None => {
                let (client, connection) = rt
                    .block_on(bounded(bound, self.config.connect(NoTls)))
                    .map_err(timed_out)??;
                rt.spawn(drive(connection, sender));
                client
            }
            Some(tls) => {
                let make = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = rt
                    .block_on(bounded(bound, self.config.connect(make)))
                    .map_err(timed_out)??;
                rt.spawn(drive(connection, sender));
                client
            }
        };
        Ok(Session {
            rt,
            client,
            notifications,
            reply_timeout: self.reply_timeout,
            commit_sent: false,
            broken: false,
        })
    }

    /// The error for a failure, naming host:port and what to do.
    pub(crate) fn error(&self, failure: &Failure) -> Error {
        Error::Database {
            location: self.location.clone(),
            message: self.describe(failure),
            source: None,
        }
    }

    /// The error for a COMMIT whose reply never came.
    pub(crate) fn commit_unknown(&self, failure: &Failure) -> Error {
        Error::CommitUnknown {
            location: self.location.clone(),
            cause: self.describe(failure),
        }
    }

    fn describe(&self, failure: &Failure) -> String {
        let endpoint = &self.endpoint;
        match failure {
            Failure::Timeout(after) => format!(
                "the PostgreSQL server at {endpoint} did not answer within {} s; check that it is running and reachable (connect_timeout and statement_timeout in the URL set how long to wait)",
                after.as_secs_f64()
            ),
            Failure::Unexpected(what) => format!("{what} (server {endpoint})"),
            Failure::Pg(e) => {
                if let Some(db) = e.as_db_error() {
                    let advice = match *db.code() {
                        SqlState::READ_ONLY_SQL_TRANSACTION => "; the server only reads (a replica, or default_transaction_read_only): write through the primary",
                        SqlState::INSUFFICIENT_PRIVILEGE => "; this role may not do that: reading needs SELECT, writing needs INSERT, UPDATE and DELETE on mage-secrets' tables",
                        SqlState::LOCK_NOT_AVAILABLE => "; another client holds the lock longer than lock_timeout (set in the URL): try again",
                        SqlState::QUERY_CANCELED => "; statement_timeout (set in the URL) ran out",
                        SqlState::TOO_MANY_CONNECTIONS => "; the server has no free connection slot (retried for 20 s): try again later",
                        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => "; check the user and password (URL, PGPASSWORD or passfile)",
                        _ => "",
                    };
                    format!("{}: {} (server {endpoint}){advice}", db.code().code(), db.message())
                } else if e.to_string().starts_with("error performing TLS handshake") {
                    format!(
                        "TLS with the PostgreSQL server at {endpoint} failed: {}; check sslmode and sslrootcert in the URL",
                        chain(e)
                    )
                } else if e.is_closed() || is_io(e) {
                    format!(
                        "cannot reach the PostgreSQL server at {endpoint}: {}; check that it is running and reachable",
                        chain(e)
                    )
                } else {
                    format!("{} (server {endpoint})", chain(e))
                }
            }
        }
    }
}

/// `future`, or `Elapsed` after `limit` (the timer is made inside the
/// runtime, which it needs).
async fn bounded<F: std::future::Future>(
    limit: Duration,
    future: F,
) -> std::result::Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(limit, future).await
}

/// Runs a connection: its I/O, and notifications into a channel.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    sender: mpsc::Sender<Notification>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => {
                let _ = sender.send(n);
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// An open connection. Every call waits at most the reply bound; a call
/// that runs out gives the connection up.
pub(crate) struct Session {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    notifications: mpsc::Receiver<Notification>,
    reply_timeout: Duration,
    /// Set once COMMIT was sent in the current call: from then on a lost
    /// reply leaves the outcome unknown.
    pub(crate) commit_sent: bool,
    broken: bool,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Session {
    fn settle<T>(
        &mut self,
        result: std::result::Result<
            std::result::Result<T, tokio_postgres::Error>,
            tokio::time::error::Elapsed,
        >,
    ) -> std::result::Result<T, Failure> {
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure::Pg(e)),
            Err(_) => {
                self.broken = true;
                Err(Failure::Timeout(self.reply_timeout))
            }
        }
    }

    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> std::result::Result<Vec<Row>, Failure> {
        let r = self
            .rt
            .block_on(bounded(self.reply_timeout, self.client.query(sql, params)));
        self.settle(r)
    }

    /// [`query`](Self::query) with its own bound on the reply.
    pub(crate) fn query_within(
        &mut self,
        limit: Duration,
        sql: &str,
    ) -> std::result::Result<Vec<Row>, Failure> {
        let r = self
            .rt
            .block_on(bounded(limit, self.client.query(sql, &[])));
        let normal = std::mem::replace(&mut self.reply_timeout, limit);
        let settled = self.settle(r);
        self.reply_timeout = normal;
        settled
    }

    pub(crate) fn query_one(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> std::result::Result<Row, Failure> {
        self.query(sql, params)?
            .into_iter()
            .next()
            .ok_or(Failure::Unexpected("a query returned no row"))
    }

    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> std::result::Result<u64, Failure> {
        let r = self.rt.block_on(bounded(
            self.reply_timeout,
            self.client.execute(sql, params),
        ));
        self.settle(r)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> std::result::Result<(), Failure> {
        let r = self
            .rt
            .block_on(bounded(self.reply_timeout, self.client.batch_execute(sql)));
        self.settle(r)
    }

    /// Runs `f` in a transaction; commits when it returns `(value, true)`,
    /// rolls back otherwise.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Session) -> std::result::Result<(T, bool), Failure>,
    ) -> std::result::Result<T, Failure> {
        self.batch("BEGIN")?;
        match f(self) {
            Ok((value, true)) => {
                self.commit_sent = true;
                if super::fault_active("postgres-commit-reply-lost") {
                    let _ = self.rt.block_on(self.client.batch_execute("COMMIT"));
                    self.broken = true;
                    return Err(Failure::Unexpected(
                        "the connection was lost (fault injected)",
                    ));
                }
                self.batch("COMMIT")?;
                Ok(value)
            }
            Ok((value, false)) => {
                self.batch("ROLLBACK")?;
                Ok(value)
            }
            Err(e) => {
                if !self.is_closed() && self.batch("ROLLBACK").is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.broken || self.client.is_closed()
    }

    /// Lets the connection read for `wait`, then counts the notifications
    /// received.
    pub(crate) fn take_notifications(&mut self, wait: Duration) -> u64 {
        if !wait.is_zero() {
            self.rt.block_on(async { tokio::time::sleep(wait).await });
        }
        let mut n = 0;
        while self.notifications.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unsupported_parameters_are_refused() {
        for url in [
            "postgres://h/d?sslmode=bogus",
            "postgres://h/d?frobnicate=1",
            "postgres://h/d?sslcert=/c.pem",
        ] {
            let err = Connector::new(&PostgresUrl(url.into()))
                .err()
                .expect(url)
                .to_string();
            assert!(err.contains("database postgres://h/d"), "{err}");
        }
        assert!(Connector::new(&PostgresUrl(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert=system&statement_timeout=5s".into()
        ))
        .is_ok());
    }
}
