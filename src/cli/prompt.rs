//! Questions on the terminal: the executor's [`Operator`], and the confirmations `apply` asks
//! before it starts. One question at a time, with the progress bars out of the way; a stop
//! request (Ctrl-C, SIGTERM, SIGHUP) cancels an open question instead of waiting for Enter.

use std::io::Write;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::report::Reporter;
use crate::exec::{Answer, Cancel, Operator, Question};

pub struct TerminalOperator {
    reporter: Arc<Reporter>,
    cancel: Cancel,
    /// One question at a time: two nodes stuck at once must not read the same answer.
    asking: tokio::sync::Mutex<()>,
}

impl TerminalOperator {
    pub fn new(reporter: Arc<Reporter>, cancel: Cancel) -> TerminalOperator {
        TerminalOperator { reporter, cancel, asking: tokio::sync::Mutex::new(()) }
    }
}

/// Prints `prompt` and reads a line, or `None` once a stop is requested.
pub async fn read_answer(prompt: String, cancel: &Cancel) -> Option<String> {
    let read = tokio::task::spawn_blocking(move || {
        eprint!("{} ", super::printable::printable(&prompt));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        answer
    });
    tokio::select! {
        a = read => Some(a.unwrap_or_default()),
        _ = cancel.stop_requested() => {
            // The blocked read is left behind; the process ends before it matters.
            eprintln!();
            None
        }
    }
}

/// A yes/no question; no is the default. `None` once a stop is requested.
pub async fn confirm(question: &str, cancel: &Cancel) -> Option<bool> {
    read_answer(format!("{question} [y/N]"), cancel).await.map(|a| matches!(a.trim(), "y" | "Y" | "yes"))
}

impl Operator for TerminalOperator {
    fn ask(&self, question: Question) -> BoxFuture<'_, Answer> {
        Box::pin(async move {
            let _one = self.asking.lock().await;
            if self.cancel.is_stop_requested() {
                return Answer::Cancelled;
            }
            self.reporter.hide();
            let answer = if question.is_choice() {
                match read_answer(question.text(), &self.cancel).await {
                    None => Answer::Cancelled,
                    Some(a) => match a.trim().chars().next().map(|c| c.to_ascii_lowercase()) {
                        Some('w') => Answer::Wait,
                        Some('s') => Answer::Skip,
                        _ => Answer::Abort,
                    },
                }
            } else {
                match confirm(&question.text(), &self.cancel).await {
                    None => Answer::Cancelled,
                    Some(true) => Answer::Yes,
                    Some(false) => Answer::No,
                }
            };
            self.reporter.show();
            answer
        })
    }

    fn attended(&self) -> bool {
        true
    }
}
