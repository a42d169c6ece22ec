//! Servers under test: started in the background, watched through `/proc`,
//! and always stopped.
//!
//! A `Server` is a child process whose stdout and stderr go to files in the
//! bench's scratch directory, so a start-up line can be waited for (the
//! Latchkey summary's `issuer:` line, the node script's JSON line) and the
//! logs shown when something fails. Its command is echoed like every other
//! command xtask runs; arguments that carry a secret (a database URL with a
//! password) are echoed masked.
//!
//! Measurements come from `/proc`: the peak resident set size (`VmHWM` in
//! `/proc/<pid>/status`), and the CPU time the process used (`utime` +
//! `stime` in `/proc/<pid>/stat`, all threads together), compared with the
//! whole machine's ticks in `/proc/stat` so that no clock-tick constant is
//! needed: both count in the same USER_HZ units.
//!
//! Invariant: a started server never outlives the bench. `stop` sends
//! SIGTERM (both servers then close their listeners and exit) and waits;
//! `Drop` does the same on every error path, and falls back to SIGKILL
//! when the process does not exit in time. Only this process's own child is
//! ever signalled, by its process id.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::shell::{Cmd, Shell};

/// How long a stopping server may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a waiting loop looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How many lines of a log file a failure shows.
const LOG_TAIL_LINES: usize = 20;

/// One argument of a server's command line.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    /// Run and echoed as is.
    Plain(String),
    /// Run as `value`, echoed as `shown`.
    Masked { value: String, shown: String },
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Plain(value.to_owned())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Plain(value)
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub(super) struct Launch {
    /// A name for messages and log files (`latchkey-sqlite`).
    pub(super) name: String,
    pub(super) program: PathBuf,
    pub(super) arguments: Vec<Arg>,
    /// Variables set for this process on top of xtask's own environment.
    pub(super) environment: Vec<(String, String)>,
}

impl Launch {
    /// The command as echoed.
    fn display(&self) -> Cmd {
        let mut command = Cmd::new(&self.program);
        for (name, value) in &self.environment {
            command = command.env(name, value);
        }
        for argument in &self.arguments {
            command = match argument {
                Arg::Plain(value) => command.arg(value),
                Arg::Masked { value, shown } => command.masked_arg(value, shown.clone()),
            };
        }
        command
    }
}

/// A running server.
#[derive(Debug)]
pub(super) struct Server {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    stopped: bool,
}

impl Server {
    /// Echoes and starts `launch` in the workspace root, with its output in
    /// `<log_directory>/<name>.stdout` and `.stderr`.
    pub(super) fn start(
        shell: &Shell,
        launch: &Launch,
        log_directory: &Path,
    ) -> anyhow::Result<Self> {
        let display = launch.display();
        let _ = writeln!(std::io::stderr(), "$ {display} &");
        let stdout = log_directory.join(format!("{}.stdout", launch.name));
        let stderr = log_directory.join(format!("{}.stderr", launch.name));
        let mut command = Command::new(&launch.program);
        command
            .current_dir(shell.root())
            .stdin(Stdio::null())
            .stdout(
                File::create(&stdout).with_context(|| format!("creating {}", stdout.display()))?,
            )
            .stderr(
                File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?,
            );
        for argument in &launch.arguments {
            match argument {
                Arg::Plain(value) | Arg::Masked { value, .. } => command.arg(value),
            };
        }
        for (name, value) in &launch.environment {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("could not start `{display}`"))?;
        Ok(Self {
            name: launch.name.clone(),
            child,
            stdout,
            stderr,
            stopped: false,
        })
    }

    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at start.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the server's stdout has a line for which `pick` returns
    /// something, and returns that; fails when the server exits first or
    /// `timeout` passes.
    pub(super) fn wait_for_stdout<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let output = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            // Only whole lines: the last one may still be being written.
            let complete = output
                .rfind('\n')
                .map_or("", |end| output.get(..end).unwrap_or(""));
            if let Some(found) = complete.lines().find_map(&mut pick) {
                return Ok(found);
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "{} printed no {what} within {} s{}",
                    self.name,
                    timeout.as_secs(),
                    self.logs()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Fails, with the logs, when the server has exited.
    pub(super) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.stopped = true;
            bail!("{} exited ({status}){}", self.name, self.logs());
        }
        Ok(())
    }

    /// The last lines of the server's stdout and stderr, for error messages.
    /// Both servers keep secrets out of their logs (Latchkey by design, the
    /// node script by printing its credentials on stdout only when ready,
    /// which is the one line never shown here: see `tail`).
    pub(super) fn logs(&self) -> String {
        format!(
            "\n--- {} stdout (last lines) ---\n{}--- {} stderr (last lines) ---\n{}",
            self.name,
            tail(&self.stdout),
            self.name,
            tail(&self.stderr)
        )
    }

    /// The peak resident set size so far, in KiB.
    pub(super) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        parse_vm_hwm_kib(&status).with_context(|| format!("no VmHWM line in {path}"))
    }

    /// CPU ticks (user + system, all threads) used so far.
    pub(super) fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        parse_process_ticks(&stat).with_context(|| format!("cannot parse {path}"))
    }

    /// Sends SIGTERM and waits for the process to exit; a non-zero exit is
    /// an error, since both servers exit 0 on SIGTERM.
    pub(super) fn stop(mut self, shell: &Shell) -> anyhow::Result<()> {
        let status = self.terminate(shell)?;
        if !status.success() {
            bail!(
                "{} exited with {status} when stopped{}",
                self.name,
                self.logs()
            );
        }
        Ok(())
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    fn terminate(&mut self, shell: &Shell) -> anyhow::Result<std::process::ExitStatus> {
        self.stopped = true;
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        shell.run(&Cmd::new("kill").args(["-TERM", &self.pid().to_string()]))?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        bail!(
            "{} did not stop within {} s of SIGTERM and was killed ({status})",
            self.name,
            STOP_TIMEOUT.as_secs()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // An error path: stop the server whatever happens, and never panic
        // here (this may run during unwinding).
        let shell = Shell::at(std::env::temp_dir());
        if self.terminate(&shell).is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `LOG_TAIL_LINES` lines of a file, each ending in a newline.
/// Lines that look like the node script's credential line (a JSON object
/// with `client_secret`) are replaced, so a failure never prints a secret.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    let mut shown = String::new();
    for line in lines.iter().skip(start) {
        if line.contains("client_secret") {
            shown.push_str("(a line with credentials, not shown)\n");
        } else {
            shown.push_str(line);
            shown.push('\n');
        }
    }
    shown
}

/// The `VmHWM` value of a `/proc/<pid>/status` text, in KiB.
pub(super) fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// `utime + stime` of a `/proc/<pid>/stat` text. The command name (field 2)
/// is in parentheses and may hold spaces or parentheses itself, so fields
/// are counted after the last `)`: there `state` is field 3, and `utime`
/// and `stime` are fields 14 and 15 (proc(5)).
pub(super) fn parse_process_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(user + system)
}

/// The whole machine's CPU time: ticks spent busy and ticks in total, summed
/// over every CPU, and the number of CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MachineTicks {
    pub(super) busy: u64,
    pub(super) total: u64,
    pub(super) cpus: u64,
}

