//! The crate's one error type. Errors are values: bad input is refused with a message a learner
//! can act on, before it touches any state; at the JS boundary each becomes a readable `Error`.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum LabError {
    /// A setting is outside what the lab accepts. `field` is the dotted name the page shows.
    InvalidSetting { field: String, message: String },
    /// Input data (labels, prompts, tokens) is malformed.
    InvalidInput(String),
    /// A checkpoint could not be read or does not fit this model.
    Checkpoint(String),
    /// The compute device failed or is missing something the lab needs.
    Device(String),
    /// A loss, gradient, reward or advantage stopped being a finite number.
    NumericalFault { stage: String, step: usize, quantity: String },
    /// A stage was asked to run before what it needs exists (e.g. PPO before a reward model).
    NotReady(String),
}

impl LabError {
    pub fn setting(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidSetting { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSetting { field, message } => write!(f, "{field}: {message}"),
            Self::InvalidInput(message) => write!(f, "invalid input: {message}"),
            Self::Checkpoint(message) => write!(f, "checkpoint refused: {message}"),
            Self::Device(message) => write!(f, "device error: {message}"),
            Self::NumericalFault { stage, step, quantity } => write!(
                f,
                "{stage} step {step}: {quantity} is not a finite number; training paused and the \
                 model rolled back to the last good step"
            ),
            Self::NotReady(message) => write!(f, "not ready: {message}"),
        }
    }
}

impl std::error::Error for LabError {}

pub type Result<T> = std::result::Result<T, LabError>;

/// Refuses a value that is not finite or lies outside [min, max], naming its field.
pub(crate) fn finite_in(field: &str, value: f64, min: f64, max: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(LabError::setting(field, format!("must be a finite number (got {value})")));
    }
    if value < min || value > max {
        return Err(LabError::setting(field, format!("must be between {min} and {max} (got {value})")));
    }
    Ok(())
}

/// Refuses a count outside [min, max], naming its field.
pub(crate) fn count_in(field: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if value < min || value > max {
        return Err(LabError::setting(field, format!("must be a whole number from {min} to {max} (got {value})")));
    }
    Ok(())
}
