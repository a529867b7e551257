//! Running kubeconfig `exec` credential plugins (`users[].user.exec`) the way kubectl does, with
//! bounds kubectl lacks.
//!
//! This module owns the whole plugin round trip: checking the exec config (apiVersion,
//! interactiveMode), building the environment and `KUBERNETES_EXEC_INFO`, spawning the plugin in
//! its own process group, reading its output with hard limits, killing it (and everything it
//! started) on timeout, and parsing the `ExecCredential` it prints. It also owns [`scrub`], the
//! best-effort redaction applied to anything a plugin wrote to stderr before that text reaches an
//! error message. Nothing a plugin writes to stdout ever reaches an error message.

use std::fmt;
use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use kube::config::{ExecConfig, ExecInteractiveMode};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

const API_V1: &str = "client.authentication.k8s.io/v1";
const API_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
const API_V1ALPHA1: &str = "client.authentication.k8s.io/v1alpha1";

/// A credential is a few KiB at most; anything near this is a plugin gone wrong.
const MAX_STDOUT: usize = 1024 * 1024;
/// Only the end of stderr explains a failure; keeping more would let a chatty plugin eat memory.
const STDERR_TAIL: usize = 4 * 1024;
/// After the plugin exits, how long to wait for its pipes to close. A helper it left running
/// in the background may hold them open forever, and its output is not part of the answer.
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// SIGKILL is not refused, but a process stuck in the kernel can take a moment to die; past
/// this the reaping is left to tokio (`kill_on_drop`) rather than holding up the caller.
const REAP_WAIT: Duration = Duration::from_secs(5);
const REDACTED: &str = "<redacted>";

/// How the plugin may be run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Kill the plugin (its whole process group) after this long.
    pub timeout: Duration,
    /// Whether our stdin is a terminal (decides interactive mode as client-go does).
    pub stdin_is_terminal: bool,
}

/// What the plugin returned. Debug must NOT print the secrets (implement Debug by hand: show "<redacted>").
#[derive(Clone)]
pub struct ExecCredential {
    pub token: Option<String>,
    pub client_certificate_data: Option<String>,
    pub client_key_data: Option<String>,
    /// RFC 3339 expiry as given, parsed to a SystemTime.
    pub expires: Option<SystemTime>,
}

impl fmt::Debug for ExecCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hide = |value: &Option<String>| value.as_ref().map(|_| Redacted);
        f.debug_struct("ExecCredential")
            .field("token", &hide(&self.token))
            .field("client_certificate_data", &hide(&self.client_certificate_data))
            .field("client_key_data", &hide(&self.client_key_data))
            .field("expires", &self.expires)
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Why a credential plugin gave no credential. Every message is one line; none holds the
/// plugin's stdout or a credential. `command` is the plugin path as configured, never its args.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("users[].user.exec has no command; set users[].user.exec.command to the credential plugin")]
    NoCommand,
    #[error(
        "credential plugin \"{command}\" has no apiVersion; set users[].user.exec.apiVersion to {API_V1} or {API_V1BETA1}"
    )]
    NoApiVersion { command: String },
    #[error(
        "credential plugin \"{command}\" uses {API_V1ALPHA1}, which kubernetes removed in 1.24; set users[].user.exec.apiVersion to {API_V1} and update the plugin"
    )]
    RemovedApiVersion { command: String },
    #[error(
        "credential plugin \"{command}\" uses unknown apiVersion \"{api_version}\"; set users[].user.exec.apiVersion to {API_V1} or {API_V1BETA1}"
    )]
    UnknownApiVersion { command: String, api_version: String },
    #[error(
        "credential plugin \"{command}\" uses {API_V1}, which requires users[].user.exec.interactiveMode; set it to Never, IfAvailable or Always"
    )]
    NoInteractiveMode { command: String },
    #[error(
        "credential plugin \"{command}\" needs an interactive terminal (interactiveMode: Always) but standard input is not one; run from a terminal or set interactiveMode to IfAvailable"
    )]
    NeedsTerminal { command: String },
    #[error(
        "credential plugin \"{command}\": users[].user.exec.env entry {index} has no name; give every entry a name and a value"
    )]
    EnvWithoutName { command: String, index: usize },
    #[error("credential plugin \"{command}\" not found {}; install it or fix users[].user.exec.command{}",
        if *.on_path { "on PATH" } else { "at that path" },
        install_hint_suffix(.install_hint))]
    NotFound { command: String, on_path: bool, install_hint: Option<String> },
    #[error("cannot start credential plugin \"{command}\": {message}")]
    Spawn { command: String, message: String },
    #[error("cannot encode KUBERNETES_EXEC_INFO for credential plugin \"{command}\": {message}")]
    ExecInfo { command: String, message: String },
    #[error(
        "credential plugin \"{command}\" did not finish within {}s; it was killed (run it by hand to see why)",
        seconds(.timeout)
    )]
    Timeout { command: String, timeout: Duration },
    #[error(
        "credential plugin \"{command}\" wrote more than 1 MiB to standard output; it was killed (a credential is a few KiB)"
    )]
    StdoutTooLarge { command: String },
    #[error("cannot read from credential plugin \"{command}\": {message}")]
    Io { command: String, message: String },
    #[error("credential plugin \"{command}\" failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
    #[error("credential plugin \"{command}\" returned no usable credential: {problem}")]
    Output { command: String, problem: String },
}

fn install_hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(hint) => format!(" (install hint: {hint})"),
        None => String::new(),
    }
}

fn seconds(duration: &Duration) -> String {
    if duration.subsec_nanos() == 0 { duration.as_secs().to_string() } else { format!("{:.1}", duration.as_secs_f64()) }
}

