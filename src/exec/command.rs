//! Running the operator's commands (upgrade, gate and release commands): argv only, never a
//! shell; in a process group of their own, so the terminal's Ctrl-C reaches us and not them;
//! stdout and stderr read together, so neither pipe can fill and block the child; memory bounded
//! whatever the command prints (the first and last lines kept, every byte streamed to a log
//! file); a timeout or an abort ends the whole group (TERM, then KILL after a grace period).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::cancel::Cancel;

/// Lines kept from the start and from the end of the output.
const HEAD_LINES: usize = 20;
const TAIL_LINES: usize = 100;
/// Longest line kept (the log file has it whole).
const MAX_LINE: usize = 2000;
/// Between TERM and KILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long the pipes are still read once the command has exited: what it wrote just before
/// exiting is in them, but a background process it left may hold them open for ever.
const PIPE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Every byte of output is appended here when set.
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// First lines, then last lines (`omitted` lines between them are only in the log file).
    pub head: Vec<String>,
    pub tail: Vec<String>,
    pub omitted: u64,
    pub bytes: u64,
}

impl Output {
    /// The kept lines in order, with a marker where lines were left out.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.head.clone();
        if self.omitted > 0 {
            out.push(format!("… {} lines left out …", self.omitted));
        }
        out.extend(self.tail.iter().cloned());
        out
    }

    pub fn last_line(&self) -> Option<&str> {
        self.tail.last().or(self.head.last()).map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("{program} did not finish within {}; it was stopped with its process group", humanize(*after))]
    Timeout { program: String, after: Duration, output: Output },
    #[error("{program} was stopped with its process group (second stop request)")]
    Cancelled { program: String, output: Output },
    #[error("{program} exited with {status}{}", last(.output))]
    Failed { program: String, status: String, output: Output },
}

fn last(o: &Output) -> String {
    o.last_line().map(|l| format!(": {l}")).unwrap_or_default()
}

/// `90s`, `15m`, `1h30m`.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// Collects output lines within the memory bound.
#[derive(Default)]
pub(super) struct Collector {
    out: Output,
    tail: VecDeque<String>,
    partial: [Vec<u8>; 2],
}

impl Collector {
    fn push_line(&mut self, line: String, on_line: &(dyn Fn(&str) + Send + Sync)) {
        on_line(&line);
        if self.out.head.len() < HEAD_LINES {
            self.out.head.push(line);
            return;
        }
        self.tail.push_back(line);
        if self.tail.len() > TAIL_LINES {
            self.tail.pop_front();
            self.out.omitted += 1;
        }
    }

    /// Takes bytes of stream 0 (stdout) or 1 (stderr).
    pub(super) fn feed(&mut self, stream: usize, bytes: &[u8], on_line: &(dyn Fn(&str) + Send + Sync)) {
        self.out.bytes += bytes.len() as u64;
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let ends = chunk.last() == Some(&b'\n');
            let body = if ends { &chunk[..chunk.len() - 1] } else { chunk };
            let room = MAX_LINE.saturating_sub(self.partial[stream].len());
            self.partial[stream].extend_from_slice(&body[..body.len().min(room)]);
            if ends {
                let raw = std::mem::take(&mut self.partial[stream]);
                let mut line = String::from_utf8_lossy(&raw).trim_end_matches('\r').to_string();
                if stream == 1 {
                    line.insert_str(0, "(stderr) ");
                }
                self.push_line(line, on_line);
            }
        }
    }

    pub(super) fn finish(mut self, on_line: &(dyn Fn(&str) + Send + Sync)) -> Output {
        for stream in 0..2 {
            if !self.partial[stream].is_empty() {
                let raw = std::mem::take(&mut self.partial[stream]);
                let mut line = String::from_utf8_lossy(&raw).to_string();
                if stream == 1 {
                    line.insert_str(0, "(stderr) ");
                }
                self.push_line(line, on_line);
            }
        }
        self.out.tail = self.tail.into_iter().collect();
        self.out
    }
}

