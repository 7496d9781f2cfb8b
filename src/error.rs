//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Each variant says what was wrong, where, and (for ranges) what was allowed, so the
/// message alone is enough to fix the call. The enum is `#[non_exhaustive]`: new failure
/// kinds may be added without a major version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter is outside its allowed range (NaN is always outside).
    #[error("invalid hyperparameter `{name}` = {value}: expected {expected}")]
    InvalidHyperparameter {
        /// Name of the hyperparameter, as spelled in the builder method.
        name: &'static str,
        /// The value that was given, formatted.
        value: String,
        /// The allowed range, in words (e.g. `"a value in (0, 1)"`).
        expected: &'static str,
    },
    /// A combination of settings that cannot work together, e.g. a binary cross-entropy
    /// loss on a model whose output layer is not a sigmoid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An array did not have the shape its role requires.
    #[error("shape mismatch in {context}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What was being checked, e.g. `"encode input"`.
        context: &'static str,
        /// The expected shape, e.g. `"(_, 784)"`.
        expected: String,
        /// The shape that was passed, e.g. `"(100, 785)"`.
        found: String,
    },
    /// A data set had no rows or no columns.
    #[error("empty data in {context}: shape {rows} x {cols}")]
    EmptyData {
        /// Which data set, e.g. `"training data"`.
        context: &'static str,
        /// Number of rows passed.
        rows: usize,
        /// Number of columns passed.
        cols: usize,
    },
    /// A data set contained NaN or an infinity.
    #[error("non-finite value {value} in {context} at row {row}, column {col}")]
    NonFiniteData {
        /// Which data set, e.g. `"validation data"`.
        context: &'static str,
        /// Row of the first non-finite value.
        row: usize,
        /// Column of the first non-finite value.
        col: usize,
        /// The value itself (NaN, inf or -inf).
        value: f64,
    },
    /// Training produced a non-finite loss or gradient. The model keeps its last finite
    /// weights.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: {what} is {value}; \
         the model keeps its last finite weights (try a smaller learning rate or gradient clipping)"
    )]
    Diverged {
        /// Epoch (counted from 0) in which it happened.
        epoch: usize,
        /// Batch within the epoch (counted from 0).
        batch: usize,
        /// What became non-finite: `"loss"` or `"gradient norm"`.
        what: &'static str,
        /// The non-finite value.
        value: f64,
    },
    /// An operating-system error while reading or writing a file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `"cannot open"`.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file was written by a newer version of this crate, in a format version this
    /// build cannot read.
    #[error(
        "{path} has format version {found}, but this build reads versions up to {supported}: \
         upgrade the autoencoder crate to load it"
    )]
    UnsupportedVersion {
        /// The file concerned.
        path: PathBuf,
        /// The file's format version.
        found: u64,
        /// The newest version this build reads ([`crate::FORMAT_VERSION`]).
        supported: u32,
    },
    /// A file holds weights of another element type than the one asked for.
    #[error(
        "{path} holds {found} weights but the model type is {expected}: load it as \
         Autoencoder::<{found}>, or convert explicitly with Autoencoder::<{expected}>::load_converted"
    )]
    ElementType {
        /// The file concerned.
        path: PathBuf,
        /// The file's element type, `"f32"` or `"f64"`.
        found: String,
        /// The element type asked for.
        expected: &'static str,
    },
    /// A file was read but its contents are not what they must be.
    #[error("malformed file {path}: {reason}")]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong and, where possible, what to do about it.
        reason: String,
    },
    /// Data files the program needs were not found (and could not be downloaded). The
    /// message lists the files, where to put them and where to get them.
    #[error("{what}\n{help}")]
    MissingData {
        /// Which files are missing and where they were looked for.
        what: String,
        /// What to do: where to put the files and where to get them.
        help: String,
    },
    /// A buffer the crate was asked to allocate is larger than the memory limit
    /// ([`crate::memory_limit`], raised with [`crate::set_memory_limit`]), or its size does
    /// not even fit the machine's integers. Checked before anything is allocated.
    #[error(
        "{what} of shape {shape:?} would take {} of {} bytes each, over the memory limit of {limit} \
         bytes; use smaller sizes, or raise the limit with autoencoder::set_memory_limit if the \
         machine has the memory",
        show_bytes(*.bytes),
        element_bytes
    )]
    TooLarge {
        /// What was asked for, e.g. `"layer 1 weights"`.
        what: &'static str,
        /// Its shape, as asked.
        shape: Vec<usize>,
        /// Bytes per element.
        element_bytes: usize,
        /// The bytes it needs, `None` if the count overflows 128 bits.
        bytes: Option<u128>,
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// A file's header claims more data than the memory limit allows
    /// ([`crate::memory_limit`], raised with [`crate::set_memory_limit`]), as raw bytes or
    /// as the array they become. Checked after the header, before any data are read.
    #[error(
        "{path}: its header claims {what} of shape {shape:?}, which would take {} of {} bytes \
         each, over the memory limit of {limit} bytes; if the file is genuine and the machine has \
         the memory, raise the limit with autoencoder::set_memory_limit, otherwise the header is \
         corrupt: download the file again",
        show_bytes(*.bytes),
        element_bytes
    )]
    FileTooLarge {
        /// The file concerned.
        path: PathBuf,
        /// What would be allocated, e.g. `"f32 pixels"`.
        what: &'static str,
        /// Its shape, as the header gives it.
        shape: Vec<usize>,
        /// Bytes per element.
        element_bytes: usize,
        /// The bytes it needs, `None` if the count overflows 128 bits.
        bytes: Option<u128>,
        /// The limit in force, in bytes.
        limit: u64,
    },
    /// Finite data whose result cannot be represented in the element type: a column range
    /// or variance past `f64::MAX`, a scaled value past `f32::MAX`, a gain that rounds to 0.
    /// Refused rather than returned as an infinity, a NaN or a 0 that cannot be inverted.
    #[error("{context}: {reason}")]
    Unrepresentable {
        /// What was being computed, e.g. `"Scaler::transform output"`.
        context: &'static str,
        /// Which value (row, column or component), what it came to, and what to do.
        reason: String,
    },
    /// A picture or plot could not be drawn (feature `viz`).
    #[error("cannot draw {what}: {reason}")]
    Plot {
        /// Which picture, e.g. `"loss curves"`.
        what: &'static str,
        /// What the drawing library reported.
        reason: String,
    },
    /// In a distributed run ([`crate::Trainer::distributed`]), a process failed (a read
    /// error or bad value in its rows, a checkpoint it could not write): every process
    /// stops with this same error, naming the lowest-numbered rank that failed and its
    /// error's message. (A divergence is seen by every rank at once, on the summed
    /// gradient, and stays [`Error::Diverged`].)
    #[error("rank {rank} of the distributed run failed: {message}")]
    RankFailed {
        /// The rank (process number, from 0) whose error stopped the run.
        rank: usize,
        /// That rank's error, as text (cut to 1000 bytes).
        message: String,
    },
}

