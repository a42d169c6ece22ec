//! `cargo xtask bench server`: Latchkey's release binary under load, next to
//! node-oidc-provider on the same machine in the same run.
//!
//! Order: the prerequisites first, so a missing tool fails in seconds (wrk,
//! Node with e2e's pinned `oidc-provider`, Postgres), then `cargo build
//! --release -p latchkey`. Then, for SQLite and for Postgres, Latchkey is
//! started on a free loopback port with its own data directory (Postgres: a
//! scratch database `latchkey_bench_<pid>`, dropped afterwards whatever
//! happens), a confidential `client_credentials` client is created with
//! `latchkey client add`, and two scenarios are measured: `client_credentials`
//! issuance (`POST /token`) and introspection of one valid access token
//! (`POST /introspect`, as that operator-made client, which may introspect any
//! token). Last, `e2e/bench/oidc-provider.mjs` starts node-oidc-provider,
//! configured to issue the same ES256 RFC 9068 JWT, and its
//! `client_credentials` issuance is measured with the same load.
//!
//! Before any load, each server answers one real request, checked by hand:
//! the token must be an ES256 `at+jwt` JWT and introspection must say
//! `active`. So both sides are known to do the same work, and a
//! misconfiguration fails here instead of producing a fast number for error
//! answers. Each measured run follows an unreported warm-up (Node's JIT
//! needs one) and is itself checked response by response (see `wrk`).
//!
//! Reported per run: requests/s, p50 and p99 latency, non-2xx and other
//! unexpected answers, the CPU the server used (in cores: the machine has
//! two, shared with wrk) and how busy the machine was, and the server's peak
//! RSS so far (`VmHWM`; the introspection row's figure covers both
//! scenarios, since one server serves both). Then the ratio of Latchkey's
//! `client_credentials` rate to node-oidc-provider's, per backend, against
//! the 3× goal of issue 5. A bench reports performance and does not fail on
//! it; it exits non-zero only when something is broken (a failed step, an
//! unexpected answer, a socket error).
//!
//! Invariant: credentials and tokens are never printed. They travel from
//! `latchkey client add` and from the node script's stdout pipe straight into
//! requests and into mode-0600 wrk scripts in the scratch directory, which is
//! removed at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::ScratchDatabase;
use super::http::{self, HttpUrl};
use super::process::{Arg, CpuUse, Launch, MachineTicks, Server};
use super::report::{self, LATCHKEY, NODE_OIDC_PROVIDER, Row, Scenario};
use super::wrk::{self, Load};
use crate::postgres::{self, DATABASE_URL};
use crate::shell::{Cmd, Shell, find_in_path};

/// The protected resource tokens are issued for. Nothing listens there:
/// the tokens are only issued and introspected, never presented to it.
const RESOURCE: &str = "http://127.0.0.1:9/mcp";

/// The one scope the resource offers and the client asks for.
const SCOPE: &str = "bench:read";

/// The unreported run before each measured one.
pub(super) const WARM_UP_SECONDS: u32 = 2;

/// How long a server may take to start (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The node script, relative to the workspace root.
const NODE_SCRIPT: &str = "e2e/bench/oidc-provider.mjs";

/// The `oidc-provider` version e2e/package-lock.json pins.
const OIDC_PROVIDER_VERSION: &str = "9.13.3";

/// Runs the whole server bench with `seconds` per measured run.
pub(super) fn run(shell: &mut Shell, seconds: u32) -> anyhow::Result<()> {
    let wrk = wrk::ensure_installed(shell).context("wrk")?;
    let node = ensure_node(shell).context("node-oidc-provider")?;
    postgres::discover_and_export(shell)?;
    shell
        .run(
            &shell
                .cargo()
                .args(["build", "--release", "--package", "latchkey"]),
        )
        .context("building the release binary")?;
    let scratch = ScratchDirectory::create()?;
    let bench = Bench {
        shell,
        wrk,
        seconds,
        directory: scratch.path().to_path_buf(),
    };
    let binary = release_binary(bench.shell);
    let mut rows = bench
        .latchkey(&binary, Backend::Sqlite)
        .context("Latchkey on SQLite")?;
    rows.extend(
        bench
            .latchkey(&binary, Backend::Postgres)
            .context("Latchkey on Postgres")?,
    );
    rows.push(bench.node(&node).context("node-oidc-provider")?);
    print!("{}", report::summary(&rows, seconds));
    for line in report::bench_lines(&rows, seconds) {
        println!("{line}");
    }
    let problems: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            row.stats.problems().map(|problem| {
                format!(
                    "{} {} {}: {problem}",
                    row.implementation,
                    row.backend,
                    row.scenario.name()
                )
            })
        })
        .collect();
    if !problems.is_empty() {
        bail!(
            "the bench saw wrong answers, so its figures do not count: {}",
            problems.join("; ")
        );
    }
    Ok(())
}

