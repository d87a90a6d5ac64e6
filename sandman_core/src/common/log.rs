//! Log levels for lines the core sends to Python's `uvicorn.error` logger.

/// Severity of a log line raised in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `logging.DEBUG`
    Debug,
    /// `logging.INFO`
    Info,
    /// `logging.WARNING`
    Warning,
    /// `logging.ERROR`
    Error,
}

impl Level {
    /// The numeric level of Python's `logging` module.
    pub fn as_python(self) -> i32 {
        match self {
            Level::Debug => 10,
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
        }
    }
}
