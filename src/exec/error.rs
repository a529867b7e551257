//! Why a run stopped, typed. The executor never picks an exit code; `cli` maps each variant to
//! the documented one.

use super::journal::JournalError;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A gate, a drain, a node or a blocker stopped the run; the cluster needs a look first.
    #[error("{0}")]
    Blocked(String),
    /// The maintenance window would close before the next node could finish.
    #[error("{0}")]
    WindowClosing(String),
    /// A stop was requested (Ctrl-C, SIGTERM, SIGHUP) and the run stopped at a safe point.
    #[error("{0}")]
    Interrupted(String),
    /// The operator answered no.
    #[error("{0}")]
    Declined(String),
    /// Another run took the cluster lock.
    #[error("{0}")]
    LockLost(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Anything else: an API error, a command that cannot start.
    #[error("{0}")]
    Failed(String),
}

impl ExecError {
    /// Whether the step stays to be run again by `--resume` (as opposed to failed).
    pub fn resumable(&self) -> bool {
        matches!(
            self,
            ExecError::WindowClosing(_) | ExecError::Interrupted(_) | ExecError::Declined(_) | ExecError::LockLost(_)
        )
    }
}