/// Where cargo puts `target/release/latchkey`.
fn release_binary(shell: &Shell) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || shell.root().join("target"),
        |directory| shell.root().join(directory),
    );
    target.join("release").join("latchkey")
}

/// Finds Node and makes sure e2e's pinned `oidc-provider` is installed,
/// running `npm ci --prefix e2e` (exact versions from e2e/package-lock.json)
/// when it is not.
pub(super) fn ensure_node(shell: &Shell) -> anyhow::Result<PathBuf> {
    let node = find_in_path("node").context(
        "Node.js (20 or later) is not installed; on Debian: `apt-get install -y nodejs npm`",
    )?;
    if installed_oidc_provider(shell.root()).as_deref() == Some(OIDC_PROVIDER_VERSION) {
        return Ok(node);
    }
    let npm =
        find_in_path("npm").context("npm is not installed; on Debian: `apt-get install -y npm`")?;
    shell.run(&Cmd::new(npm).args(["ci", "--prefix", "e2e", "--no-audit", "--no-fund"]))?;
    match installed_oidc_provider(shell.root()) {
        Some(version) if version == OIDC_PROVIDER_VERSION => Ok(node),
        other => bail!(
            "after `npm ci --prefix e2e`, e2e/node_modules holds oidc-provider {other:?}, \
             not {OIDC_PROVIDER_VERSION}: check the pin in e2e/package.json"
        ),
    }
}

/// The version of `e2e/node_modules/oidc-provider`, if installed.
fn installed_oidc_provider(root: &Path) -> Option<String> {
    let manifest = root.join("e2e/node_modules/oidc-provider/package.json");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(manifest).ok()?).ok()?;
    manifest.get("version")?.as_str().map(str::to_owned)
}

/// Latchkey's two storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What every run shares.
struct Bench<'shell> {
    shell: &'shell Shell,
    wrk: PathBuf,
    seconds: u32,
    /// The scratch directory: data directories, logs, wrk scripts.
    directory: PathBuf,
}

