//! `cargo xtask bench`: the store benchmark next to a pgbench baseline, and
//! the server benchmark next to node-oidc-provider.
//!
//! `bench store` runs the `store` bench of latchkey-store-diesel (SQLite and
//! Postgres, 16 concurrent tasks) and then pgbench's `simple-update` script
//! with the same concurrency against the same Postgres server, and prints both
//! side by side: pgbench shows what the server itself sustains on this
//! machine, so the ratio says how much of it the store uses.
//!
//! The contract with the bench program is its stdout: one line per
//! measurement, `BENCH <group> backend=<name> op=<name> ops_per_sec=<float>`
//! (other lines are passed through, extra `key=value` fields are ignored). The
//! bench reads `DATABASE_URL` and may read `LATCHKEY_BENCH_SECONDS`, which
//! carries `--seconds`.
//!
//! pgbench runs in a scratch database, `latchkey_pgbench_<pid>`, which is
//! dropped afterwards, also when a step fails (`ScratchDatabase`'s `Drop`).
//!
//! `bench server` (the `server` submodule) measures the release binary over
//! HTTP with wrk, next to node-oidc-provider; its helpers are the `wrk`,
//! `http`, `process` and `report` submodules, and it reuses
//! `ScratchDatabase`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::postgres::{self, DATABASE_URL};
use crate::shell::{Cmd, Shell, find_postgres_program};

mod http;
mod process;
mod report;
mod server;
mod wrk;

/// The variable that passes `--seconds` to the store bench.
const BENCH_SECONDS: &str = "LATCHKEY_BENCH_SECONDS";

/// Keeps the server's NOTICEs (`table ... does not exist, skipping`) out of
/// the psql and pgbench output.
const QUIET_SERVER: &str = "-c client_min_messages=warning";

/// pgbench clients and threads: the store bench's 16 tasks on 2 cores.
const PGBENCH_CLIENTS: &str = "16";
const PGBENCH_THREADS: &str = "2";

/// pgbench's scale factor: 10 means 1,000,000 accounts rows.
const PGBENCH_SCALE: u32 = 10;

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The store bench, then pgbench, then the comparison.
    Store,
    /// The pgbench baseline alone.
    Pgbench,
    /// The HTTP server benchmark next to node-oidc-provider.
    Server,
}

/// The parsed command line of `cargo xtask bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) target: Target,
    /// How long each measured run lasts, in seconds: by default 10 for the
    /// store and pgbench, 15 for the server bench.
    pub(crate) seconds: u32,
}

impl Options {
    /// Parses `<store|pgbench|server> [--seconds N]`.
    pub(crate) fn parse(arguments: &[String]) -> anyhow::Result<Self> {
        const USAGE: &str = "usage: cargo xtask bench <store|pgbench|server> [--seconds N]";
        let (target, rest) = arguments.split_first().context(USAGE)?;
        let target = match target.as_str() {
            "store" => Target::Store,
            "pgbench" => Target::Pgbench,
            "server" => Target::Server,
            other => bail!("unknown benchmark `{other}`; {USAGE}"),
        };
        let mut seconds = match target {
            Target::Store | Target::Pgbench => 10,
            Target::Server => 15,
        };
        let mut remaining = rest.iter();
        while let Some(argument) = remaining.next() {
            match argument.as_str() {
                "--seconds" => {
                    let value = remaining.next().context("--seconds needs a value")?;
                    seconds = value
                        .parse()
                        .ok()
                        .filter(|seconds| *seconds > 0)
                        .with_context(|| {
                            format!("--seconds takes a positive whole number, got `{value}`")
                        })?;
                }
                other => bail!("unexpected argument `{other}`; {USAGE}"),
            }
        }
        Ok(Self { target, seconds })
    }
}

/// Runs the chosen benchmark.
pub(crate) fn run(shell: &mut Shell, options: &Options) -> anyhow::Result<()> {
    match options.target {
        Target::Server => server::run(shell, options.seconds),
        Target::Pgbench => {
            postgres::discover_and_export(shell)?;
            let tps = pgbench(shell, options.seconds, PGBENCH_SCALE).context("pgbench")?;
            println!("\npgbench simple-update, {PGBENCH_CLIENTS} clients: {tps:.1} TPS");
            Ok(())
        }
        Target::Store => {
            postgres::discover_and_export(shell)?;
            let results = store_bench(shell, options.seconds).context("the store bench")?;
            let tps = pgbench(shell, options.seconds, PGBENCH_SCALE).context("pgbench")?;
            print!("{}", summary(&results, tps, options.seconds));
            Ok(())
        }
    }
}