/// Runs the credential plugin `exec` describes and returns the credential it printed.
pub async fn run(exec: &ExecConfig, opts: &ExecOptions) -> Result<ExecCredential, ExecError> {
    let program = exec.command.as_deref().filter(|command| !command.trim().is_empty()).ok_or(ExecError::NoCommand)?;
    let command = one_line(program);
    let api_version = check_api_version(exec, &command)?;
    let interactive = decide_interactive(exec, api_version, opts.stdin_is_terminal, &command)?;
    let exec_info = exec_info(exec, api_version, interactive)
        .map_err(|message| ExecError::ExecInfo { command: command.clone(), message })?;

    let mut cmd = Command::new(program);
    cmd.args(exec.args.iter().flatten());
    for (index, entry) in exec.env.iter().flatten().enumerate() {
        let name = entry
            .get("name")
            .filter(|name| !name.is_empty())
            .ok_or_else(|| ExecError::EnvWithoutName { command: command.clone(), index })?;
        cmd.env(name, entry.get("value").map_or("", String::as_str));
    }
    for name in exec.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    // Set last so neither the config's env nor drop_env can hide it, as client-go does.
    cmd.env("KUBERNETES_EXEC_INFO", exec_info);
    cmd.stdout(Stdio::piped());
    if interactive {
        // The plugin talks to the user (device-code logins and the like) on the terminal. It must
        // stay in our process group: a background group reading the terminal gets SIGTTIN and
        // stops, so an interactive plugin's own children cannot be killed as a group.
        cmd.stdin(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped()).process_group(0);
    }
    // A safety net for paths that return early (a cancelled future included).
    cmd.kill_on_drop(true);

    let mut child = cmd.spawn().map_err(|error| spawn_error(program, &command, exec, &error))?;
    let group = if interactive { None } else { child.id() };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let deadline = Instant::now().checked_add(opts.timeout).unwrap_or_else(far_future);

    let captured = match capture(&mut child, stdout, stderr, deadline).await {
        Ok(captured) => captured,
        Err(stop) => {
            kill(&mut child, group).await;
            return Err(match stop {
                Stop::TimedOut => ExecError::Timeout { command, timeout: opts.timeout },
                Stop::TooLarge => ExecError::StdoutTooLarge { command },
                Stop::Io(message) => ExecError::Io { command, message },
            });
        }
    };

    if !captured.status.success() {
        let stderr = if interactive {
            "its error output went to the terminal".to_string()
        } else {
            stderr_summary(&captured.stderr, captured.stderr_truncated)
        };
        return Err(ExecError::Failed { command, status: describe_status(captured.status), stderr });
    }
    parse_credential(&captured.stdout, api_version).map_err(|problem| ExecError::Output { command, problem })
}

fn far_future() -> Instant {
    // Only reached for absurd timeouts (Duration::MAX); thirty years is "never" here.
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}

/// Makes configured text safe to put in a one-line message.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().filter(|c| !c.is_control()).collect()
}

fn check_api_version<'a>(exec: &'a ExecConfig, command: &str) -> Result<&'a str, ExecError> {
    match exec.api_version.as_deref().map(str::trim) {
        None | Some("") => Err(ExecError::NoApiVersion { command: command.to_string() }),
        Some(API_V1ALPHA1) => Err(ExecError::RemovedApiVersion { command: command.to_string() }),
        Some(version @ (API_V1 | API_V1BETA1)) => Ok(version),
        Some(other) => Err(ExecError::UnknownApiVersion { command: command.to_string(), api_version: one_line(other) }),
    }
}

fn decide_interactive(
    exec: &ExecConfig,
    api_version: &str,
    stdin_is_terminal: bool,
    command: &str,
) -> Result<bool, ExecError> {
    let mode = match &exec.interactive_mode {
        Some(mode) => mode.clone(),
        None if api_version == API_V1 => {
            return Err(ExecError::NoInteractiveMode { command: command.to_string() });
        }
        None => ExecInteractiveMode::IfAvailable,
    };
    match mode {
        ExecInteractiveMode::Never => Ok(false),
        ExecInteractiveMode::IfAvailable => Ok(stdin_is_terminal),
        ExecInteractiveMode::Always if stdin_is_terminal => Ok(true),
        ExecInteractiveMode::Always => Err(ExecError::NeedsTerminal { command: command.to_string() }),
    }
}

/// The `KUBERNETES_EXEC_INFO` document client-go hands to plugins.
fn exec_info(exec: &ExecConfig, api_version: &str, interactive: bool) -> Result<String, String> {
    let mut spec = Map::new();
    if exec.provide_cluster_info
        && let Some(cluster) = &exec.cluster
    {
        // kube's ExecAuthCluster already serialises with client-go's field names (tls-server-name, …).
        spec.insert("cluster".to_string(), serde_json::to_value(cluster).map_err(|error| error.to_string())?);
    }
    spec.insert("interactive".to_string(), Value::Bool(interactive));
    let info = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": spec,
    });
    Ok(info.to_string())
}

fn spawn_error(program: &str, command: &str, exec: &ExecConfig, error: &std::io::Error) -> ExecError {
    match error.kind() {
        std::io::ErrorKind::NotFound => ExecError::NotFound {
            command: command.to_string(),
            on_path: !program.contains('/'),
            install_hint: exec.install_hint.as_deref().map(one_line).filter(|hint| !hint.is_empty()),
        },
        std::io::ErrorKind::PermissionDenied => ExecError::Spawn {
            command: command.to_string(),
            message: "permission denied; make it executable (chmod +x) or fix users[].user.exec.command".to_string(),
        },
        _ => ExecError::Spawn { command: command.to_string(), message: one_line(&error.to_string()) },
    }
}