impl Bench<'_> {
    /// Benchmarks Latchkey on `backend`: both scenarios on one server.
    fn latchkey(&self, binary: &Path, backend: Backend) -> anyhow::Result<Vec<Row>> {
        let name = format!("latchkey-{}", backend.name());
        let data_directory = self.directory.join(&name);
        // Declared before the server, so that on an error path the server is
        // dropped (stopped) first and the database after it.
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin_url = self
                    .shell
                    .exported(DATABASE_URL)
                    .context("Postgres discovery exported no DATABASE_URL")?
                    .to_owned();
                Some(ScratchDatabase::create(
                    self.shell,
                    &admin_url,
                    format!("latchkey_bench_{}", std::process::id()),
                )?)
            }
        };
        let mut common = vec![
            Arg::from("--data-dir"),
            Arg::Plain(data_directory.to_string_lossy().into_owned()),
        ];
        if let Some(database) = &database {
            let url = database.url()?;
            common.push(Arg::from("--database-url"));
            common.push(Arg::Masked {
                shown: postgres::redact_password(&url),
                value: url,
            });
        }

        let client = self.add_client(binary, &common)?;
        let authorization = http::basic_authorization(&client.client_id, &client.client_secret);

        let mut arguments = vec![Arg::from("serve")];
        arguments.extend(common);
        arguments.extend([
            Arg::from("--listen"),
            Arg::from("127.0.0.1:0"),
            Arg::from("--resource"),
            Arg::Plain(format!("{RESOURCE}={SCOPE}")),
        ]);
        let mut server = Server::start(
            self.shell,
            &Launch {
                name: name.clone(),
                program: binary.to_path_buf(),
                arguments,
                // Per-request logs at info level would measure the logger.
                environment: vec![("LATCHKEY_LOG".to_owned(), "warn".to_owned())],
            },
            &self.directory,
        )?;
        let issuer = server.wait_for_stdout(START_TIMEOUT, "`issuer:` line", |line| {
            line.trim_start()
                .strip_prefix("issuer:")
                .map(|issuer| issuer.trim().to_owned())
        })?;
        let issuer = HttpUrl::parse(&issuer)?;
        wait_until_ready(&mut server, &issuer.with_path("/readyz"))?;
        let (token_endpoint, introspection_endpoint) = endpoints(&issuer)?;

        let token_body = token_request_body();
        let access_token = first_token(
            server.name(),
            &HttpUrl::parse(&token_endpoint)?,
            &authorization,
            &token_body,
        )?;
        let introspection_body = format!("token={}", http::form_urlencode(&access_token));
        check_introspection(
            &server,
            &HttpUrl::parse(&introspection_endpoint)?,
            &authorization,
            &introspection_body,
        )?;

        let issuance = self.measure(
            &mut server,
            LATCHKEY,
            backend.name(),
            Scenario::ClientCredentials,
            &Load {
                url: token_endpoint,
                authorization: authorization.clone(),
                body: token_body,
                expect: "\"access_token\":\"".to_owned(),
            },
        )?;
        let introspection = self.measure(
            &mut server,
            LATCHKEY,
            backend.name(),
            Scenario::Introspection,
            &Load {
                url: introspection_endpoint,
                authorization,
                body: introspection_body,
                expect: "\"active\":true".to_owned(),
            },
        )?;
        server.stop(self.shell)?;
        drop(database);
        Ok(vec![issuance, introspection])
    }

    /// `latchkey client add` for the bench client, against the same data
    /// directory and database as the server.
    fn add_client(&self, binary: &Path, common: &[Arg]) -> anyhow::Result<Credentials> {
        let mut command = Cmd::new(binary)
            .env("LATCHKEY_LOG", "warn")
            .args(["client", "add"]);
        for argument in common {
            command = match argument {
                Arg::Plain(value) => command.arg(value),
                Arg::Masked { value, shown } => command.masked_arg(value, shown.clone()),
            };
        }
        let output = self.shell.read(&command.args([
            "--confidential",
            "--json",
            "--name",
            "bench",
            "--grant-type",
            "client_credentials",
            "--scope",
            SCOPE,
        ]))?;
        Credentials::from_json(&output).context("reading `latchkey client add --json`")
    }

    /// Benchmarks node-oidc-provider's `client_credentials` issuance.
    fn node(&self, node: &Path) -> anyhow::Result<Row> {
        let mut server = Server::start(
            self.shell,
            &Launch {
                name: NODE_OIDC_PROVIDER.to_owned(),
                program: node.to_path_buf(),
                arguments: vec![
                    Arg::from(NODE_SCRIPT),
                    Arg::from("--resource"),
                    Arg::from(RESOURCE),
                    Arg::from("--scope"),
                    Arg::from(SCOPE),
                ],
                environment: vec![("NODE_ENV".to_owned(), "production".to_owned())],
            },
            &self.directory,
        )?;
        let (token_endpoint, credentials) =
            server.wait_for_stdout(START_TIMEOUT, "JSON line with its client", |line| {
                let info: Value = serde_json::from_str(line).ok()?;
                let endpoint = info.get("token_endpoint")?.as_str()?.to_owned();
                Some((endpoint, Credentials::from_value(&info)?))
            })?;
        let authorization =
            http::basic_authorization(&credentials.client_id, &credentials.client_secret);
        let token_body = token_request_body();
        first_token(
            server.name(),
            &HttpUrl::parse(&token_endpoint)?,
            &authorization,
            &token_body,
        )?;
        let row = self.measure(
            &mut server,
            NODE_OIDC_PROVIDER,
            "memory",
            Scenario::ClientCredentials,
            &Load {
                url: token_endpoint,
                authorization,
                body: token_body,
                expect: "\"access_token\":\"".to_owned(),
            },
        )?;
        server.stop(self.shell)?;
        Ok(row)
    }

    /// A warm-up run, then the measured run with CPU and memory figures.
    fn measure(
        &self,
        server: &mut Server,
        implementation: &'static str,
        backend: &'static str,
        scenario: Scenario,
        load: &Load,
    ) -> anyhow::Result<Row> {
        let label = format!("{}-{}", server.name(), scenario.name());
        eprintln!("\n{label}: {WARM_UP_SECONDS} s warm-up");
        let warm_up = wrk::run(
            self.shell,
            &self.wrk,
            load,
            WARM_UP_SECONDS,
            &self.directory,
            &format!("{label}-warm-up"),
        )?;
        if let Some(problem) = warm_up.problems() {
            bail!("{label}: the warm-up saw {problem}{}", server.logs());
        }
        eprintln!("\n{label}: {} s measured", self.seconds);
        let process_before = server.cpu_ticks()?;
        let machine_before = MachineTicks::read()?;
        let stats = wrk::run(
            self.shell,
            &self.wrk,
            load,
            self.seconds,
            &self.directory,
            &label,
        )?;
        let process_after = server.cpu_ticks()?;
        let machine_after = MachineTicks::read()?;
        server.check_running()?;
        Ok(Row {
            implementation,
            backend,
            scenario,
            stats,
            cpu: CpuUse::between(process_before, process_after, machine_before, machine_after),
            peak_rss_kib: server.peak_rss_kib()?,
        })
    }
}

