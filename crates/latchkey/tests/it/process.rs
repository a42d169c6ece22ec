//! Running the built binary: one-shot commands, and `serve` as a child
//! process whose issuer is read from its summary and which is stopped with
//! SIGTERM. Every process started here is stopped by its own id (killed if
//! a test fails before stopping it), never by name.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the server may take to start or to stop.
const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    // A clean environment for the settings the tests control.
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") {
            command.env_remove(name);
        }
    }
    command.env("LATCHKEY_LOG_FORMAT", "json");
    command
}

/// Runs `latchkey <args>` to completion.
pub(crate) fn latchkey(args: &[String]) -> Output {
    latchkey_with_env(args, &[])
}

/// Runs `latchkey <args>` with extra environment variables.
pub(crate) fn latchkey_with_env(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut command = binary();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Runs `latchkey <args>` with `input` on standard input.
pub(crate) fn latchkey_with_stdin(args: &[String], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = binary()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A running `latchkey serve`.
pub(crate) struct Server {
    child: Option<Child>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    /// The issuer printed by the server.
    pub(crate) issuer: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `latchkey serve --listen 127.0.0.1:0 <args>` and waits for
    /// its whole start-up summary (the server accepts connections by then).
    pub(crate) fn start(args: &[String]) -> Server {
        let mut child = binary()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines, issuer_line) = mpsc::channel::<String>();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let captured = Arc::clone(&stdout);
        std::thread::spawn(move || {
            // The summary ends with the `Next:` paragraph; the issuer is
            // handed over once the whole summary has been read.
            let mut issuer = None;
            for line in reader.lines().map_while(Result::ok) {
                captured.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(value) = line.trim().strip_prefix("issuer:") {
                    issuer = Some(value.trim().to_owned());
                }
                if line.starts_with("Next:")
                    && let Some(issuer) = issuer.take()
                {
                    let _ = lines.send(issuer);
                }
            }
        });
        let mut error_reader = child.stderr.take().unwrap();
        let captured = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0_u8; 4096];
            while let Ok(read) = error_reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                captured
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        let mut server = Server {
            child: Some(child),
            stderr_reader: Some(stderr_reader),
            issuer: String::new(),
            stdout,
            stderr,
        };
        match issuer_line.recv_timeout(DEADLINE) {
            Ok(issuer) => server.issuer = issuer,
            Err(_) => panic!(
                "the server printed no issuer line; stderr:\n{}",
                server.stderr.lock().unwrap()
            ),
        }
        server
    }

    /// Everything printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends SIGTERM, waits for the exit, asserts it was clean, and returns
    /// the log output.
    pub(crate) fn stop_and_expect_clean_exit(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let pid = child.id();
        let (exited, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exited.send(child.wait());
        });
        let status = match exit.recv_timeout(DEADLINE) {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("the server did not stop within {DEADLINE:?} of SIGTERM");
            }
        };
        // The reader ends at end of file, once the process has exited.
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().unwrap();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
        assert!(stderr.contains("SIGTERM"), "{stderr}");
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