struct Captured {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Whether the start of stderr was dropped to stay within [`STDERR_TAIL`].
    stderr_truncated: bool,
}

enum Stop {
    TimedOut,
    TooLarge,
    Io(String),
}

/// Waits for the plugin while draining stdout and stderr together: reading one at a time would
/// let a plugin that fills the other pipe block forever.
async fn capture<O, E>(
    child: &mut Child,
    mut stdout: Option<O>,
    mut stderr: Option<E>,
    deadline: Instant,
) -> Result<Captured, Stop>
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut stderr_truncated = false;
    let mut out_buf = vec![0u8; 16 * 1024];
    let mut err_buf = vec![0u8; 16 * 1024];
    let mut out_open = stdout.is_some();
    let mut err_open = stderr.is_some();
    let mut status = None;
    let mut wait_until = deadline;

    while status.is_none() || out_open || err_open {
        tokio::select! {
            read = read_some(&mut stdout, &mut out_buf), if out_open => match read {
                Ok(0) => out_open = false,
                Ok(n) => {
                    if out.len() + n > MAX_STDOUT {
                        return Err(Stop::TooLarge);
                    }
                    out.extend_from_slice(&out_buf[..n]);
                }
                Err(error) => return Err(Stop::Io(one_line(&error.to_string()))),
            },
            read = read_some(&mut stderr, &mut err_buf), if err_open => match read {
                Ok(0) => err_open = false,
                Ok(n) => {
                    err.extend_from_slice(&err_buf[..n]);
                    if err.len() > STDERR_TAIL {
                        err.drain(..err.len() - STDERR_TAIL);
                        stderr_truncated = true;
                    }
                }
                // Stderr only explains failures; losing it is no reason to refuse a credential.
                Err(_) => err_open = false,
            },
            waited = child.wait(), if status.is_none() => match waited {
                Ok(exited) => {
                    status = Some(exited);
                    wait_until = deadline.min(Instant::now() + PIPE_GRACE);
                }
                Err(error) => return Err(Stop::Io(one_line(&error.to_string()))),
            },
            () = tokio::time::sleep_until(wait_until) => {
                if status.is_none() {
                    return Err(Stop::TimedOut);
                }
                // The plugin is gone but something it started still holds a pipe open.
                break;
            }
        }
    }
    match status {
        Some(status) => Ok(Captured { status, stdout: out, stderr: err, stderr_truncated }),
        None => Err(Stop::TimedOut),
    }
}

/// One read from a pipe that may be absent (never ready then); cancel safe like `read`.
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Kills the plugin and everything in its process group, then reaps it.
async fn kill(child: &mut Child, group: Option<u32>) {
    if let Some(pgid) = group {
        kill_group(pgid).await;
    }
    // Also the leader itself: the group kill needs a `kill` program, which may be missing.
    let _ = child.start_kill();
    let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
}

/// SIGKILLs a process group. Without libc (and with unsafe code forbidden) that takes a `kill`
/// program; the shell's builtin is tried first since /bin/sh is always there.
async fn kill_group(pgid: u32) {
    let target = format!("-{pgid}");
    let attempts: [(&str, Vec<&str>); 2] =
        [("/bin/sh", vec!["-c", "kill -s KILL -- \"$1\"", "sh", &target]), ("kill", vec!["-s", "KILL", "--", &target])];
    for (program, args) in attempts {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
        if let Ok(Ok(status)) = tokio::time::timeout(REAP_WAIT, cmd.status()).await
            && status.success()
        {
            return;
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The last few scrubbed lines of stderr, short enough for one error line.
fn stderr_summary(tail: &[u8], truncated: bool) -> String {
    const LINES: usize = 3;
    const CHARS: usize = 300;
    let text = String::from_utf8_lossy(tail);
    // A cut first line could start in the middle of a secret, past the word that marks it.
    let text = match (truncated, text.find('\n')) {
        (false, _) => &text[..],
        (true, Some(newline)) => &text[newline + 1..],
        (true, None) => "",
    };
    let clean = scrub(text);
    let lines: Vec<&str> = clean.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    let joined = lines[lines.len().saturating_sub(LINES)..].join(" / ");
    if joined.is_empty() {
        return "no error output".to_string();
    }
    let count = joined.chars().count();
    if count <= CHARS {
        return joined;
    }
    let mut short = String::from("…");
    short.extend(joined.chars().skip(count - (CHARS - 1)));
    short
}

/// Parses what the plugin printed. Problems are described without quoting the output, since
/// that is where the credential is.
fn parse_credential(stdout: &[u8], api_version: &str) -> Result<ExecCredential, String> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err("standard output is empty; want an ExecCredential".to_string());
    }
    let document: Value = match serde_json::from_slice(stdout) {
        Ok(document) => document,
        Err(json_error) => {
            let text = std::str::from_utf8(stdout).map_err(|_| "standard output is not UTF-8 text".to_string())?;
            serde_saphyr::from_str(text).map_err(|_| {
                format!(
                    "standard output is neither JSON (error at line {} column {}) nor YAML",
                    json_error.line(),
                    json_error.column()
                )
            })?
        }
    };
    let Value::Object(document) = document else {
        return Err("standard output is not an ExecCredential object".to_string());
    };
    let kind = optional_string(&document, "kind")?;
    if kind != Some("ExecCredential") {
        return Err(format!("kind is {}, want ExecCredential", shown(kind)));
    }
    let returned_version = optional_string(&document, "apiVersion")?;
    if returned_version != Some(api_version) {
        return Err(format!("apiVersion is {}, want {api_version} as configured", shown(returned_version)));
    }
    let status = match document.get("status") {
        Some(Value::Object(status)) => status,
        Some(Value::Null) | None => return Err("it has no status".to_string()),
        Some(_) => return Err("status is not an object".to_string()),
    };
    let field = |name: &str| -> Result<Option<String>, String> {
        Ok(optional_string(status, name)?.filter(|value| !value.is_empty()).map(str::to_string))
    };
    let token = field("token")?;
    let client_certificate_data = field("clientCertificateData")?;
    let client_key_data = field("clientKeyData")?;
    match (&client_certificate_data, &client_key_data) {
        (Some(_), None) => return Err("status has clientCertificateData but no clientKeyData".to_string()),
        (None, Some(_)) => return Err("status has clientKeyData but no clientCertificateData".to_string()),
        (None, None) if token.is_none() => {
            return Err("status has no token and no clientCertificateData/clientKeyData pair".to_string());
        }
        _ => {}
    }
    let expires = match optional_string(status, "expirationTimestamp")? {
        None => None,
        Some(stamp) => Some(parse_rfc3339(stamp).ok_or_else(|| {
            format!("status.expirationTimestamp {} is not RFC 3339; want e.g. 2025-01-02T03:04:05Z", shown(Some(stamp)))
        })?),
    };
    Ok(ExecCredential { token, client_certificate_data, client_key_data, expires })
}

/// A string field that may be absent or null; any other type is an error naming the field only.
fn optional_string<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(format!("{name} is not a string")),
    }
}