/// A client id and secret; `Debug` is not derived, so the secret cannot
/// reach a log by accident.
struct Credentials {
    client_id: String,
    client_secret: String,
}

impl Credentials {
    /// From `latchkey client add --json` output.
    fn from_json(output: &str) -> anyhow::Result<Self> {
        let value: Value = serde_json::from_str(output).context("not JSON")?;
        Self::from_value(&value).context("no client_id and client_secret")
    }

    fn from_value(value: &Value) -> Option<Self> {
        Some(Self {
            client_id: value.get("client_id")?.as_str()?.to_owned(),
            client_secret: value.get("client_secret")?.as_str()?.to_owned(),
        })
    }
}

/// The `client_credentials` request both servers get (RFC 6749 §4.4.2,
/// with the RFC 8707 `resource`).
fn token_request_body() -> String {
    format!(
        "grant_type=client_credentials&scope={}&resource={}",
        http::form_urlencode(SCOPE),
        http::form_urlencode(RESOURCE)
    )
}

/// The token and introspection endpoints from Latchkey's metadata
/// (RFC 8414 §3), rather than paths assumed here.
fn endpoints(issuer: &HttpUrl) -> anyhow::Result<(String, String)> {
    let url = issuer.with_path("/.well-known/oauth-authorization-server");
    let response = http::get(&url)?;
    let metadata: Value = serde_json::from_str(&response.body)
        .with_context(|| format!("{url} answered {} without JSON", response.status))?;
    let endpoint = |key: &str| {
        metadata
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the metadata at {url} has no {key}"))
    };
    Ok((
        endpoint("token_endpoint")?,
        endpoint("introspection_endpoint")?,
    ))
}

/// Introspects a fresh token once and checks that it is reported active,
/// which also proves the bench client may introspect.
fn check_introspection(
    server: &Server,
    endpoint: &HttpUrl,
    authorization: &str,
    body: &str,
) -> anyhow::Result<()> {
    let response = http::post_form(endpoint, authorization, body)?;
    let active = serde_json::from_str::<Value>(&response.body)
        .ok()
        .and_then(|answer| answer.get("active").and_then(Value::as_bool));
    if response.status != 200 || active != Some(true) {
        bail!(
            "{}: introspecting a fresh token answered {} with active={active:?}{}",
            server.name(),
            response.status,
            server.logs()
        );
    }
    eprintln!("{}: introspection of that token says active", server.name());
    Ok(())
}

