//! Finding the Postgres server that tests and benchmarks use.
//!
//! The URL is `DATABASE_URL` when set, otherwise the local server at
//! `postgres://postgres@127.0.0.1:5432/postgres`. Either way it must answer:
//! tests that need Postgres never skip silently, so no answer is an error,
//! under CI (`CI=true`) and outside it alike; outside CI the message says how
//! to start the local cluster. The chosen URL is exported to child processes.
//!
//! Whether a server answers is asked of `pg_isready` when installed, else of
//! `psql`, else decided by a plain TCP connect. URLs are printed with their
//! password masked.

use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::bail;

use crate::shell::{Cmd, Shell, find_postgres_program};

/// The variable that carries the URL to child processes.
pub(crate) const DATABASE_URL: &str = "DATABASE_URL";

/// The machine's local server, trusted for the `postgres` user.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long one probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The command that starts Debian's cluster when it is down.
const START_HINT: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// Finds a Postgres that answers and exports its URL as `DATABASE_URL`.
pub(crate) fn discover_and_export(shell: &mut Shell) -> anyhow::Result<()> {
    let from_environment = std::env::var(DATABASE_URL)
        .ok()
        .filter(|url| !url.is_empty());
    let (url, origin) = match from_environment {
        Some(url) => (url, "from DATABASE_URL"),
        None => (DEFAULT_URL.to_owned(), "the default"),
    };
    if !answers(shell, &url) {
        let shown = redact_password(&url);
        if shell.is_ci() {
            bail!(
                "CI=true and no PostgreSQL server answers at {shown} ({origin}); \
                 the tests need a real server and are never skipped"
            );
        }
        bail!(
            "no PostgreSQL server answers at {shown} ({origin}); the tests need one. \
             Start the local cluster with `{START_HINT}`, or point DATABASE_URL at a \
             running server"
        );
    }
    eprintln!(
        "PostgreSQL answers at {} ({origin}); exporting it as {DATABASE_URL}",
        redact_password(&url)
    );
    shell.export(DATABASE_URL, &url);
    Ok(())
}

/// Whether a server answers at `url`.
fn answers(shell: &Shell, url: &str) -> bool {
    let timeout_seconds = PROBE_TIMEOUT.as_secs().to_string();
    if let Some(pg_isready) = find_postgres_program("pg_isready") {
        // `-d` accepts a full connection URI. pg_isready does not log in, so
        // this checks only that the server accepts connections.
        return shell.probe(&Cmd::new(pg_isready).args([
            "--quiet",
            "--timeout",
            &timeout_seconds,
            "--dbname",
            url,
        ]));
    }
    if let Some(psql) = find_postgres_program("psql") {
        return shell.probe(
            &Cmd::new(psql)
                .args(["--no-psqlrc", "--tuples-only", "--command", "select 1"])
                .masked_arg(url, redact_password(url)),
        );
    }
    let Some((host, port)) = host_and_port(url) else {
        eprintln!("cannot find a host and port in {}", redact_password(url));
        return false;
    };
    eprintln!("neither pg_isready nor psql is installed; trying a TCP connect to {host}:{port}");
    let Ok(addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, PROBE_TIMEOUT).is_ok())
}

/// Splits a `postgres://` URL into its scheme, its authority (user-info, host
/// and port) and the rest (path and query, each with its leading `/` or `?`).
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after_scheme) = url.split_once("://")?;
    let authority_end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at_checked(authority_end)?;
    Some((scheme, authority, rest))
}

/// The host and port of a URL; Postgres's defaults (`localhost`, 5432) fill
/// gaps, and IPv6 literals lose their brackets.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (_, authority, _) = split_url(url)?;
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, after)| after);
    let (host, port) = if let Some(bracketed) = host_and_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_and_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_and_port, None),
        }
    };
    let host = if host.is_empty() { "localhost" } else { host };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

/// `url` with its database name replaced by `database`, keeping the query.
pub(crate) fn with_database(url: &str, database: &str) -> Option<String> {
    let (scheme, authority, rest) = split_url(url)?;
    let query = rest
        .find('?')
        .and_then(|index| rest.get(index..))
        .unwrap_or("");
    Some(format!("{scheme}://{authority}/{database}{query}"))
}

/// `url` with any password (in the user-info or a `password=` query
/// parameter) replaced by `***`, for printing.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, authority, rest)) = split_url(url) else {
        return url.to_owned();
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let parameters: Vec<&str> = query
                .split('&')
                .map(|parameter| {
                    if parameter.starts_with("password=") {
                        "password=***"
                    } else {
                        parameter
                    }
                })
                .collect();
            format!("{path}?{}", parameters.join("&"))
        }
        None => rest.to_owned(),
    };
    format!("{scheme}://{authority}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_reads_the_authority() {
        assert_eq!(
            host_and_port(DEFAULT_URL),
            Some(("127.0.0.1".to_owned(), 5432))
        );
        assert_eq!(
            host_and_port("postgresql://user:p%40ss@db.example:6543/app?sslmode=disable"),
            Some(("db.example".to_owned(), 6543))
        );
        assert_eq!(
            host_and_port("postgres://[::1]:5433/app"),
            Some(("::1".to_owned(), 5433))
        );
        assert_eq!(
            host_and_port("postgres://[::1]/app"),
            Some(("::1".to_owned(), 5432))
        );
        assert_eq!(
            host_and_port("postgres:///app"),
            Some(("localhost".to_owned(), 5432))
        );
        assert_eq!(host_and_port("postgres://host:notaport/app"), None);
        assert_eq!(host_and_port("not a url"), None);
    }

    #[test]
    fn with_database_swaps_only_the_database_name() {
        assert_eq!(
            with_database(DEFAULT_URL, "latchkey_pgbench_42").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/latchkey_pgbench_42")
        );
        assert_eq!(
            with_database("postgres://u:pw@h:1/app?sslmode=disable", "scratch").as_deref(),
            Some("postgres://u:pw@h:1/scratch?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h:1?sslmode=disable", "scratch").as_deref(),
            Some("postgres://h:1/scratch?sslmode=disable")
        );
        assert_eq!(
            with_database("postgres://h", "scratch").as_deref(),
            Some("postgres://h/scratch")
        );
    }

    #[test]
    fn redact_password_masks_only_the_password() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/app?sslmode=require"),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://app:s3cret@db"),
            "postgres://app:***@db"
        );
        assert_eq!(redact_password(DEFAULT_URL), DEFAULT_URL);
        assert_eq!(redact_password("postgres://db/app"), "postgres://db/app");
        assert_eq!(
            redact_password("postgres://db/app?user=u&password=s3cret&sslmode=disable"),
            "postgres://db/app?user=u&password=***&sslmode=disable"
        );
    }

    #[test]
    fn the_local_server_answers() {
        // The machine always runs Postgres (see .ci/run), so this probes the
        // real server rather than a stand-in.
        let url = std::env::var(DATABASE_URL).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        assert!(answers(&Shell::at(std::env::temp_dir()), &url));
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        // Port 1 on loopback is never a Postgres server.
        assert!(!answers(
            &Shell::at(std::env::temp_dir()),
            "postgres://postgres@127.0.0.1:1/postgres"
        ));
    }
}