/// Quotes a value from plugin output only when it cannot be a secret: short, plain, and left
/// alone by [`scrub`].
fn shown(value: Option<&str>) -> String {
    match value {
        None => "missing".to_string(),
        Some(value)
            if value.len() <= 64
                && value.chars().all(|c| c.is_ascii_alphanumeric() || "._/:+-".contains(c))
                && scrub(value) == value =>
        {
            format!("\"{value}\"")
        }
        Some(_) => REDACTED.to_string(),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS(.frac)?(Z|±HH:MM)`, the RFC 3339 form Kubernetes writes.
fn parse_rfc3339(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    let number = |range: Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |index: usize, allowed: &[u8]| b.get(index).is_some_and(|c| allowed.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut index = 19;
    let mut nanos = 0u32;
    if at(index, b".") {
        let start = index + 1;
        index = start;
        while at(index, b"0123456789") {
            index += 1;
        }
        if index == start {
            return None;
        }
        // Nanoseconds are all SystemTime keeps; finer digits are dropped, as Go does.
        let kept = &b[start..index.min(start + 9)];
        let value = kept.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        nanos = value * 10u32.pow(9 - kept.len() as u32);
    }
    let offset = if at(index, b"Zz") {
        index += 1;
        0
    } else if at(index, b"+-") && at(index + 3, b":") {
        let sign = if at(index, b"-") { -1 } else { 1 };
        let (hours, minutes) = (number(index + 1..index + 3)?, number(index + 4..index + 6)?);
        if hours > 23 || minutes > 59 {
            return None;
        }
        index += 6;
        sign * (hours * 3600 + minutes * 60)
    } else {
        return None;
    };
    if index != b.len() {
        return None;
    }
    // The grammar above is RFC 3339's alone (jiff's parser also takes ISO 8601 forms, and turns
    // a second 60 into 59); the calendar is jiff's: days in the month, hours and seconds in
    // range, the offset applied. The catalog's dates (1970 to 9999) bound the year.
    let date =
        crate::catalog::Date::new(i32::try_from(year).ok()?, u8::try_from(month).ok()?, u8::try_from(day).ok()?)?;
    let (hour, minute, second) = (i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, i8::try_from(second).ok()?);
    let time = jiff::civil::Time::new(hour, minute, second, i32::try_from(nanos).ok()?).ok()?;
    let offset = jiff::tz::Offset::from_seconds(i32::try_from(offset).ok()?).ok()?;
    Some(SystemTime::from(offset.to_timestamp(date.civil().to_datetime(time)).ok()?))
}

/// Best-effort scrubbing of credential-looking substrings from text a plugin wrote to stderr:
/// values after `token`, `password`, `secret`, `access_token`, `id_token`, `client-key`/`key`
/// followed by `=`, `:` or `": "`, `Bearer xxx`, JWT-like `eyJ...` strings, long base64/hex runs
/// (>= 32 chars), PEM blocks (`-----BEGIN ... PRIVATE KEY-----` to END). Replaces them with
/// `<redacted>`. Also drops ASCII control characters except \n (terminal escape safety).
pub fn scrub(text: &str) -> String {
    let text = strip_controls(text);
    let text = redact_private_keys(&text);
    let text = redact_assignments(&text);
    let text = redact_runs(&text, jwt_at);
    redact_runs(&text, long_run_at)
}

/// Drops control characters (C0, DEL and C1, which some terminals also obey) and whole CSI
/// escape sequences, so plugin text cannot recolour or rewrite the user's terminal. Tabs become
/// spaces rather than gluing words together.
fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            '\u{1b}' => {
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next_if(|c| !('@'..='~').contains(c)).is_some() {}
                    chars.next();
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn redact_private_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    const DASHES: &str = "-----";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let label = after.find(DASHES).map(|end| &after[..end]);
        match label {
            Some(label) if label.contains("PRIVATE KEY") && !label.contains('\n') => {
                out.push_str(&rest[..start]);
                out.push_str(REDACTED);
                let body = &after[label.len() + DASHES.len()..];
                // Without an END marker the key runs to the end of what we have.
                rest = body
                    .find(END)
                    .and_then(|end| {
                        let footer = &body[end + END.len()..];
                        footer.find(DASHES).map(|close| &footer[close + DASHES.len()..])
                    })
                    .unwrap_or("");
            }
            _ => {
                out.push_str(&rest[..start + BEGIN.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Words whose value is secret when they end a key (`token`, `access_token`, `client-key`,
/// `clientKeyData`, `--password` …). Matching ends, not whole words, covers the prefixed forms.
const SECRET_KEYS: [&str; 8] = ["password", "passwd", "secret", "token", "key", "keydata", "key-data", "key_data"];
const SCHEMES: [&str; 2] = ["bearer", "basic"];

fn redact_assignments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut index = 0;
    while index < b.len() {
        // Ranges found here start and end next to ASCII bytes, so they are char boundaries.
        match secret_value_at(b, index) {
            Some(value) => {
                out.push_str(&text[copied..value.start]);
                out.push_str(REDACTED);
                copied = value.end;
                index = value.end;
            }
            None => index += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn starts_with_ignore_case(b: &[u8], index: usize, word: &str) -> bool {
    b.get(index..index + word.len()).is_some_and(|found| found.eq_ignore_ascii_case(word.as_bytes()))
}

fn skip_spaces(b: &[u8], mut index: usize) -> usize {
    while b.get(index) == Some(&b' ') {
        index += 1;
    }
    index
}

/// The secret value a key or auth scheme starting at `index` introduces, if any.
fn secret_value_at(b: &[u8], index: usize) -> Option<Range<usize>> {
    let word_start = index == 0 || !is_ident(b[index - 1]);
    for scheme in SCHEMES {
        let end = index + scheme.len();
        if word_start && starts_with_ignore_case(b, index, scheme) && b.get(end) == Some(&b' ') {
            return value_range(b, skip_spaces(b, end));
        }
    }
    SECRET_KEYS.iter().find_map(|key| {
        let end = index + key.len();
        if !starts_with_ignore_case(b, index, key) || b.get(end).is_some_and(|c| is_ident(*c)) {
            return None;
        }
        let mut key_start = index;
        while key_start > 0 && is_ident(b[key_start - 1]) {
            key_start -= 1;
        }
        let is_flag = b[key_start] == b'-';
        let mut at = end;
        if matches!(b.get(at), Some(b'"' | b'\'')) {
            at += 1;
        }
        at = skip_spaces(b, at);
        if matches!(b.get(at), Some(b'=' | b':')) {
            at = skip_spaces(b, at + 1);
        } else if !(is_flag && at > end) {
            // `--token abc` passes the value as the next word; elsewhere a bare word is prose.
            return None;
        }
        value_range(b, at)
    })
}

fn value_range(b: &[u8], at: usize) -> Option<Range<usize>> {
    let (start, end) = match b.get(at) {
        Some(&quote @ (b'"' | b'\'')) => {
            let start = at + 1;
            let len = b[start..].iter().position(|&c| c == quote || c == b'\n').unwrap_or(b.len() - start);
            (start, start + len)
        }
        _ => {
            let stop = |c: &u8| c.is_ascii_whitespace() || b",;&\"'{}[]()".contains(c);
            (at, at + b[at..].iter().position(stop).unwrap_or(b.len() - at))
        }
    };
    (start < end && !b[start..].starts_with(REDACTED.as_bytes())).then_some(start..end)
}

/// Replaces every run `found_at` reports; it gets the bytes and a start index that begins a word.
fn redact_runs(text: &str, found_at: fn(&[u8], usize) -> Option<usize>) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut index = 0;
    while index < b.len() {
        let starts_word = index == 0 || !is_token_char(b[index - 1]);
        match found_at(b, index).filter(|_| starts_word) {
            Some(end) => {
                out.push_str(&text[copied..index]);
                out.push_str(REDACTED);
                copied = end;
                index = end;
            }
            None => index += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"+/=_-".contains(&c)
}

/// A JWT: base64url JSON (`eyJ` is `{"`) and its dotted parts.
fn jwt_at(b: &[u8], index: usize) -> Option<usize> {
    if !b[index..].starts_with(b"eyJ") {
        return None;
    }
    let len = b[index..].iter().position(|&c| !(is_token_char(c) || c == b'.')).unwrap_or(b.len() - index);
    (len >= 16).then_some(index + len)
}

/// 32+ characters of base64 or hex. Requiring a digit (or mixed case outside a path) keeps long
/// plain words and file paths readable.
fn long_run_at(b: &[u8], index: usize) -> Option<usize> {
    let len = b[index..].iter().position(|&c| !is_token_char(c)).unwrap_or(b.len() - index);
    let run = &b[index..index + len];
    let has = |test: fn(&u8) -> bool| run.iter().any(test);
    let looks_random =
        has(u8::is_ascii_digit) || (has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase) && !run.contains(&b'/'));
    (len >= 32 && looks_random).then_some(index + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::config::ExecAuthCluster;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant as StdInstant;
    use std::time::UNIX_EPOCH;

    const TOKEN_V1: &str = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-123","expirationTimestamp":"2030-01-02T03:04:05Z"}}"#;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "k8s-upgrade-exec-test-{}-{name}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        /// Writes an executable `#!/bin/sh` plugin; `$DIR` in the body is this directory.
        fn plugin(&self, body: &str) -> String {
            let path = self.path("plugin");
            let script = format!("#!/bin/sh\nDIR='{}'\n{body}\n", self.0.display());
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(command: &str, api_version: &str) -> ExecConfig {
        ExecConfig {
            api_version: Some(api_version.to_string()),
            command: Some(command.to_string()),
            interactive_mode: Some(ExecInteractiveMode::Never),
            ..ExecConfig::default()
        }
    }

    fn options(timeout_secs: u64) -> ExecOptions {
        ExecOptions { timeout: Duration::from_secs(timeout_secs), stdin_is_terminal: false }
    }

    /// Runs a plugin, retrying "text file busy": another test thread forking while this one
    /// had the script open for writing holds it open a moment longer.
    async fn run_plugin(exec: &ExecConfig, opts: &ExecOptions) -> Result<ExecCredential, ExecError> {
        for _ in 0..20 {
            match run(exec, opts).await {
                Err(ExecError::Spawn { message, .. }) if message.to_lowercase().contains("busy") => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
        run(exec, opts).await
    }

    fn echo_credential(json: &str) -> String {
        format!("cat <<'EOF'\n{json}\nEOF")
    }

    #[tokio::test]
    async fn token_and_expiry() {
        let dir = Scratch::new("token");
        let exec = config(&dir.plugin(&echo_credential(TOKEN_V1)), API_V1);
        let credential = run_plugin(&exec, &options(10)).await.unwrap();
        assert_eq!(credential.token.as_deref(), Some("tok-123"));
        assert_eq!(credential.client_key_data, None);
        let expires = credential.expires.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(expires, 1_893_553_445);
        let debug = format!("{credential:?}");
        assert!(!debug.contains("tok-123"), "{debug}");
        assert!(debug.contains(REDACTED), "{debug}");
    }

    #[tokio::test]
    async fn client_certificate_and_key_v1beta1_yaml() {
        let dir = Scratch::new("cert");
        let yaml = "apiVersion: client.authentication.k8s.io/v1beta1\nkind: ExecCredential\nstatus:\n  clientCertificateData: CERT-PEM\n  clientKeyData: KEY-PEM\n";
        let mut exec = config(&dir.plugin(&echo_credential(yaml)), API_V1BETA1);
        exec.interactive_mode = None;
        let credential = run_plugin(&exec, &options(10)).await.unwrap();
        assert_eq!(credential.token, None);
        assert_eq!(credential.client_certificate_data.as_deref(), Some("CERT-PEM"));
        assert_eq!(credential.client_key_data.as_deref(), Some("KEY-PEM"));
        assert_eq!(credential.expires, None);
        assert!(!format!("{credential:?}").contains("KEY-PEM"));
    }

    #[tokio::test]
    async fn v1_without_interactive_mode_is_refused() {
        let mut exec = config("/bin/true", API_V1);
        exec.interactive_mode = None;
        let error = run(&exec, &options(10)).await.unwrap_err();
        assert!(matches!(error, ExecError::NoInteractiveMode { .. }), "{error}");
        assert!(error.to_string().contains("interactiveMode"), "{error}");
    }

    #[tokio::test]
    async fn v1alpha1_and_unknown_versions_are_refused() {
        let error = run(&config("/bin/true", API_V1ALPHA1), &options(10)).await.unwrap_err();
        assert!(matches!(error, ExecError::RemovedApiVersion { .. }), "{error}");
        assert!(error.to_string().contains("v1alpha1"), "{error}");
        let error = run(&config("/bin/true", "example.com/v9"), &options(10)).await.unwrap_err();
        assert!(error.to_string().contains("\"example.com/v9\""), "{error}");
        let mut exec = config("/bin/true", API_V1);
        exec.api_version = None;
        assert!(matches!(run(&exec, &options(10)).await, Err(ExecError::NoApiVersion { .. })));
        assert!(matches!(run(&ExecConfig::default(), &options(10)).await, Err(ExecError::NoCommand)));
    }

    #[tokio::test]
    async fn always_without_terminal_is_refused() {
        let mut exec = config("/bin/true", API_V1);
        exec.interactive_mode = Some(ExecInteractiveMode::Always);
        let error = run(&exec, &options(10)).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("needs an interactive terminal (interactiveMode: Always) but standard input is not one"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn missing_command_names_it_and_the_hint() {
        let mut exec = config("k8s-upgrade-no-such-plugin", API_V1);
        exec.install_hint = Some("brew install\n  no-such-plugin".to_string());
        let error = run(&exec, &options(10)).await.unwrap_err().to_string();
        assert!(error.contains("\"k8s-upgrade-no-such-plugin\" not found on PATH"), "{error}");
        assert!(error.contains("users[].user.exec.command"), "{error}");
        assert!(error.contains("(install hint: brew install no-such-plugin)"), "{error}");
        let error = run(&config("/nonexistent/plugin", API_V1), &options(10)).await.unwrap_err().to_string();
        assert!(error.contains("not found at that path"), "{error}");
        assert!(!error.contains("install hint"), "{error}");
    }

    #[tokio::test]
    async fn failure_reports_code_and_scrubbed_stderr_but_no_stdout() {
        let dir = Scratch::new("fail");
        let mut exec = config(
            &dir.plugin(
                "echo 'token=SECRET-OUT'\necho 'starting' >&2\necho 'login failed: token=SECRET-ERR' >&2\nexit 3",
            ),
            API_V1,
        );
        exec.args = Some(vec!["--password=SECRET-ARG".to_string()]);
        let error = run_plugin(&exec, &options(10)).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, ExecError::Failed { .. }), "{text}");
        assert!(text.contains("exit code 3"), "{text}");
        assert!(text.contains("starting / login failed: token=<redacted>"), "{text}");
        for secret in ["SECRET-OUT", "SECRET-ERR", "SECRET-ARG"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(!text.contains('\n'), "{text}");
    }

    fn gone(pid: &str) -> bool {
        let alive = std::process::Command::new("kill")
            .args(["-0", pid])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // Our container's init may not reap orphans, so a killed zombie still answers kill -0.
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
        !alive || zombie
    }

    #[tokio::test]
    async fn hung_plugin_and_its_children_are_killed() {
        let dir = Scratch::new("hang");
        let exec = config(&dir.plugin("sleep 1000 &\necho $! > \"$DIR/pid\"\nsleep 1000"), API_V1);
        let started = StdInstant::now();
        let error = run_plugin(&exec, &options(1)).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(error, ExecError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("did not finish within 1s; it was killed (run it by hand to see why)"));
        assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
        let pid = std::fs::read_to_string(dir.path("pid")).unwrap();
        let pid = pid.trim();
        let mut waited = 0;
        while !gone(pid) && waited < 40 {
            std::thread::sleep(Duration::from_millis(50));
            waited += 1;
        }
        assert!(gone(pid), "grandchild {pid} survived");
    }

    #[tokio::test]
    async fn stderr_flood_does_not_deadlock() {
        let dir = Scratch::new("flood");
        let body = format!("head -c 200000 /dev/zero | tr '\\0' 'x' >&2\n{}", echo_credential(TOKEN_V1));
        let exec = config(&dir.plugin(&body), API_V1);
        let credential = run_plugin(&exec, &options(10)).await.unwrap();
        assert_eq!(credential.token.as_deref(), Some("tok-123"));
    }

    #[tokio::test]
    async fn stdout_over_one_mebibyte_is_refused() {
        let dir = Scratch::new("big");
        let exec = config(&dir.plugin("head -c 2000000 /dev/zero | tr '\\0' 'a'"), API_V1);
        let error = run_plugin(&exec, &options(10)).await.unwrap_err();
        assert!(matches!(error, ExecError::StdoutTooLarge { .. }), "{error}");
        assert!(error.to_string().contains("wrote more than 1 MiB"), "{error}");
    }

    #[tokio::test]
    async fn exec_info_has_interactive_and_cluster() {
        let dir = Scratch::new("info");
        let body = format!("printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$DIR/info\"\n{}", echo_credential(TOKEN_V1));
        let mut exec = config(&dir.plugin(&body), API_V1);
        exec.provide_cluster_info = true;
        exec.cluster = Some(ExecAuthCluster {
            server: Some("https://10.0.0.1:6443".to_string()),
            tls_server_name: Some("kubernetes".to_string()),
            certificate_authority_data: Some(b"CA".to_vec()),
            ..ExecAuthCluster::default()
        });
        run_plugin(&exec, &options(10)).await.unwrap();
        let info: Value = serde_json::from_str(&std::fs::read_to_string(dir.path("info")).unwrap()).unwrap();
        assert_eq!(info["apiVersion"], API_V1);
        assert_eq!(info["kind"], "ExecCredential");
        assert_eq!(info["spec"]["interactive"], false);
        assert_eq!(info["spec"]["cluster"]["server"], "https://10.0.0.1:6443");
        assert_eq!(info["spec"]["cluster"]["tls-server-name"], "kubernetes");
        assert_eq!(info["spec"]["cluster"]["certificate-authority-data"], "Q0E=");

        exec.provide_cluster_info = false;
        run_plugin(&exec, &options(10)).await.unwrap();
        let info: Value = serde_json::from_str(&std::fs::read_to_string(dir.path("info")).unwrap()).unwrap();
        assert!(info["spec"].get("cluster").is_none(), "{info}");
    }

    #[tokio::test]
    async fn interactive_if_available_with_terminal() {
        let dir = Scratch::new("interactive");
        let body = format!("printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$DIR/info\"\n{}", echo_credential(TOKEN_V1));
        let mut exec = config(&dir.plugin(&body), API_V1);
        exec.interactive_mode = Some(ExecInteractiveMode::IfAvailable);
        let opts = ExecOptions { timeout: Duration::from_secs(10), stdin_is_terminal: true };
        run_plugin(&exec, &opts).await.unwrap();
        let info: Value = serde_json::from_str(&std::fs::read_to_string(dir.path("info")).unwrap()).unwrap();
        assert_eq!(info["spec"]["interactive"], true);
    }

    #[tokio::test]
    async fn env_and_drop_env_are_honoured() {
        let dir = Scratch::new("env");
        let body = format!(
            "printf '%s|%s|%s' \"$PLUGIN_FLAVOUR\" \"${{HOME-unset}}\" \"$1\" > \"$DIR/env\"\n{}",
            echo_credential(TOKEN_V1)
        );
        let mut exec = config(&dir.plugin(&body), API_V1);
        exec.args = Some(vec!["first-arg".to_string()]);
        exec.env = Some(vec![HashMap::from([
            ("name".to_string(), "PLUGIN_FLAVOUR".to_string()),
            ("value".to_string(), "mint".to_string()),
        ])]);
        exec.drop_env = Some(vec!["HOME".to_string()]);
        run_plugin(&exec, &options(10)).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path("env")).unwrap(), "mint|unset|first-arg");

        exec.env = Some(vec![HashMap::from([("value".to_string(), "x".to_string())])]);
        let error = run(&exec, &options(10)).await.unwrap_err();
        assert!(matches!(error, ExecError::EnvWithoutName { index: 0, .. }), "{error}");
    }

    async fn output_problem(dir: &Scratch, stdout: &str) -> String {
        let exec = config(&dir.plugin(&echo_credential(stdout)), API_V1);
        match run_plugin(&exec, &options(10)).await {
            Err(ExecError::Output { problem, .. }) => problem,
            other => panic!("want an output error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_credentials_are_refused_without_echoing_them() {
        let dir = Scratch::new("bad");
        let v1 = |status: &str| {
            format!(r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{status}}}"#)
        };
        let cases = [
            (r#"{"token": "SECRET-RAW""#, "neither JSON"),
            (
                r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"SECRET"}}"#,
                "apiVersion is \"client.authentication.k8s.io/v1beta1\"",
            ),
            (
                r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.SECRET","status":{"token":"SECRET"}}"#,
                "kind is <redacted>",
            ),
            (&v1(r#"{"clientCertificateData":"SECRET-CERT"}"#), "no clientKeyData"),
            (&v1(r#"{"clientKeyData":"SECRET-KEY"}"#), "no clientCertificateData"),
            (&v1(r#"{"token":""}"#), "no token"),
            (&v1(r#"{"token":7}"#), "token is not a string"),
            (&v1(r#"{"token":"SECRET","expirationTimestamp":"tomorrow"}"#), "\"tomorrow\" is not RFC 3339"),
            (r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"}"#, "no status"),
        ];
        for (stdout, want) in cases {
            let problem = output_problem(&dir, stdout).await;
            assert!(problem.contains(want), "{stdout}: {problem}");
            assert!(!problem.contains("SECRET"), "{stdout}: {problem}");
        }
        assert!(output_problem(&dir, "").await.contains("empty"));
    }

    #[test]
    fn rfc3339() {
        let secs = |stamp: &str| parse_rfc3339(stamp).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(secs("2030-01-02T03:04:05Z"), Some(1_893_553_445.0));
        assert_eq!(secs("2030-01-02T05:04:05.5+02:00"), Some(1_893_553_445.5));
        assert_eq!(secs("2030-01-01T22:34:05-04:30"), Some(1_893_553_445.0));
        let leap = parse_rfc3339("2024-02-29t12:00:00.123456789123z").unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(leap, Duration::new(1_709_208_000, 123_456_789));
        // Dates are those of the catalog's calendar (1970 to 9999): an expiry before 1970 is no
        // expiry a plugin means.
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        for bad in [
            "",
            "2030-01-02",
            "2030-01-02T03:04:05",
            "2030-01-02 03:04:05Z",
            "2030-13-02T03:04:05Z",
            "2023-02-29T03:04:05Z",
            "2030-01-02T24:04:05Z",
            "2030-01-02T03:04:60Z",
            "2030-01-02T03:04:05.Z",
            "2030-01-02T03:04:05+0200",
            "2030-01-02T03:04:05Zjunk",
            "+030-01-02T03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn scrub_redacts_key_values() {
        assert_eq!(scrub("token=abc123 rest"), "token=<redacted> rest");
        assert_eq!(scrub("Password: hunter2"), "Password: <redacted>");
        assert_eq!(
            scrub(r#"{"access_token": "abc", "id_token":"def"}"#),
            r#"{"access_token": "<redacted>", "id_token":"<redacted>"}"#
        );
        assert_eq!(scrub("client_secret='s3 cr3t' ok"), "client_secret='<redacted>' ok");
        assert_eq!(scrub("client-key: /tmp/k.pem"), "client-key: <redacted>");
        assert_eq!(scrub("clientKeyData: abc"), "clientKeyData: <redacted>");
        assert_eq!(scrub("key=v&other=1"), "key=<redacted>&other=1");
        assert_eq!(scrub("run with --token abc now"), "run with --token <redacted> now");
        assert_eq!(scrub("Authorization: Bearer abc.def"), "Authorization: Bearer <redacted>");
        // Prose and near-miss words stay readable.
        assert_eq!(scrub("the token expired"), "the token expired");
        assert_eq!(scrub("tokens=5 keyring=gnome"), "tokens=5 keyring=gnome");
        assert_eq!(scrub("token:"), "token:");
    }

    #[test]
    fn scrub_redacts_jwts_runs_and_keys() {
        assert_eq!(scrub("got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig_-x end"), "got <redacted> end");
        assert_eq!(scrub("sha 0123456789abcdef0123456789abcdef!"), "sha <redacted>!");
        assert_eq!(scrub("b64 QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="), "b64 <redacted>");
        let path = "/usr/local/bin/aws-iam-authenticator-plugin-wrapper";
        assert_eq!(scrub(path), path);
        assert_eq!(scrub("abcdefghij0123456789"), "abcdefghij0123456789");
        let pem = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIB\nAAAA\n-----END RSA PRIVATE KEY-----\nafter";
        assert_eq!(scrub(pem), "before\n<redacted>\nafter");
        assert_eq!(scrub("x -----BEGIN PRIVATE KEY-----\nMIIB"), "x <redacted>");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(scrub(cert), cert);
    }

    #[test]
    fn scrub_drops_control_characters() {
        assert_eq!(scrub("\u{1b}[31mred\u{1b}[0m\r\nnext\u{7}\tline\u{9b}2J"), "red\nnext line2J");
        assert_eq!(scrub("héllo wörld"), "héllo wörld");
    }

    #[test]
    fn stderr_summary_is_short_and_safe() {
        assert_eq!(stderr_summary(b"a\n\nb\nc\n  d  \n", false), "b / c / d");
        assert_eq!(stderr_summary(b"", false), "no error output");
        assert_eq!(stderr_summary(b"CRET-VALUE\nnext", true), "next");
        let long = "y".repeat(1000);
        let summary = stderr_summary(long.as_bytes(), false);
        assert_eq!(summary.chars().count(), 300);
        assert!(summary.starts_with('…'));
    }

    #[test]
    fn shown_hides_odd_values() {
        assert_eq!(shown(Some("client.authentication.k8s.io/v1")), "\"client.authentication.k8s.io/v1\"");
        assert_eq!(shown(Some("has space")), REDACTED);
        assert_eq!(shown(None), "missing");
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(seconds(&Duration::from_secs(30)), "30");
        assert_eq!(seconds(&Duration::from_millis(1500)), "1.5");
    }
}
