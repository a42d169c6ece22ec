//! The load generator of the server bench: wrk, driven by `wrk.lua`.
//!
//! wrk (Debian package `wrk`) is a small C program with an event loop per
//! thread and a Lua hook per request. It is used rather than a load
//! generator written inside xtask, which would need an async runtime and an
//! HTTP client and so break xtask's rule of compiling in seconds with almost
//! no dependencies; and its cost per request is low, which matters when the
//! load generator shares the two cores with the server under test.
//!
//! Every run uses `CONNECTIONS` keep-alive connections on `THREADS` threads.
//! The request (URL, `Authorization`, form body) and the text every good
//! response must contain are written into a per-run copy of `wrk.lua` in the
//! bench's scratch directory (mode 0600), so that no credential appears on a
//! command line or in the echoed commands. The script checks every response
//! (status exactly 200 and the expected text in the body) and prints one
//! `WRK key=value...` line, parsed here into `WrkStats`.
//!
//! Invariant: a run with any unexpected response, non-2xx answer or socket
//! error is reported as such (`WrkStats::problems`); the caller fails the
//! bench on it rather than print a fast number for wrong answers.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::shell::{Cmd, Shell, find_in_path};

/// Concurrent connections, as the issue asks.
pub(super) const CONNECTIONS: u32 = 32;

/// wrk threads: one per core of the 2-core machine.
pub(super) const THREADS: u32 = 2;

/// The script's fixed part; `script` prepends the per-run `config` table.
const SCRIPT: &str = include_str!("wrk.lua");

/// One kind of request to repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Load {
    /// The full URL (`http://127.0.0.1:<port>/token`).
    pub(super) url: String,
    /// The `Authorization` header value.
    pub(super) authorization: String,
    /// The form-urlencoded body.
    pub(super) body: String,
    /// Text every good response body contains.
    pub(super) expect: String,
}

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WrkStats {
    /// Completed requests.
    pub(super) requests: u64,
    /// The run's length in microseconds, as wrk measured it.
    pub(super) duration_us: u64,
    /// Median latency in microseconds.
    pub(super) p50_us: f64,
    /// 99th-percentile latency in microseconds.
    pub(super) p99_us: f64,
    /// Answers with a status outside 2xx and 3xx, as wrk counts them.
    pub(super) non_2xx: u64,
    /// Answers that were not a 200 with the expected body (a superset of
    /// `non_2xx`).
    pub(super) unexpected: u64,
    /// Connect, read and write errors and timeouts.
    pub(super) socket_errors: u64,
}

impl WrkStats {
    /// Completed requests per second.
    pub(super) fn requests_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    /// What was wrong with the run, if anything.
    pub(super) fn problems(&self) -> Option<String> {
        let mut problems = Vec::new();
        if self.requests == 0 {
            problems.push("no request completed".to_owned());
        }
        if self.non_2xx > 0 {
            problems.push(format!("{} non-2xx answers", self.non_2xx));
        }
        if self.unexpected > 0 {
            problems.push(format!(
                "{} answers that were not a 200 with the expected body",
                self.unexpected
            ));
        }
        if self.socket_errors > 0 {
            problems.push(format!("{} socket errors", self.socket_errors));
        }
        (!problems.is_empty()).then(|| problems.join(", "))
    }
}

/// Finds wrk, installing Debian's package when running as root.
pub(super) fn ensure_installed(shell: &Shell) -> anyhow::Result<PathBuf> {
    if let Some(wrk) = find_in_path("wrk") {
        return Ok(wrk);
    }
    if !running_as_root() {
        bail!("wrk is not installed; install it with `sudo apt-get install -y wrk`");
    }
    eprintln!("wrk is not installed; installing Debian's package");
    // Wait for another apt or dpkg run (a parallel test process, say)
    // instead of failing on its lock.
    let lock_timeout = "DPkg::Lock::Timeout=300";
    shell.run(&Cmd::new("apt-get").args(["-o", lock_timeout, "update", "-qq"]))?;
    shell.run(
        &Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", lock_timeout, "install", "-y", "-qq", "wrk"]),
    )?;
    find_in_path("wrk").context("apt-get installed wrk, but it is not in PATH")
}

/// Whether the effective user id is 0, read from `/proc/self/status`.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
            // Real, effective, saved and filesystem ids: the effective one.
            uids.split_whitespace().nth(1).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// The script for `load`: the `config` table, then `wrk.lua`.