fn signal_group(pid: Option<u32>, signal: rustix::process::Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Runs `spec`. `on_line` sees every (bounded) output line as it comes.
pub async fn run(
    spec: &CommandSpec,
    cancel: &Cancel,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Output, CommandError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(CommandError::Spawn { program: String::new(), message: "the command is empty".into() });
    };
    // argv only: the environment may carry credentials.
    tracing::info!(argv = ?spec.argv, timeout_s = spec.timeout.as_secs(), "running a command");
    let started = tokio::time::Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CommandError::Spawn { program: program.clone(), message: e.to_string() })?;
    let pid = child.id();
    let mut log = match &spec.log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                let _ = tokio::fs::create_dir_all(dir).await;
            }
            tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.ok()
        }
        None => None,
    };
    let mut streams: [Option<Box<dyn AsyncRead + Unpin + Send>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>),
    ];
    let mut collector = Collector::default();
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let mut bufs = [vec![0u8; 8192], vec![0u8; 8192]];
    enum End {
        Exited(std::io::Result<ExitStatus>),
        Timeout,
        Cancelled,
    }
    // The command's end is its exit, not the end of its output: a process it started in the
    // background (`daemon &`) can hold stdout open long after the command is done.
    let mut exited: Option<std::io::Result<ExitStatus>> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut left_holding_output = false;
    let end = loop {
        if let Some(status) = exited.take_if(|_| streams.iter().all(Option::is_none)) {
            break End::Exited(status);
        }
        let [b0, b1] = &mut bufs;
        let [s0, s1] = &mut streams;
        let read0 = async {
            match s0 {
                Some(s) => s.read(b0).await,
                None => std::future::pending().await,
            }
        };
        let read1 = async {
            match s1 {
                Some(s) => s.read(b1).await,
                None => std::future::pending().await,
            }
        };
        // A first stop request leaves the command to finish (an upgrade cut short leaves a
        // node half-done); only an abort ends it.
        let cancelled = cancel.kill_requested();
        let running = exited.is_none();
        tokio::select! {
            r = read0 => match r {
                Ok(0) | Err(_) => streams[0] = None,
                Ok(n) => {
                    if let Some(f) = &mut log { let _ = f.write_all(&bufs[0][..n]).await; }
                    collector.feed(0, &bufs[0][..n], on_line);
                }
            },
            r = read1 => match r {
                Ok(0) | Err(_) => streams[1] = None,
                Ok(n) => {
                    if let Some(f) = &mut log { let _ = f.write_all(&bufs[1][..n]).await; }
                    collector.feed(1, &bufs[1][..n], on_line);
                }
            },
            status = child.wait(), if running => {
                exited = Some(status);
                drain_until = Some((tokio::time::Instant::now() + PIPE_GRACE).min(deadline));
            }
            _ = tokio::time::sleep_until(drain_until.unwrap_or(deadline)), if !running => {
                left_holding_output = true;
                break End::Exited(exited.take().unwrap_or_else(|| Err(std::io::Error::other("no exit status"))));
            }
            _ = tokio::time::sleep_until(deadline), if running => break End::Timeout,
            _ = cancelled, if running => break End::Cancelled,
        }
    };
    if left_holding_output {
        // Not killed: the command succeeded or failed on its own, and what it started in the
        // background may be what it was asked to start.
        tracing::warn!(%program, "the command exited; a process it left running still holds its output, which is no longer read");
        collector.feed(
            1,
            b"(the command exited, but a process it started still holds its output open; that output is not read)\n",
            on_line,
        );
    }
    if matches!(end, End::Timeout | End::Cancelled) {
        signal_group(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
            signal_group(pid, rustix::process::Signal::KILL);
            let _ = child.wait().await;
        }
        // Whatever the group still holds open is not waited for.
    }
    if let Some(f) = &mut log {
        let _ = f.flush().await;
    }
    let output = collector.finish(on_line);
    let program = program.clone();
    let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    match &end {
        End::Exited(Ok(status)) => tracing::info!(%program, %status, seconds, "command finished"),
        End::Exited(Err(e)) => tracing::info!(%program, error = %e, seconds, "command could not be waited for"),
        End::Timeout => tracing::info!(%program, seconds, "command timed out"),
        End::Cancelled => tracing::info!(%program, seconds, "command stopped on request"),
    }
    match end {
        End::Timeout => Err(CommandError::Timeout { program, after: spec.timeout, output }),
        End::Cancelled => Err(CommandError::Cancelled { program, output }),
        End::Exited(Err(e)) => Err(CommandError::Spawn { program, message: e.to_string() }),
        End::Exited(Ok(status)) if status.success() => Ok(output),
        End::Exited(Ok(status)) => Err(CommandError::Failed { program, status: status.to_string(), output }),
    }
}

/// Splits an argv flag like a shell would tokenize it (quotes group words), with no shell.
pub fn split_argv(text: &str) -> Option<Vec<String>> {
    shlex::split(text).filter(|v| !v.is_empty())
}

