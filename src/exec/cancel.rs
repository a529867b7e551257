//! Cancellation as data. The first request (Ctrl-C, SIGTERM, SIGHUP) asks the run to stop at
//! the next safe point: the node in flight finishes, its upgrade command is left to complete.
//! The second aborts: waits end at once and running commands are killed with their process
//! group. Between the two, a run that lost the cluster lock to someone else ends its waits at
//! once (it must not act beside the new holder) but lets a running upgrade command finish, as
//! killing one half-way can leave a node worse off than either run would. All are cancellation
//! tokens, so every await point can select on them.

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
    /// Kills running commands (and everything below).
    kill: CancellationToken,
    /// A child of `kill`: ends every wait at once.
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
        let kill = CancellationToken::new();
        let abort = kill.child_token();
        let stop = abort.child_token();
        Cancel { kill, abort, stop }
    }

    /// One more request: the first stops at a safe point, any later one aborts.
    pub fn escalate(&self) -> CancelLevel {
        if self.stop.is_cancelled() {
            self.kill.cancel();
            CancelLevel::Abort
        } else {
            self.stop.cancel();
            CancelLevel::Stop
        }
    }

    pub fn is_stop_requested(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// The cluster lock was lost: end every wait now, leave running commands to finish.
    pub fn end_waits(&self) {
        self.abort.cancel();
    }

    /// Whether waits must end now (an abort, or the lock lost).
    pub fn is_abort_requested(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Whether running commands must be killed (an abort only).
    pub fn is_kill_requested(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Resolves once running commands must be killed.
    pub async fn kill_requested(&self) {
        self.kill.cancelled().await;
    }

    /// Resolves once a stop (or an abort) is requested.
    pub async fn stop_requested(&self) {
        self.stop.cancelled().await;
    }

    /// Resolves once waits must end (an abort, or the lock lost).
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
        assert!(c.is_abort_requested() && c.is_kill_requested());
    }

    #[test]
    fn a_lost_lock_ends_waits_but_kills_nothing_until_a_second_request() {
        let c = Cancel::new();
        c.end_waits();
        assert!(c.is_stop_requested() && c.is_abort_requested() && !c.is_kill_requested());
        assert_eq!(c.escalate(), CancelLevel::Abort);
        assert!(c.is_kill_requested());
    }
}