/// One measurement printed by the store bench.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measurement {
    pub(crate) backend: String,
    pub(crate) operation: String,
    pub(crate) ops_per_sec: f64,
}

/// Parses one stdout line of the bench: `Ok(None)` for lines that are not
/// `BENCH` lines, an error for `BENCH` lines that break the format.
pub(crate) fn parse_bench_line(line: &str) -> anyhow::Result<Option<Measurement>> {
    let Some(rest) = line.strip_prefix("BENCH ") else {
        return Ok(None);
    };
    let mut words = rest.split_whitespace();
    words
        .next()
        .filter(|group| !group.contains('='))
        .with_context(|| format!("BENCH line without a group name: {line:?}"))?;
    let (mut backend, mut operation, mut ops_per_sec) = (None, None, None);
    for word in words {
        let (key, value) = word
            .split_once('=')
            .with_context(|| format!("BENCH field is not key=value: {word:?} in {line:?}"))?;
        match key {
            "backend" => backend = Some(value.to_owned()),
            "op" => operation = Some(value.to_owned()),
            "ops_per_sec" => {
                let parsed: f64 = value
                    .parse()
                    .with_context(|| format!("ops_per_sec is not a number in {line:?}"))?;
                ops_per_sec = Some(parsed);
            }
            _ => {}
        }
    }
    match (backend, operation, ops_per_sec) {
        (Some(backend), Some(operation), Some(ops_per_sec)) => Ok(Some(Measurement {
            backend,
            operation,
            ops_per_sec,
        })),
        _ => bail!("BENCH line lacks backend=, op= or ops_per_sec=: {line:?}"),
    }
}

/// Runs the store bench and returns its measurements.
fn store_bench(shell: &Shell, seconds: u32) -> anyhow::Result<Vec<Measurement>> {
    // The bench target needs the crate's `testing`, `postgres` and `sqlite`
    // features; `--all-features` keeps working if they are renamed.
    let lines = shell.tee(
        &shell
            .cargo()
            .env(BENCH_SECONDS, &seconds.to_string())
            .args([
                "bench",
                "--package",
                "latchkey-store-diesel",
                "--bench",
                "store",
                "--all-features",
            ]),
    )?;
    let mut measurements = Vec::new();
    for line in &lines {
        if let Some(measurement) = parse_bench_line(line)? {
            measurements.push(measurement);
        }
    }
    if measurements.is_empty() {
        bail!(
            "the store bench printed no measurements; expected lines like \
             `BENCH store backend=postgres op=consume_code ops_per_sec=1234.5`"
        );
    }
    Ok(measurements)
}

/// Reads pgbench's `tps = 1234.5 (without initial connection time)` line.
pub(crate) fn parse_pgbench_tps(lines: &[String]) -> Option<f64> {
    lines
        .iter()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// A database created for one run and dropped when this value is dropped,
/// whether the run succeeded or not.
struct ScratchDatabase<'shell> {
    shell: &'shell Shell,
    psql: PathBuf,
    /// The discovered URL, whose database is used to create and drop this one.
    admin_url: String,
    name: String,
}

impl<'shell> ScratchDatabase<'shell> {
    fn create(shell: &'shell Shell, admin_url: &str, name: String) -> anyhow::Result<Self> {
        let psql = find_postgres_program("psql").context("psql is not installed")?;
        let database = Self {
            shell,
            psql,
            admin_url: admin_url.to_owned(),
            name,
        };
        // A crashed run with the same process id may have left it behind.
        database.sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            database.name
        ))?;
        database.sql(&format!("CREATE DATABASE {}", database.name))?;
        Ok(database)
    }

    /// Runs one SQL statement on the admin database.
    fn sql(&self, statement: &str) -> anyhow::Result<()> {
        self.shell.run(
            &Cmd::new(&self.psql)
                .env("PGOPTIONS", QUIET_SERVER)
                .args([
                    "--no-psqlrc",
                    "--quiet",
                    "--set",
                    "ON_ERROR_STOP=1",
                    "--command",
                    statement,
                ])
                .masked_arg(&self.admin_url, postgres::redact_password(&self.admin_url)),
        )
    }

    /// The URL of the scratch database.
    fn url(&self) -> anyhow::Result<String> {
        postgres::with_database(&self.admin_url, &self.name)
            .with_context(|| format!("cannot build a URL for database {}", self.name))
    }
}