/// Polls `url` until it answers 200; fails when the server exits or
/// `START_TIMEOUT` passes.
fn wait_until_ready(server: &mut Server, url: &HttpUrl) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let answer = http::get(url);
        if matches!(&answer, Ok(response) if response.status == 200) {
            return Ok(());
        }
        server.check_running()?;
        if Instant::now() > deadline {
            let answer = match answer {
                Ok(response) => format!("status {}", response.status),
                Err(error) => format!("{error:#}"),
            };
            bail!(
                "{url} did not answer 200 within {} s (last: {answer}){}",
                START_TIMEOUT.as_secs(),
                server.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Requests one token and checks that it is what the comparison assumes:
/// a JWT whose header says ES256 and `at+jwt` (RFC 9068 §2.1). Returns the
/// token, which is never printed.
fn first_token(
    name: &str,
    endpoint: &HttpUrl,
    authorization: &str,
    body: &str,
) -> anyhow::Result<String> {
    let response = http::post_form(endpoint, authorization, body)?;
    if response.status != 200 {
        // An error answer carries an error code and description, no secret.
        bail!(
            "{name}: POST {endpoint} answered {}: {}",
            response.status,
            response.body
        );
    }
    let token = serde_json::from_str::<Value>(&response.body)
        .ok()
        .and_then(|answer| answer.get("access_token")?.as_str().map(str::to_owned))
        .with_context(|| format!("{name}: the token response has no access_token"))?;
    let (algorithm, token_type) = jwt_header(&token)
        .with_context(|| format!("{name}: the access token is not a JWT with a JSON header"))?;
    if algorithm != "ES256" || !token_type.eq_ignore_ascii_case("at+jwt") {
        bail!(
            "{name}: the access token is alg={algorithm} typ={token_type}; the comparison \
             needs ES256 at+jwt on both sides"
        );
    }
    eprintln!(
        "{name}: a token request gives an {algorithm} {token_type} access token of {} bytes",
        token.len()
    );
    Ok(token)
}

/// The `alg` and `typ` of a JWS compact serialisation's header.
pub(super) fn jwt_header(token: &str) -> Option<(String, String)> {
    let header = token.split('.').next()?;
    let header: Value = serde_json::from_slice(&http::base64url_decode(header)?).ok()?;
    Some((
        header.get("alg")?.as_str()?.to_owned(),
        header.get("typ")?.as_str()?.to_owned(),
    ))
}

/// The bench's scratch directory, removed on drop.
struct ScratchDirectory {
    path: PathBuf,
}

impl ScratchDirectory {
    fn create() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("latchkey-bench-server-{}", std::process::id()));
        // A crashed run with the same process id may have left it behind.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDirectory {
    fn drop(&mut self) {
        // Best effort: it holds only throwaway data directories, logs and
        // scripts with throwaway credentials.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_body_is_form_encoded() {
        assert_eq!(
            token_request_body(),
            "grant_type=client_credentials&scope=bench%3Aread\
             &resource=http%3A%2F%2F127.0.0.1%3A9%2Fmcp"
        );
    }

    #[test]
    fn jwt_headers_are_read() {
        let header = http::base64_encode(br#"{"typ":"at+jwt","alg":"ES256","kid":"k"}"#);
        let header = header
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        assert_eq!(
            jwt_header(&format!("{header}.e30.c2ln")),
            Some(("ES256".to_owned(), "at+jwt".to_owned()))
        );
        assert_eq!(jwt_header("not-base64!.x.y"), None);
        assert_eq!(jwt_header("e30.e30.x"), None);
    }

    #[test]
    fn credentials_come_from_client_add_json() {
        let credentials = Credentials::from_json(
            r#"{"client_id":"abc","client_secret":"lks_x","grant_types":["client_credentials"]}"#,
        )
        .unwrap();
        assert_eq!(
            (
                credentials.client_id.as_str(),
                credentials.client_secret.as_str()
            ),
            ("abc", "lks_x")
        );
        assert!(Credentials::from_json(r#"{"client_id":"public"}"#).is_err());
        assert!(Credentials::from_json("client_id: abc").is_err());
    }

    /// The real node script with e2e's pinned oidc-provider: it starts, its
    /// client gets an ES256 `at+jwt` token for the resource, a wrong secret
    /// is refused, and it stops cleanly on SIGTERM.
    #[test]
    fn the_node_oidc_provider_script_issues_comparable_tokens() {
        let shell = Shell::new().unwrap();
        let node = ensure_node(&shell).unwrap();
        let directory =
            std::env::temp_dir().join(format!("latchkey-xtask-node-script-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let mut server = Server::start(
            &shell,
            &Launch {
                name: "node-script".to_owned(),
                program: node,
                arguments: vec![Arg::from(NODE_SCRIPT)],
                environment: vec![("NODE_ENV".to_owned(), "production".to_owned())],
            },
            &directory,
        )
        .unwrap();
        let info = server
            .wait_for_stdout(START_TIMEOUT, "JSON line", |line| {
                serde_json::from_str::<Value>(line).ok()
            })
            .unwrap();
        assert_eq!(info["resource"], RESOURCE);
        assert_eq!(info["scope"], SCOPE);
        let credentials = Credentials::from_value(&info).unwrap();
        let endpoint = HttpUrl::parse(info["token_endpoint"].as_str().unwrap()).unwrap();
        let authorization =
            http::basic_authorization(&credentials.client_id, &credentials.client_secret);
        let token = first_token("node", &endpoint, &authorization, &token_request_body()).unwrap();
        let claims = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&http::base64url_decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], RESOURCE);
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["client_id"], credentials.client_id.as_str());
        assert_eq!(claims["iss"], info["issuer"]);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );

        let wrong = http::basic_authorization(&credentials.client_id, "wrong");
        let refused = http::post_form(&endpoint, &wrong, &token_request_body()).unwrap();
        assert_eq!(refused.status, 401, "{}", refused.body);

        server.stop(&shell).unwrap();
        std::fs::remove_dir_all(directory).unwrap();
    }
}
