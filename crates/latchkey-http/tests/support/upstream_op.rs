//! The upstream OpenID provider of the federation tests, as a child process:
//! `e2e/fixtures/upstream-op.mjs` (a real node-oidc-provider, pinned by
//! `e2e/package-lock.json`) on a free loopback port.
//!
//! [`UpstreamOp::start`] runs `node` (found on `PATH`) on the script (found
//! from `CARGO_MANIFEST_DIR`), waits for its one stdout line
//! `issuer: http://127.0.0.1:<port>` and returns; [`UpstreamOp::set_mode`]
//! switches its fault injection (`POST /__test/mode`). The fixture's accounts
//! are in [`ACCOUNTS`]; the fixture's module docs describe the rest.
//!
//! Invariants: the process dies with the value (`Drop` kills and reaps it) and,
//! because its stdin is a pipe held here, also when the test binary dies
//! without running `Drop`. A missing Node or missing npm packages is an error
//! whose message says what to run (`npm ci --prefix e2e`), never a skip.
//! Only std is used (no async runtime), so the helpers work from any test.

use std::fmt;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the fixture may take to print its issuer line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One account of the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpstreamAccount {
    /// What to type into `input[name=login]`.
    pub(crate) login: &'static str,
    /// The `sub` claim.
    pub(crate) sub: &'static str,
    /// The `email` claim.
    pub(crate) email: &'static str,
    /// The `email_verified` claim.
    pub(crate) email_verified: bool,
}

/// The fixture's fixed accounts (`ACCOUNTS` in `upstream-op.mjs`).
pub(crate) const ACCOUNTS: [UpstreamAccount; 4] = [ALICE, BOB, CAROL, DAVE];
/// `alice`: verified email.
pub(crate) const ALICE: UpstreamAccount = UpstreamAccount {
    login: "alice",
    sub: "alice-sub-1",
    email: "alice@example.com",
    email_verified: true,
};
/// `bob`: his email is NOT verified upstream.
pub(crate) const BOB: UpstreamAccount = UpstreamAccount {
    login: "bob",
    sub: "bob-sub-2",
    email: "bob@example.com",
    email_verified: false,
};
/// `carol`: verified email.
pub(crate) const CAROL: UpstreamAccount = UpstreamAccount {
    login: "carol",
    sub: "carol-sub-3",
    email: "carol@example.com",
    email_verified: true,
};
/// `dave`: verified email.
pub(crate) const DAVE: UpstreamAccount = UpstreamAccount {
    login: "dave",
    sub: "dave-sub-4",
    email: "dave@example.com",
    email_verified: true,
};

/// How the fixture rewrites the `id_token` of its token responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tamper {
    /// Untouched.
    None,
    /// Re-signed with an unpublished key under the real `kid`.
    Signature,
    /// `nonce` changed, re-signed with the real key.
    Nonce,
    /// `aud` changed to another client, re-signed with the real key.
    Aud,
}

impl Tamper {
    /// The fixture's name for the mode.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Signature => "signature",
            Self::Nonce => "nonce",
            Self::Aud => "aud",
        }
    }
}

/// Why the fixture could not start.
#[derive(Debug)]
pub(crate) struct StartError(String);

impl fmt::Display for StartError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running upstream OpenID provider; the process ends when this is dropped.
#[derive(Debug)]
pub(crate) struct UpstreamOp {
    /// `http://127.0.0.1:<port>`, exactly as the provider's metadata says.
    pub(crate) issuer: String,
    /// The client the provider knows.
    pub(crate) client_id: String,
    /// That client's secret (`client_secret_basic` or `client_secret_post`).
    pub(crate) client_secret: String,
    /// The provider's socket address, for [`UpstreamOp::set_mode`].
    address: SocketAddr,
    child: Child,
    /// Held open: the fixture stops when its stdin closes.
    _stdin: ChildStdin,
}

impl UpstreamOp {
    /// Starts the fixture with one confidential client; panics with a
    /// message naming the fix when it cannot (see [`UpstreamOp::try_start`]).
    pub(crate) fn start(client_id: &str, client_secret: &str, redirect_uris: &[&str]) -> Self {
        match Self::try_start(client_id, client_secret, redirect_uris) {
            Ok(op) => op,
            Err(error) => panic!("{error}"),
        }
    }

