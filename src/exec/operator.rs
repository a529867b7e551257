//! The questions a run asks the person running it, behind a trait: the terminal prompt lives in
//! `cli`, tests answer with a closure, and an unattended run (`--yes`) has its own fixed policy.
//! An answer may be [`Answer::Cancelled`] when a stop was requested while the question was open.

use futures::future::BoxFuture;

use crate::version::Version;

#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    /// Before the first node of a control-plane hop.
    ControlPlaneHop { target: Version },
    /// After the canary of a node roll, before the batches.
    AfterCanary { canary: Vec<String>, skipped: Vec<String>, batch_size: usize },
    /// A drain that cannot finish. `can_wait` is false when waiting cannot help.
    StuckDrain { node: String, error: String, pods: usize, can_wait: bool, quarantine_label: String },
    /// Something only the operator can do; asked whether it is done.
    OperatorStep { what: String },
}

impl Question {
    /// The question as one text (prompts add their own answer hints).
    pub fn text(&self) -> String {
        match self {
            Question::ControlPlaneHop { target } => format!("Upgrade the control plane to {target}?"),
            Question::AfterCanary { canary, skipped, batch_size } if skipped.is_empty() => {
                format!(
                    "Canary {} is done and healthy. Continue with batches of up to {batch_size}?",
                    canary.join(", ")
                )
            }
            Question::AfterCanary { skipped, batch_size, .. } => format!(
                "Canary {} was skipped and quarantined, not upgraded. Continue with batches of up to {batch_size} anyway?",
                skipped.join(", ")
            ),
            Question::StuckDrain { node, error, pods, can_wait, quarantine_label } => format!(
                "{error}\nDrain of {node} is stuck ({pods} pod{}). {}[s]kip this node (it stays cordoned and is labelled {quarantine_label}), or [a]bort?",
                if *pods == 1 { "" } else { "s" },
                if *can_wait { "[w]ait again, " } else { "" }
            ),
            Question::OperatorStep { what } => format!("Operator step: {what}\nIs it done?"),
        }
    }

    /// Whether the question is a choice of letters rather than yes/no.
    pub fn is_choice(&self) -> bool {
        matches!(self, Question::StuckDrain { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Wait,
    Skip,
    Abort,
    /// A stop was requested while the question was open.
    Cancelled,
}

pub trait Operator: Send + Sync {
    /// Asks one question; implementations ask one at a time.
    fn ask(&self, question: Question) -> BoxFuture<'_, Answer>;

    /// Whether a person answers (false for `--yes`).
    fn attended(&self) -> bool;
}

/// `--yes`: confirmations are yes; a stuck drain quarantines the node and stops the run (a
/// person should look before more nodes go); operator steps are not assumed done (the run
/// checks the cluster before the hop that needs them instead).
pub struct Unattended;

impl Operator for Unattended {
    fn ask(&self, question: Question) -> BoxFuture<'_, Answer> {
        Box::pin(async move {
            match question {
                Question::ControlPlaneHop { .. } | Question::AfterCanary { .. } => Answer::Yes,
                Question::StuckDrain { .. } => Answer::Abort,
                Question::OperatorStep { .. } => Answer::No,
            }
        })
    }

    fn attended(&self) -> bool {
        false
    }
}

/// Answers from a function, for tests.
pub struct Scripted<F>(pub F);

impl<F: Fn(&Question) -> Answer + Send + Sync> Operator for Scripted<F> {
    fn ask(&self, question: Question) -> BoxFuture<'_, Answer> {
        let a = (self.0)(&question);
        Box::pin(async move { a })
    }

    fn attended(&self) -> bool {
        true
    }
}