pub(super) fn script(load: &Load) -> String {
    format!(
        "local config = {{\n  authorization = {},\n  body = {},\n  expect = {},\n}}\n\n{SCRIPT}",
        lua_string(&load.authorization),
        lua_string(&load.body),
        lua_string(&load.expect)
    )
}

/// A Lua string literal for `text`: quotes and backslashes escaped, and
/// every byte outside printable ASCII written as a decimal escape.
pub(super) fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => {
                literal.push('\\');
                literal.push(char::from(byte));
            }
            0x20..=0x7e => literal.push(char::from(byte)),
            _ => literal.push_str(&format!("\\{byte:03}")),
        }
    }
    literal.push('"');
    literal
}

/// Runs wrk with `load` for `seconds`; the script goes to
/// `<directory>/<label>.lua`. wrk's own report is passed through to stdout.
pub(super) fn run(
    shell: &Shell,
    wrk: &Path,
    load: &Load,
    seconds: u32,
    directory: &Path,
    label: &str,
) -> anyhow::Result<WrkStats> {
    let script_path = directory.join(format!("{label}.lua"));
    write_private(&script_path, &script(load))?;
    let lines = shell.tee(
        &Cmd::new(wrk)
            .arg("--threads")
            .arg(THREADS.to_string())
            .arg("--connections")
            .arg(CONNECTIONS.to_string())
            .arg("--duration")
            .arg(format!("{seconds}s"))
            .arg("--latency")
            .arg("--script")
            .arg(&script_path)
            .arg(&load.url),
    )?;
    lines
        .iter()
        .find_map(|line| parse_wrk_line(line).transpose())
        .context("wrk printed no `WRK ...` line: did the script's `done` run?")?
}

