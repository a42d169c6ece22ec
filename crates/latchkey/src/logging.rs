//! The tracing subscriber: human-readable lines on a terminal, JSON lines
//! for machines, on stderr (stdout carries the start-up summary and
//! command output).
//!
//! The level comes from `LATCHKEY_LOG`, else `RUST_LOG`, else `info`
//! (the `EnvFilter` syntax: `debug`, `latchkey_service=debug,info`, …).
//! Nothing logged anywhere in Latchkey carries a token, code, secret or
//! password: requests are logged as method, route, status and latency.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `format` `None` means text on a
/// terminal and JSON otherwise.
pub(crate) fn init(format: Option<LogFormat>) {
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let filter = std::env::var("LATCHKEY_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (only possible in tests) is not an error
    // worth stopping for.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
