//! Diagnostic logging for every command: `-v` levels and `--log-format text|json`, through
//! `tracing`, on stderr.
//!
//! What a command says to its user (progress lines, warnings, the final error) is not a log and
//! stays exactly as it is in the default text format. With `--log-format json` stderr becomes a
//! stream of JSON objects, one per line, for pipelines that ship logs: then those user lines are
//! log events too (`info`, `warn`, `error`), so nothing else is mixed into the stream, and
//! progress bars are off. `-v` shows what the tool does (connections, steps, commands),
//! `-vv` each API request with its status and time (as `kubectl -v=6`), `-vvv` everything down
//! to the client library's own debug events. `K8S_UPGRADE_LOG` takes `tracing` filter
//! directives for anything finer. Credentials never reach a log: requests are logged by method,
//! path and status, never by header, and command runners log argv, never the environment.

use std::sync::OnceLock;

use clap::{Args, ValueEnum};

/// The logging flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// More diagnostics on stderr: -v what the tool does, -vv every API request, -vvv the client
    /// library's debug events too.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// How stderr is written: text for people, json for log pipelines (one object per line; the
    /// command's own messages become log events and progress bars are off).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        global = true,
        env = "K8S_UPGRADE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

static CHOSEN: OnceLock<(LogFormat, u8)> = OnceLock::new();

/// The format chosen at start-up (text when logging was never set up, as in library tests).
pub fn format() -> LogFormat {
    CHOSEN.get().map_or(LogFormat::Text, |c| c.0)
}

/// True when progress bars would be torn by log lines: any `-v`, or the json format.
pub fn logs_on_stderr() -> bool {
    CHOSEN.get().is_some_and(|c| c.0 == LogFormat::Json || c.1 > 0)
}

/// True when stderr carries JSON log lines: nothing may be printed there but log events.
pub fn json() -> bool {
    format() == LogFormat::Json
}

/// The filter directives for a `-v` count: our own events at the chosen level, other crates
/// quiet until `-vvv`.
pub fn directives(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn,kube=off,kube_client=off,hyper=off,hyper_util=off,rustls=off,tower=off",
        1 => "k8s_upgrade=info,warn,kube=off,kube_client=off,hyper=off,hyper_util=off,rustls=off,tower=off",
        2 => "k8s_upgrade=debug,kube=info,kube_client=info,warn,hyper=off,hyper_util=off,rustls=off,tower=off",
        _ => "k8s_upgrade=trace,kube=debug,kube_client=debug,kube_runtime=debug,info",
    }
}

/// Sets up the subscriber once for the process. `K8S_UPGRADE_LOG` (tracing filter directives)
/// overrides the `-v` level; a bad value is reported and the `-v` level kept.
pub fn init(args: &LogArgs) {
    if CHOSEN.set((args.log_format, args.verbose)).is_err() {
        return;
    }
    let mut warning = None;
    let filter = match std::env::var("K8S_UPGRADE_LOG") {
        Ok(value) if !value.trim().is_empty() => match tracing_subscriber::EnvFilter::try_new(&value) {
            Ok(f) => f,
            Err(e) => {
                warning = Some(format!("K8S_UPGRADE_LOG={value:?} is not a valid filter ({e}); using the -v level"));
                tracing_subscriber::EnvFilter::new(directives(args.verbose))
            }
        },
        _ => tracing_subscriber::EnvFilter::new(directives(args.verbose)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
        LogFormat::Text => builder.with_ansi(use_color()).try_init(),
    };
    if installed.is_ok()
        && let Some(w) = warning
    {
        warn(&w);
    }
}

fn use_color() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none()
}

/// A line for the user on stderr (a log event at `info` in the json format).
pub fn say(line: &str) {
    let line = &*super::printable::printable(line);
    if json() {
        tracing::info!(target: "k8s_upgrade", "{line}");
    } else {
        eprintln!("{line}");
    }
}

/// A warning for the user: `warning: …` on stderr (a `warn` event in the json format).
pub fn warn(line: &str) {
    let line = &super::printable::one_line(line);
    if json() {
        tracing::warn!(target: "k8s_upgrade", "{line}");
    } else {
        eprintln!("warning: {line}");
    }
}

/// The one-line error a command ends with: `error: …` (an `error` event in the json format).
pub fn error(line: &str) {
    let line = &super::printable::one_line(line);
    if json() {
        tracing::error!(target: "k8s_upgrade", "{line}");
    } else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "error: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_parses_as_a_filter() {
        for v in 0..=5 {
            tracing_subscriber::EnvFilter::try_new(directives(v)).unwrap();
        }
    }

    #[test]
    fn quiet_by_default_and_third_party_only_at_three() {
        assert!(directives(0).contains("kube_client=off"));
        assert!(directives(2).contains("k8s_upgrade=debug"));
        assert!(directives(3).contains("kube_client=debug"));
    }
}
