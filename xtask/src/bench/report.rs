//! The server bench's report: the rows it measured, the comparison table
//! with the ratio to node-oidc-provider and a verdict against the 3× goal
//! of issue 5, and the machine-readable `BENCH` lines.
//!
//! Invariant: the report only formats; it never decides whether the bench
//! failed. A ratio under the goal is printed as `BELOW`, since a bench
//! reports performance; wrong answers fail the bench in `server::run`.

use super::process::CpuUse;
use super::server::WARM_UP_SECONDS;
use super::wrk::{CONNECTIONS, THREADS, WrkStats};

/// The goal of issue 5: Latchkey's `client_credentials` rate over
/// node-oidc-provider's.
pub(super) const GOAL_RATIO: f64 = 3.0;

/// Latchkey's implementation name in the table.
pub(super) const LATCHKEY: &str = "latchkey";

/// node-oidc-provider's implementation name in the table.
pub(super) const NODE_OIDC_PROVIDER: &str = "node-oidc-provider";

/// What one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scenario {
    /// `POST /token` with `grant_type=client_credentials`.
    ClientCredentials,
    /// `POST /introspect` of one valid access token.
    Introspection,
}

impl Scenario {
    /// The name in the table and the `BENCH` lines.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Introspection => "introspection",
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    /// `latchkey` or `node-oidc-provider`.
    pub(super) implementation: &'static str,
    /// `sqlite`, `postgres`, or `memory` for node-oidc-provider.
    pub(super) backend: &'static str,
    pub(super) scenario: Scenario,
    pub(super) stats: WrkStats,
    pub(super) cpu: CpuUse,
    /// The server's peak RSS up to the end of this run, in KiB.
    pub(super) peak_rss_kib: u64,
}

/// The comparison table, the ratio lines and the verdicts.
pub(super) fn summary(rows: &[Row], seconds: u32) -> String {
    let mut table = format!(
        "\nserver bench: wrk with {CONNECTIONS} connections on {THREADS} threads, {seconds} s \
         per run after a {WARM_UP_SECONDS} s warm-up;\nserver and wrk share this machine's CPUs \
         (\"server CPU\" is in cores, \"machine\" is how busy all CPUs were)\n\
         {:<19} {:<9} {:<19} {:>10} {:>8} {:>8} {:>8} {:>10} {:>9} {:>10} {:>8} {:>12}\n",
        "server",
        "backend",
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "unexpected",
        "sock err",
        "server CPU",
        "machine",
        "peak RSS"
    );
    for row in rows {
        table.push_str(&format!(
            "{:<19} {:<9} {:<19} {:>10.1} {:>8.3} {:>8.3} {:>8} {:>10} {:>9} {:>10.2} {:>7.0}% {:>8.1} MiB\n",
            row.implementation,
            row.backend,
            row.scenario.name(),
            row.stats.requests_per_second(),
            row.stats.p50_us / 1000.0,
            row.stats.p99_us / 1000.0,
            row.stats.non_2xx,
            row.stats.unexpected,
            row.stats.socket_errors,
            row.cpu.process_cores,
            row.cpu.machine_busy * 100.0,
            row.peak_rss_kib as f64 / 1024.0,
        ));
    }
    let comparisons = comparisons(rows);
    if !comparisons.is_empty() {
        table.push_str(&format!(
            "\nclient_credentials, Latchkey req/s ÷ node-oidc-provider req/s (goal: at least \
             {GOAL_RATIO}×):\n"
        ));
    }
    for comparison in &comparisons {
        table.push_str(&format!(
            "  {:<9} {:>10.1} / {:.1} = {:.2}×  {}\n",
            comparison.backend,
            comparison.latchkey,
            comparison.node,
            comparison.ratio(),
            comparison.verdict()
        ));
    }
    table
}

/// Latchkey's `client_credentials` rate on one backend against
/// node-oidc-provider's.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Comparison {
    pub(super) backend: &'static str,
    pub(super) latchkey: f64,
    pub(super) node: f64,
}

impl Comparison {
    pub(super) fn ratio(&self) -> f64 {
        if self.node > 0.0 {
            self.latchkey / self.node
        } else {
            0.0
        }
    }

    /// `PASS` at or above the goal, `BELOW` under it.
    pub(super) fn verdict(&self) -> &'static str {
        if self.ratio() >= GOAL_RATIO {
            "PASS"
        } else {
            "BELOW"
        }
    }
}

/// One comparison per Latchkey backend, when node-oidc-provider was measured.
pub(super) fn comparisons(rows: &[Row]) -> Vec<Comparison> {
    let issuance = |row: &&Row| row.scenario == Scenario::ClientCredentials;
    let Some(node) = rows
        .iter()
        .filter(issuance)
        .find(|row| row.implementation == NODE_OIDC_PROVIDER)
    else {
        return Vec::new();
    };
    rows.iter()
        .filter(issuance)
        .filter(|row| row.implementation == LATCHKEY)
        .map(|row| Comparison {
            backend: row.backend,
            latchkey: row.stats.requests_per_second(),
            node: node.stats.requests_per_second(),
        })
        .collect()
}