impl Drop for ScratchDatabase<'_> {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = self.sql(&statement) {
            // Never panic here (a closed stderr would make `eprintln!` do
            // so): this runs during unwinding too.
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not drop scratch database {}: {error:#}",
                self.name
            );
        }
    }
}

/// Runs pgbench in a scratch database initialised at `scale` and returns its
/// TPS over `seconds`.
fn pgbench(shell: &Shell, seconds: u32, scale: u32) -> anyhow::Result<f64> {
    let pgbench = find_postgres_program("pgbench")
        .context("pgbench is not installed (looked in PATH and /usr/lib/postgresql/*/bin)")?;
    let admin_url = shell
        .exported(DATABASE_URL)
        .context("Postgres discovery exported no DATABASE_URL")?
        .to_owned();
    let database = ScratchDatabase::create(
        shell,
        &admin_url,
        format!("latchkey_pgbench_{}", std::process::id()),
    )?;
    let url = database.url()?;
    shell.run(
        &Cmd::new(&pgbench)
            .env("PGOPTIONS", QUIET_SERVER)
            .args(["--initialize", "--scale", &scale.to_string(), "--quiet"])
            .masked_arg(&url, postgres::redact_password(&url)),
    )?;
    let lines = shell.tee(
        &Cmd::new(&pgbench)
            .args([
                "--builtin",
                "simple-update",
                "--client",
                PGBENCH_CLIENTS,
                "--jobs",
                PGBENCH_THREADS,
                "--time",
                &seconds.to_string(),
                "--no-vacuum",
            ])
            .masked_arg(&url, postgres::redact_password(&url)),
    )?;
    parse_pgbench_tps(&lines).context("pgbench printed no `tps = ...` line")
}