/// Quotes an argument for showing in a command to copy.
pub fn quote(arg: &str) -> String {
    shlex::try_quote(arg).map(|c| c.into_owned()).unwrap_or_else(|_| arg.replace('\0', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, timeout: Duration) -> CommandSpec {
        CommandSpec { argv: vec!["sh".into(), "-c".into(), script.into()], env: vec![], timeout, log_file: None }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn a_chatty_stderr_does_not_block_and_memory_stays_bounded() {
        // 3.5 MB on stderr before anything on stdout: a reader that waits for stdout first
        // deadlocks here.
        let s = spec(
            "i=0; while [ $i -lt 65536 ]; do echo 'stderr line of sixty-four bytes ......................' >&2; i=$((i+1)); done; echo done",
            Duration::from_secs(60),
        );
        let out = rt().block_on(run(&s, &Cancel::new(), &|_| {})).unwrap();
        assert!(out.bytes > 3_500_000, "{}", out.bytes);
        assert_eq!(out.head.len() + out.tail.len(), HEAD_LINES + TAIL_LINES);
        assert!(out.omitted > 60_000);
        // The run reached stdout's last line (its byte count is in); where that line lands among
        // the stderr lines read from the other pipe, or whether the bounded tail still holds
        // it, depends on scheduling.
        assert_eq!(out.bytes, 65_536 * 55 + 5, "every byte of both pipes was read (55 per stderr line, 5 for done)");
    }

    #[test]
    fn a_timeout_ends_the_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("k8s-upgrade-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("grandchild-alive");
        // The grandchild would write the marker after 3 s if it survived its group.
        let script = format!("(sleep 3; touch {}) & sleep 30", marker.display());
        let s = spec(&script, Duration::from_millis(300));
        let t = tokio::time::Instant::now();
        let e = rt().block_on(run(&s, &Cancel::new(), &|_| {})).unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(3500));
        assert!(!marker.exists(), "a grandchild outlived the timeout");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_command_that_exits_is_done_even_when_its_background_child_holds_the_output_d5() {
        let s = spec("sleep 30 & echo upgraded; exit 0", Duration::from_secs(20));
        let t = tokio::time::Instant::now();
        let out = rt().block_on(run(&s, &Cancel::new(), &|_| {})).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "waited for the background child: {:?}", t.elapsed());
        assert!(out.head.iter().any(|l| l == "upgraded"), "{out:?}");
        assert!(out.last_line().is_some_and(|l| l.contains("still holds its output open")), "{out:?}");
        // Its exit status still counts.
        let e = rt().block_on(run(&spec("sleep 30 & exit 4", Duration::from_secs(20)), &Cancel::new(), &|_| {}));
        assert!(e.unwrap_err().to_string().contains("exit status: 4"));
        // Output written just before the exit is all read.
        let out =
            rt().block_on(run(&spec("seq 1 20000; exit 0", Duration::from_secs(20)), &Cancel::new(), &|_| {})).unwrap();
        assert_eq!(out.last_line(), Some("20000"));
    }

    #[test]
    fn a_stop_leaves_an_upgrade_running_and_an_abort_ends_it() {
        let rt = rt();
        let cancel = Cancel::new();
        cancel.escalate();
        let out = rt.block_on(run(&spec("sleep 0.2; echo finished", Duration::from_secs(10)), &cancel, &|_| {}));
        assert_eq!(out.unwrap().last_line(), Some("finished"));
        cancel.escalate();
        let e = rt.block_on(run(&spec("sleep 10", Duration::from_secs(30)), &cancel, &|_| {})).unwrap_err();
        assert!(matches!(e, CommandError::Cancelled { .. }), "{e}");
    }

    #[test]
    fn a_failure_names_the_status_and_the_last_line_and_argv_splits_like_a_shell() {
        let e = rt().block_on(run(&spec("echo oops >&2; exit 3", Duration::from_secs(5)), &Cancel::new(), &|_| {}));
        let text = e.unwrap_err().to_string();
        assert!(text.contains("exit status: 3") && text.contains("(stderr) oops"), "{text}");
        assert_eq!(
            split_argv(r#"ssh n "sudo kubeadm upgrade node""#).unwrap(),
            vec!["ssh", "n", "sudo kubeadm upgrade node"]
        );
        assert!(split_argv("  ").is_none());
        assert_eq!(humanize(Duration::from_secs(5400)), "1h30m");
        assert_eq!(quote("it's"), r#""it's""#);
    }
}