impl MachineTicks {
    /// Reads `/proc/stat`.
    pub(super) fn read() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
        parse_machine_ticks(&stat).context("cannot parse /proc/stat")
    }
}

/// Parses `/proc/stat`: the aggregate `cpu` line (user nice system idle
/// iowait irq softirq steal ...; idle and iowait are the idle time) and the
/// count of `cpuN` lines.
pub(super) fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let aggregate = stat.lines().find_map(|line| line.strip_prefix("cpu "))?;
    let values: Vec<u64> = aggregate
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // guest and guest_nice (fields 9 and 10) are already inside user and nice.
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    let cpus = stat
        .lines()
        .filter(|line| {
            // `cpu0`, `cpu1`, ...; the aggregate line's first word is `cpu`.
            line.split_whitespace()
                .next()
                .and_then(|word| word.strip_prefix("cpu"))
                .is_some_and(|number| number.parse::<u32>().is_ok())
        })
        .count() as u64;
    (cpus > 0).then_some(MachineTicks {
        busy: total.saturating_sub(idle),
        total,
        cpus,
    })
}

/// CPU use over an interval: how many cores the process kept busy, and how
/// busy the whole machine was (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CpuUse {
    pub(super) process_cores: f64,
    pub(super) machine_busy: f64,
}

impl CpuUse {
    /// The use between two samples of the process's and the machine's ticks.
    pub(super) fn between(
        process_before: u64,
        process_after: u64,
        machine_before: MachineTicks,
        machine_after: MachineTicks,
    ) -> Self {
        let total = machine_after.total.saturating_sub(machine_before.total) as f64;
        if total <= 0.0 {
            return Self {
                process_cores: 0.0,
                machine_busy: 0.0,
            };
        }
        // `total` counts every CPU, so one core fully used is total / cpus.
        let per_core = total / machine_after.cpus as f64;
        Self {
            process_cores: process_after.saturating_sub(process_before) as f64 / per_core,
            machine_busy: machine_after.busy.saturating_sub(machine_before.busy) as f64 / total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_rss() {
        let status = "Name:\tlatchkey\nVmPeak:\t  900000 kB\nVmHWM:\t   17936 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(17936));
        assert_eq!(parse_vm_hwm_kib("Name:\tx\n"), None);
    }

    #[test]
    fn reads_process_ticks_after_an_awkward_name() {
        // Field 2 with a space and a parenthesis; utime 1221 and stime 125.
        let stat = "4242 (node (a) b) S 1 4242 4242 0 -1 4194560 9 0 0 0 1221 125 0 0 20 0 11 0";
        assert_eq!(parse_process_ticks(stat), Some(1346));
        assert_eq!(parse_process_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn reads_machine_ticks() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n\
                    cpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\nctxt 9\n";
        assert_eq!(
            parse_machine_ticks(stat),
            Some(MachineTicks {
                busy: 150,
                total: 1000,
                cpus: 2
            })
        );
        assert_eq!(parse_machine_ticks("intr 1\n"), None);
    }

    #[test]
    fn cpu_use_is_in_cores_and_a_machine_fraction() {
        let before = MachineTicks {
            busy: 0,
            total: 0,
            cpus: 2,
        };
        // 10 s on 2 CPUs at 100 ticks/s is 2000 ticks; the process used 1300
        // of them (1.3 cores) and the machine 1800 (90 %).
        let after = MachineTicks {
            busy: 1800,
            total: 2000,
            cpus: 2,
        };
        let used = CpuUse::between(100, 1400, before, after);
        assert!((used.process_cores - 1.3).abs() < 1e-9, "{used:?}");
        assert!((used.machine_busy - 0.9).abs() < 1e-9, "{used:?}");
        assert_eq!(CpuUse::between(0, 5, after, after).process_cores, 0.0);
    }

    #[test]
    fn the_live_proc_files_parse() {
        let machine = MachineTicks::read().unwrap();
        assert!(
            machine.cpus >= 1 && machine.total >= machine.busy,
            "{machine:?}"
        );
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_vm_hwm_kib(&own).unwrap() > 0);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_process_ticks(&own).is_some());
    }

    fn scratch_directory(label: &str) -> PathBuf {
        let directory = std::env::temp_dir().join(format!(
            "latchkey-xtask-process-{label}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&directory).unwrap();
        directory
    }

    fn shell_launch(name: &str, script: &str) -> Launch {
        Launch {
            name: name.to_owned(),
            program: PathBuf::from("sh"),
            arguments: vec![
                Arg::from("-c"),
                Arg::from(script),
                Arg::Masked {
                    value: "hidden".to_owned(),
                    shown: "***".to_owned(),
                },
            ],
            environment: vec![("BENCH_PROBE".to_owned(), "probe".to_owned())],
        }
    }

    #[test]
    fn a_server_is_started_waited_for_measured_and_stopped() {
        let directory = scratch_directory("stop");
        let shell = Shell::at(std::env::temp_dir());
        // `$0` is the masked argument; the trap makes SIGTERM a clean exit,
        // as it is for both real servers.
        let launch = shell_launch(
            "probe",
            "trap 'exit 0' TERM; echo starting; echo \"ready $BENCH_PROBE $0\"; \
             while :; do sleep 0.05; done",
        );
        assert_eq!(
            launch.display().to_string(),
            "BENCH_PROBE=probe sh -c 'trap '\\''exit 0'\\'' TERM; echo starting; echo \"ready \
             $BENCH_PROBE $0\"; while :; do sleep 0.05; done' '***'"
        );
        let mut server = Server::start(&shell, &launch, &directory).unwrap();
        let ready = server
            .wait_for_stdout(Duration::from_secs(10), "ready line", |line| {
                line.strip_prefix("ready ").map(str::to_owned)
            })
            .unwrap();
        assert_eq!(ready, "probe hidden");
        assert!(server.peak_rss_kib().unwrap() > 0);
        server.cpu_ticks().unwrap();
        let pid = server.pid();
        server.stop(&shell).unwrap();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[test]
    fn a_server_that_exits_early_fails_the_wait_with_its_logs() {
        let directory = scratch_directory("early");
        let shell = Shell::at(std::env::temp_dir());
        let launch = shell_launch("early", "echo 'cannot bind' >&2; exit 3");
        let mut server = Server::start(&shell, &launch, &directory).unwrap();
        let error = server
            .wait_for_stdout(Duration::from_secs(10), "ready line", |_| None::<()>)
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("early exited"), "{message}");
        assert!(message.contains("cannot bind"), "{message}");
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[test]
    fn dropping_a_server_stops_it() {
        let directory = scratch_directory("drop");
        let shell = Shell::at(std::env::temp_dir());
        // The error path: a server dropped without `stop` is still signalled
        // and reaped, so no process outlives the bench.
        let launch = shell_launch(
            "dropped",
            "trap 'exit 0' TERM; while :; do sleep 0.05; done",
        );
        let server = Server::start(&shell, &launch, &directory).unwrap();
        let pid = server.pid();
        drop(server);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        std::fs::remove_dir_all(directory).unwrap();
    }

    #[test]
    fn log_tails_hide_credential_lines() {
        let directory = scratch_directory("tail");
        let path = directory.join("out");
        let mut text = String::new();
        for number in 0..30 {
            text.push_str(&format!("line {number}\n"));
        }
        text.push_str("{\"client_id\":\"x\",\"client_secret\":\"s3cret\"}\n");
        std::fs::write(&path, text).unwrap();
        let shown = tail(&path);
        assert_eq!(shown.lines().count(), LOG_TAIL_LINES);
        assert!(shown.starts_with("line 11\n"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        std::fs::remove_dir_all(directory).unwrap();
    }
}