/// The machine-readable lines: one per run, in the store bench's format
/// (`BENCH <group> backend= op= ops_per_sec=` and more fields), and one per
/// comparison.
pub(super) fn bench_lines(rows: &[Row], seconds: u32) -> Vec<String> {
    let mut lines: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "BENCH server impl={} backend={} op={} ops_per_sec={:.1} p50_ms={:.3} \
                 p99_ms={:.3} non_2xx={} unexpected={} socket_errors={} server_cpu_cores={:.2} \
                 machine_busy={:.2} peak_rss_mib={:.1} seconds={seconds} \
                 connections={CONNECTIONS}",
                row.implementation,
                row.backend,
                row.scenario.name(),
                row.stats.requests_per_second(),
                row.stats.p50_us / 1000.0,
                row.stats.p99_us / 1000.0,
                row.stats.non_2xx,
                row.stats.unexpected,
                row.stats.socket_errors,
                row.cpu.process_cores,
                row.cpu.machine_busy,
                row.peak_rss_kib as f64 / 1024.0,
            )
        })
        .collect();
    for comparison in comparisons(rows) {
        lines.push(format!(
            "BENCH server-ratio backend={} op=client_credentials latchkey_ops_per_sec={:.1} \
             node_ops_per_sec={:.1} ratio={:.2} goal={GOAL_RATIO} verdict={}",
            comparison.backend,
            comparison.latchkey,
            comparison.node,
            comparison.ratio(),
            comparison.verdict()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        implementation: &'static str,
        backend: &'static str,
        scenario: Scenario,
        requests: u64,
    ) -> Row {
        Row {
            implementation,
            backend,
            scenario,
            stats: WrkStats {
                requests,
                duration_us: 10_000_000,
                p50_us: 844.0,
                p99_us: 1460.0,
                non_2xx: 0,
                unexpected: 0,
                socket_errors: 0,
            },
            cpu: CpuUse {
                process_cores: 1.25,
                machine_busy: 0.98,
            },
            peak_rss_kib: 17_936,
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            row(LATCHKEY, "sqlite", Scenario::ClientCredentials, 400_000),
            row(LATCHKEY, "sqlite", Scenario::Introspection, 200_000),
            row(LATCHKEY, "postgres", Scenario::ClientCredentials, 250_000),
            row(
                NODE_OIDC_PROVIDER,
                "memory",
                Scenario::ClientCredentials,
                100_000,
            ),
        ]
    }

    #[test]
    fn comparisons_pair_each_backend_with_node() {
        assert_eq!(
            comparisons(&rows()),
            [
                Comparison {
                    backend: "sqlite",
                    latchkey: 40_000.0,
                    node: 10_000.0
                },
                Comparison {
                    backend: "postgres",
                    latchkey: 25_000.0,
                    node: 10_000.0
                },
            ]
        );
        let without_node = &rows()[..3];
        assert!(comparisons(without_node).is_empty());
    }

    #[test]
    fn verdicts_follow_the_goal() {
        let at = |latchkey: f64| Comparison {
            backend: "sqlite",
            latchkey,
            node: 1000.0,
        };
        assert_eq!(at(3000.0).verdict(), "PASS");
        assert_eq!(at(2999.0).verdict(), "BELOW");
        assert_eq!(
            Comparison {
                backend: "sqlite",
                latchkey: 1.0,
                node: 0.0
            }
            .verdict(),
            "BELOW"
        );
    }

    #[test]
    fn the_summary_has_one_row_per_run_and_the_verdicts() {
        let summary = summary(&rows(), 10);
        let lines: Vec<Vec<&str>> = summary
            .lines()
            .skip(4)
            .take(4)
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "latchkey",
                "sqlite",
                "client_credentials",
                "40000.0",
                "0.844",
                "1.460",
                "0",
                "0",
                "0",
                "1.25",
                "98%",
                "17.5",
                "MiB"
            ]
        );
        assert_eq!(
            lines[3][..4],
            [
                "node-oidc-provider",
                "memory",
                "client_credentials",
                "10000.0"
            ]
        );
        let verdicts: Vec<Vec<&str>> = summary
            .lines()
            .skip_while(|line| !line.starts_with("client_credentials, Latchkey"))
            .skip(1)
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            verdicts,
            [
                ["sqlite", "40000.0", "/", "10000.0", "=", "4.00×", "PASS"],
                ["postgres", "25000.0", "/", "10000.0", "=", "2.50×", "BELOW"],
            ]
        );
    }

    #[test]
    fn bench_lines_parse_like_the_store_bench_s() {
        let lines = bench_lines(&rows(), 10);
        assert_eq!(lines.len(), 6);
        let first = super::super::parse_bench_line(&lines[0]).unwrap().unwrap();
        assert_eq!(
            (
                first.backend.as_str(),
                first.operation.as_str(),
                first.ops_per_sec
            ),
            ("sqlite", "client_credentials", 40_000.0)
        );
        assert!(lines[0].contains(" impl=latchkey "), "{}", lines[0]);
        assert!(
            lines[0].ends_with(" peak_rss_mib=17.5 seconds=10 connections=32"),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[5],
            "BENCH server-ratio backend=postgres op=client_credentials \
             latchkey_ops_per_sec=25000.0 node_ops_per_sec=10000.0 ratio=2.50 goal=3 \
             verdict=BELOW"
        );
    }
}