/// Writes a file only its owner can read: it holds client credentials.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Parses the script's `WRK key=value...` line: `Ok(None)` for other lines.
pub(super) fn parse_wrk_line(line: &str) -> anyhow::Result<Option<WrkStats>> {
    let Some(rest) = line.strip_prefix("WRK ") else {
        return Ok(None);
    };
    let mut fields = std::collections::BTreeMap::new();
    for word in rest.split_whitespace() {
        let (key, value) = word
            .split_once('=')
            .with_context(|| format!("WRK field is not key=value: {word:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("WRK field {key} is not a number: {value:?}"))?;
        fields.insert(key, value);
    }
    let field = |key: &str| {
        fields
            .get(key)
            .copied()
            .with_context(|| format!("the WRK line lacks {key}=: {line:?}"))
    };
    // Counts are printed with %d, so the conversions below are exact.
    let count = |key: &str| field(key).map(|value| value as u64);
    Ok(Some(WrkStats {
        requests: count("requests")?,
        duration_us: count("duration_us")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        non_2xx: count("non_2xx")?,
        unexpected: count("unexpected")?,
        socket_errors: count("connect_errors")?
            + count("read_errors")?
            + count("write_errors")?
            + count("timeouts")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn lua_strings_escape_everything_unusual() {
        assert_eq!(lua_string("Basic eDp5"), "\"Basic eDp5\"");
        assert_eq!(lua_string("\"active\":true"), "\"\\\"active\\\":true\"");
        assert_eq!(lua_string("a\\b\nc"), "\"a\\\\b\\010c\"");
        assert_eq!(lua_string("é"), "\"\\195\\169\"");
    }

    #[test]
    fn the_script_starts_with_the_config_table() {
        let script = script(&Load {
            url: "http://127.0.0.1:1/token".to_owned(),
            authorization: "Basic eDp5".to_owned(),
            body: "grant_type=client_credentials".to_owned(),
            expect: "\"access_token\":\"".to_owned(),
        });
        assert!(
            script.starts_with(
                "local config = {\n  authorization = \"Basic eDp5\",\n  \
                 body = \"grant_type=client_credentials\",\n  \
                 expect = \"\\\"access_token\\\":\\\"\",\n}\n\n-- The wrk script"
            ),
            "{script}"
        );
    }

    #[test]
    fn parses_the_wrk_line() {
        let line = "WRK requests=195546 duration_us=5100000 p50_us=844.0 p99_us=1460.5 \
                    mean_us=834.9 non_2xx=2 unexpected=3 connect_errors=1 read_errors=1 \
                    write_errors=0 timeouts=4";
        let stats = parse_wrk_line(line).unwrap().unwrap();
        assert_eq!(
            stats,
            WrkStats {
                requests: 195546,
                duration_us: 5_100_000,
                p50_us: 844.0,
                p99_us: 1460.5,
                non_2xx: 2,
                unexpected: 3,
                socket_errors: 6,
            }
        );
        assert!((stats.requests_per_second() - 38342.35).abs() < 0.01);
        assert_eq!(
            stats.problems().unwrap(),
            "2 non-2xx answers, 3 answers that were not a 200 with the expected body, \
             6 socket errors"
        );
        assert_eq!(parse_wrk_line("Requests/sec: 38345.87").unwrap(), None);
        assert!(parse_wrk_line("WRK requests=1").is_err());
        assert!(parse_wrk_line("WRK requests=many").is_err());
        let idle = WrkStats {
            requests: 0,
            duration_us: 0,
            p50_us: 0.0,
            p99_us: 0.0,
            non_2xx: 0,
            unexpected: 0,
            socket_errors: 0,
        };
        assert_eq!(idle.requests_per_second(), 0.0);
        assert_eq!(idle.problems().unwrap(), "no request completed");
    }

    /// Serves keep-alive HTTP/1.1 on loopback, answering every request with
    /// `status` and `body`, and recording each request's head and body.
    fn serve(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let sender = sender.clone();
                std::thread::spawn(move || answer(stream, status, body, &sender));
            }
        });
        (format!("http://{address}/token"), receiver)
    }

    fn answer(
        stream: TcpStream,
        status: &str,
        body: &str,
        sender: &std::sync::mpsc::Sender<String>,
    ) {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut request_body = vec![0; length];
            if reader.read_exact(&mut request_body).is_err() {
                return;
            }
            let _ = sender.send(format!("{head}{}", String::from_utf8_lossy(&request_body)));
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn load(url: String) -> Load {
        Load {
            url,
            authorization: "Basic eDp5".to_owned(),
            body: "grant_type=client_credentials&scope=bench%3Aread".to_owned(),
            expect: "\"active\":true".to_owned(),
        }
    }

    fn scratch(label: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("latchkey-xtask-wrk-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        directory
    }

    /// Real wrk against real loopback servers: the request is the one
    /// configured, good answers are counted as such, and both a 200 with the
    /// wrong body (introspection's `{"active":false}`) and a non-2xx answer
    /// are caught. One test, so that parallel test processes never race to
    /// install wrk.
    #[test]
    fn wrk_sends_the_configured_request_and_checks_every_answer() {
        let shell = Shell::at(std::env::temp_dir());
        let wrk = ensure_installed(&shell).unwrap();
        let directory = scratch("answers");

        let (url, requests) = serve("200 OK", "{\"active\":true}");
        let stats = run(&shell, &wrk, &load(url), 1, &directory, "good").unwrap();
        assert!(stats.requests > 0, "{stats:?}");
        assert_eq!(stats.problems(), None, "{stats:?}");
        assert!(
            stats.p50_us > 0.0 && stats.p99_us >= stats.p50_us,
            "{stats:?}"
        );
        let request = requests.recv().unwrap();
        assert!(request.starts_with("POST /token HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("Authorization: Basic eDp5\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Content-Type: application/x-www-form-urlencoded\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\ngrant_type=client_credentials&scope=bench%3Aread"));
        let mode = std::fs::metadata(directory.join("good.lua")).unwrap();
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);

        let (url, _requests) = serve("200 OK", "{\"active\":false}");
        let stats = run(&shell, &wrk, &load(url), 1, &directory, "inactive").unwrap();
        assert!(stats.requests > 0, "{stats:?}");
        assert_eq!(stats.unexpected, stats.requests, "{stats:?}");
        assert_eq!(stats.non_2xx, 0, "{stats:?}");

        let (url, _requests) = serve("401 Unauthorized", "{\"error\":\"invalid_client\"}");
        let stats = run(&shell, &wrk, &load(url), 1, &directory, "unauthorized").unwrap();
        assert!(stats.requests > 0, "{stats:?}");
        assert_eq!(stats.non_2xx, stats.requests, "{stats:?}");
        assert_eq!(stats.unexpected, stats.requests, "{stats:?}");
        assert!(stats.problems().unwrap().contains("non-2xx"), "{stats:?}");
        std::fs::remove_dir_all(directory).unwrap();
    }
}