/// `"N bytes"`, or a phrase for a size past 128 bits.
fn show_bytes(bytes: Option<u128>) -> String {
    match bytes {
        Some(b) => format!("{b} bytes"),
        None => "more than 2^128 bytes".into(),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::TooLarge`] made while reading the file at `path` becomes
    /// [`Error::FileTooLarge`] naming it; any other error is returned as it is.
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Error::TooLarge {
                what,
                shape,
                element_bytes,
                bytes,
                limit,
            } => Error::FileTooLarge {
                path: path.to_path_buf(),
                what,
                shape,
                element_bytes,
                bytes,
                limit,
            },
            other => other,
        }
    }

    /// Builds [`Error::InvalidHyperparameter`].
    pub(crate) fn hyper(
        name: &'static str,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Self {
        Error::InvalidHyperparameter {
            name,
            value: value.to_string(),
            expected,
        }
    }
}

/// Turns an "inside the range" test into a result. Callers write the test as inside
/// (`x > 0.0`, not `!(x <= 0.0)`), so NaN is rejected.
pub(crate) fn check_range(
    name: &'static str,
    value: f64,
    inside: bool,
    expected: &'static str,
) -> Result<()> {
    if inside {
        Ok(())
    } else {
        Err(Error::hyper(name, value, expected))
    }
}

/// `value > 0` and finite.
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<()> {
    check_range(
        name,
        value,
        value > 0.0 && value.is_finite(),
        "a finite value > 0",
    )
}

/// `value >= 0` and finite.
pub(crate) fn check_non_negative(name: &'static str, value: f64) -> Result<()> {
    check_range(
        name,
        value,
        value >= 0.0 && value.is_finite(),
        "a finite value >= 0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
    }

    #[test]
    fn nan_is_outside_every_range() {
        assert!(check_positive("lr", f64::NAN).is_err());
        assert!(check_non_negative("lambda", f64::NAN).is_err());
        assert!(check_positive("lr", 1e-3).is_ok());
        assert!(check_non_negative("lambda", 0.0).is_ok());
    }
}