    /// Starts the fixture from this workspace's `e2e/` directory.
    pub(crate) fn try_start(
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[&str],
    ) -> Result<Self, StartError> {
        let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e");
        Self::try_start_in(&e2e, client_id, client_secret, redirect_uris)
    }

    /// Starts the fixture of the `e2e` directory given.
    pub(crate) fn try_start_in(
        e2e: &Path,
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[&str],
    ) -> Result<Self, StartError> {
        let script = e2e.join("fixtures").join("upstream-op.mjs");
        if !script.is_file() {
            return Err(StartError(format!(
                "the upstream OP fixture is missing at {}",
                script.display()
            )));
        }
        if !e2e
            .join("node_modules")
            .join("oidc-provider")
            .join("package.json")
            .is_file()
        {
            return Err(StartError(format!(
                "{} has no oidc-provider: run `npm ci --prefix e2e` in the workspace root \
                 (`cargo xtask test` does it before the Rust tests)",
                e2e.join("node_modules").display()
            )));
        }
        let node = find_in_path("node").ok_or_else(|| {
            StartError(
                "`node` is not on PATH; the upstream OP fixture needs Node.js 20 or later \
                 (apt-get install -y nodejs npm, then `npm ci --prefix e2e`)"
                    .to_owned(),
            )
        })?;
        let mut command = Command::new(node);
        command
            .arg(&script)
            .args(["--port", "0", "--client-id", client_id])
            .args(["--client-secret", client_secret]);
        for redirect_uri in redirect_uris {
            command.args(["--redirect-uri", redirect_uri]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| StartError(format!("cannot run node: {error}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill(&mut child);
            return Err(StartError("node's stdio pipes are missing".to_owned()));
        };
        // Read the issuer line on a thread, so that a hung start times out.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let result = reader.read_line(&mut line).map(|_| line);
            // The receiver may have given up; nothing to do then.
            let _ = sender.send(result);
            // Keep draining so the fixture never blocks on a full pipe.
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let line = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(error)) => {
                kill(&mut child);
                return Err(StartError(format!(
                    "reading the upstream OP's stdout: {error}"
                )));
            }
            Err(_) => {
                kill(&mut child);
                return Err(StartError(format!(
                    "the upstream OP printed no issuer line within {START_TIMEOUT:?} \
                     (its stderr is in the test output)"
                )));
            }
        };
        let Some(issuer) = line.trim_end().strip_prefix("issuer: ").map(str::to_owned) else {
            let status = child.wait().ok();
            return Err(StartError(format!(
                "the upstream OP did not start (exit status {status:?}, stdout {line:?}); \
                 its stderr is in the test output"
            )));
        };
        let address = issuer
            .strip_prefix("http://")
            .and_then(|authority| authority.parse::<SocketAddr>().ok())
            .ok_or_else(|| StartError(format!("unexpected issuer {issuer:?}")));
        let address = match address {
            Ok(address) => address,
            Err(error) => {
                kill(&mut child);
                return Err(error);
            }
        };
        Ok(Self {
            issuer,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            address,
            child,
            _stdin: stdin,
        })
    }

    /// Switches the fault injection: how the `id_token` is tampered with,
    /// and whether the token endpoint is down (503). Panics if the fixture
    /// does not answer 204.
    pub(crate) fn set_mode(&self, tamper: Tamper, down: bool) {
        let body = format!(r#"{{"tamper":"{}","down":{down}}}"#, tamper.as_str());
        let request = format!(
            "POST /__test/mode HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        let answer = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(5))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(request.as_bytes())?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })();
        match answer {
            Ok(answer) if answer.starts_with("HTTP/1.1 204") => {}
            Ok(answer) => panic!("the upstream OP refused the mode change: {answer}"),
            Err(error) => panic!("the upstream OP did not answer the mode change: {error}"),
        }
    }

    /// The process id, for tests of this helper.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UpstreamOp {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Kills and reaps `child`; it may already have exited.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The first executable called `name` on `PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}
