//! Cancellation as data. The first request (Ctrl-C, SIGTERM, SIGHUP) asks the run to stop at
//! the next safe point: the node in flight finishes, its upgrade command is left to complete.
//! The second aborts: waits end at once and running commands are killed with their process
//! group. Both are cancellation tokens, so every await point can select on them.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelLevel {
    /// Stop at the next safe point.
    Stop,
    /// Stop now.
    Abort,
}

#[derive(Debug, Clone)]
pub struct Cancel {
    abort: CancellationToken,
    /// A child of `abort`: aborting also stops.
    stop: CancellationToken,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        let abort = CancellationToken::new();
        let stop = abort.child_token();
        Cancel { abort, stop }
    }

    /// One more request: the first stops at a safe point, any later one aborts.
    pub fn escalate(&self) -> CancelLevel {
        if self.stop.is_cancelled() {
            self.abort.cancel();
            CancelLevel::Abort
        } else {
            self.stop.cancel();
            CancelLevel::Stop
        }
    }

    pub fn is_stop_requested(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub fn is_abort_requested(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Resolves once a stop (or an abort) is requested.
    pub async fn stop_requested(&self) {
        self.stop.cancelled().await;
    }

    /// Resolves once an abort is requested.
    pub async fn abort_requested(&self) {
        self.abort.cancelled().await;
    }

    /// The token that fires on the first request (for prompts, which end at either).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_stops_and_the_second_aborts() {
        let c = Cancel::new();
        assert!(!c.is_stop_requested() && !c.is_abort_requested());
        assert_eq!(c.escalate(), CancelLevel::Stop);
        assert!(c.is_stop_requested() && !c.is_abort_requested());
        assert_eq!(c.clone().escalate(), CancelLevel::Abort);
        assert!(c.is_abort_requested());
    }
}