/// The comparison table. The ratio is shown for Postgres rows only: pgbench
/// measures the Postgres server, so it says nothing about SQLite.
fn summary(measurements: &[Measurement], pgbench_tps: f64, seconds: u32) -> String {
    let mut table = format!(
        "\nstore bench (16 concurrent tasks) vs pgbench simple-update \
         ({PGBENCH_CLIENTS} clients, {PGBENCH_THREADS} threads), {seconds} s each\n\
         {:<10} {:<24} {:>14} {:>14} {:>8}\n",
        "backend", "operation", "store ops/s", "pgbench TPS", "ratio"
    );
    for measurement in measurements {
        let (tps, ratio) = if measurement.backend == "postgres" && pgbench_tps > 0.0 {
            (
                format!("{pgbench_tps:.1}"),
                format!("{:.2}", measurement.ops_per_sec / pgbench_tps),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        table.push_str(&format!(
            "{:<10} {:<24} {:>14.1} {:>14} {:>8}\n",
            measurement.backend, measurement.operation, measurement.ops_per_sec, tps, ratio
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchWorkspace;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_targets_and_seconds() {
        assert_eq!(
            Options::parse(&words("store")).unwrap(),
            Options {
                target: Target::Store,
                seconds: 10
            }
        );
        assert_eq!(
            Options::parse(&words("pgbench --seconds 3")).unwrap(),
            Options {
                target: Target::Pgbench,
                seconds: 3
            }
        );
        assert_eq!(
            Options::parse(&words("server")).unwrap(),
            Options {
                target: Target::Server,
                seconds: 15
            }
        );
        assert_eq!(
            Options::parse(&words("server --seconds 2"))
                .unwrap()
                .seconds,
            2
        );
        for bad in [
            "",
            "disk",
            "store --seconds",
            "store --seconds 0",
            "store --seconds x",
            "store -v",
        ] {
            assert!(Options::parse(&words(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_bench_lines() {
        assert_eq!(
            parse_bench_line("BENCH store backend=postgres op=consume_code ops_per_sec=1234.5")
                .unwrap(),
            Some(Measurement {
                backend: "postgres".to_owned(),
                operation: "consume_code".to_owned(),
                ops_per_sec: 1234.5,
            })
        );
        assert_eq!(
            parse_bench_line("BENCH store tasks=16 backend=sqlite op=issue ops_per_sec=7")
                .unwrap()
                .map(|measurement| measurement.ops_per_sec),
            Some(7.0)
        );
        assert_eq!(parse_bench_line("sqlite: warming up").unwrap(), None);
        for bad in [
            "BENCH backend=postgres op=x ops_per_sec=1",
            "BENCH store backend=postgres op=x",
            "BENCH store backend=postgres op=x ops_per_sec=fast",
            "BENCH store backend postgres",
        ] {
            assert!(parse_bench_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn finds_the_tps_line() {
        let output = words("unused").into_iter().chain([
            "number of transactions actually processed: 51234".to_owned(),
            "latency average = 3.119 ms".to_owned(),
            "initial connection time = 12.345 ms".to_owned(),
            "tps = 5129.874512 (without initial connection time)".to_owned(),
        ]);
        let output: Vec<String> = output.collect();
        assert_eq!(parse_pgbench_tps(&output), Some(5129.874512));
        assert_eq!(parse_pgbench_tps(&words("no tps here")), None);
    }

    #[test]
    fn the_summary_compares_postgres_rows_only() {
        let measurements = [
            Measurement {
                backend: "postgres".to_owned(),
                operation: "consume_code".to_owned(),
                ops_per_sec: 1000.0,
            },
            Measurement {
                backend: "sqlite".to_owned(),
                operation: "consume_code".to_owned(),
                ops_per_sec: 3000.0,
            },
        ];
        let table = summary(&measurements, 4000.0, 10);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(3)
            .map(|row| row.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["postgres", "consume_code", "1000.0", "4000.0", "0.25"],
                ["sqlite", "consume_code", "3000.0", "-", "-"],
            ]
        );
    }

    /// Runs the real `cargo bench` invocation on a scratch stand-in for
    /// latchkey-store-diesel whose bench target, like the real one, needs a
    /// non-default feature, and checks what reaches the bench and comes back.
    #[test]
    fn the_store_bench_is_built_run_and_parsed() {
        let scratch = ScratchWorkspace::new("bench");
        scratch.workspace(&["store-diesel"]);
        scratch.package(
            "store-diesel",
            "latchkey-store-diesel",
            "[features]\ntesting = []\n\n\
             [[bench]]\nname = \"store\"\nharness = false\nrequired-features = [\"testing\"]",
        );
        scratch.write(
            "store-diesel/benches/store.rs",
            r#"//! A stand-in that echoes its inputs as measurements.
fn main() {
    let seconds = std::env::var("LATCHKEY_BENCH_SECONDS").unwrap_or_default();
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    println!("running for {seconds} s");
    println!("BENCH store backend=sqlite op=consume_code ops_per_sec={seconds}.5");
    println!("BENCH store backend=postgres op=consume_code ops_per_sec={}", url.len());
}
"#,
        );
        let mut shell = Shell::at(scratch.root().to_path_buf());
        // Keep the build out of any shared target directory.
        let target = scratch.root().join("target");
        shell.export("CARGO_TARGET_DIR", &target.to_string_lossy());
        shell.export(DATABASE_URL, "postgres://x@h/db");

        let measurements = store_bench(&shell, 3).unwrap();

        assert_eq!(
            measurements,
            [
                Measurement {
                    backend: "sqlite".to_owned(),
                    operation: "consume_code".to_owned(),
                    ops_per_sec: 3.5,
                },
                Measurement {
                    backend: "postgres".to_owned(),
                    operation: "consume_code".to_owned(),
                    ops_per_sec: "postgres://x@h/db".len() as f64,
                },
            ]
        );
    }

    #[test]
    fn pgbench_runs_against_the_local_server_and_cleans_up() {
        // A real, short pgbench run at scale 1 (the benchmark uses 10),
        // proving the scratch database is created, measured and dropped.
        let mut shell = Shell::at(std::env::temp_dir());
        postgres::discover_and_export(&mut shell).unwrap();
        let tps = pgbench(&shell, 1, 1).unwrap();
        assert!(tps > 0.0, "{tps}");
        let admin_url = shell.exported(DATABASE_URL).unwrap().to_owned();
        let remaining = shell
            .read(&Cmd::new(find_postgres_program("psql").unwrap()).args([
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--command",
                &format!(
                    "SELECT count(*) FROM pg_database WHERE datname = 'latchkey_pgbench_{}'",
                    std::process::id()
                ),
                &admin_url,
            ]))
            .unwrap();
        assert_eq!(remaining.trim(), "0");
    }
}
