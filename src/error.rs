//! One error type for the library, with the exit code the CLI maps it to.
//!
//! Every message names what the user has to look at: the spec file with line and column, the
//! data file with its row and field, or the path that could not be read or written.

use std::fmt::Display;

/// Errors of cotforge. `Spec` errors are the user's to fix in the YAML and exit with code 2;
/// everything else means the run failed (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline spec is malformed or names something that does not exist.
    #[error("{0}")]
    Spec(String),
    /// An input file cannot be used as configured (unreadable, wrong column type, ...).
    #[error("{0}")]
    Input(String),
    /// Reading or writing a path failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Anything else that stops a run.
    #[error("{0}")]
    Run(String),
}

impl Error {
    /// The process exit code for this error: 2 for spec or usage problems, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) => 2,
            _ => 1,
        }
    }

    pub fn io(context: impl Display, source: std::io::Error) -> Self {
        Error::Io { context: context.to_string(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a human-readable context (usually a path) to low-level errors.
pub trait Context<T> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, polars::error::PolarsError> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Run(format!("{}: {e}", context())))
    }
}

impl<T> Context<T> for std::result::Result<T, serde_json::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Run(format!("{}: {e}", context())))
    }
}
