//! The memory budget: every buffer whose size comes from a caller or a file is checked here,
//! with checked arithmetic, before it is allocated.
//!
//! One limit applies to each single buffer the crate allocates on a caller's behalf (a
//! layer's weights, a batch of codes or samples, a covariance matrix, a permutation, the
//! decompressed contents of a data file): by default [`DEFAULT_MEMORY_LIMIT`] (4 GiB), set
//! with [`set_memory_limit`]. A request over it is [`Error::TooLarge`], naming what was asked
//! and how many bytes, in release and debug builds alike; an overflowing size is the same
//! error, never a wrap or a panic.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{check_range, Error, Result};

/// The default limit on one buffer: 4 GiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

static LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_MEMORY_LIMIT);

/// Sets the limit, in bytes, on any one buffer the crate allocates from a size given by a
/// caller or read from a file (for the whole process; default [`DEFAULT_MEMORY_LIMIT`]).
///
/// ```
/// use autoencoder::{set_memory_limit, Activation, Autoencoder, Error, DEFAULT_MEMORY_LIMIT};
/// # use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// // A 2^20 x 2^20 weight matrix (8 TiB of f64) is refused before anything is allocated.
/// let huge = Autoencoder::<f64>::builder(1 << 20).latent(1 << 20, Activation::Relu).build(&mut rng);
/// assert!(matches!(huge, Err(Error::TooLarge { .. })));
/// set_memory_limit(DEFAULT_MEMORY_LIMIT)?; // the default, unchanged
/// # Ok::<(), Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for 0.
pub fn set_memory_limit(bytes: u64) -> Result<()> {
    check_range("memory limit", bytes as f64, bytes >= 1, "at least 1 byte")?;
    LIMIT.store(bytes, Ordering::Relaxed);
    Ok(())
}

/// The limit in force on one buffer, in bytes; see [`set_memory_limit`].
pub fn memory_limit() -> u64 {
    LIMIT.load(Ordering::Relaxed)
}

/// Checks a buffer of `shape` with elements of `element_bytes` bytes against the limit and
/// returns its number of elements.
///
/// # Errors
/// [`Error::TooLarge`] if the size overflows or exceeds [`memory_limit`].
pub(crate) fn check_buffer(
    what: &'static str,
    shape: &[usize],
    element_bytes: usize,
) -> Result<usize> {
    let limit = memory_limit();
    let elements = shape
        .iter()
        .try_fold(1u128, |n, &d| n.checked_mul(d as u128));
    let bytes = elements.and_then(|n| n.checked_mul(element_bytes as u128));
    match (elements, bytes) {
        (Some(n), Some(b)) if b <= u128::from(limit) && n <= isize::MAX as u128 => Ok(n as usize),
        _ => Err(Error::TooLarge {
            what,
            shape: shape.to_vec(),
            element_bytes,
            bytes,
            limit,
        }),
    }
}

/// [`check_buffer`] for elements of type `T`.
pub(crate) fn check_elements<T>(what: &'static str, shape: &[usize]) -> Result<usize> {
    check_buffer(what, shape, std::mem::size_of::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_without_overflow() {
        assert_eq!(check_elements::<f64>("x", &[3, 4]).ok(), Some(12));
        assert_eq!(check_elements::<f64>("x", &[0, usize::MAX]).ok(), Some(0));
        for shape in [
            &[usize::MAX, 2][..],
            &[1 << 40, 1 << 40],
            &[usize::MAX, usize::MAX, usize::MAX],
        ] {
            match check_elements::<f32>("weights", shape) {
                Err(Error::TooLarge {
                    what, bytes, limit, ..
                }) => {
                    assert_eq!(what, "weights");
                    assert!(bytes.is_none_or(|b| b > u128::from(limit)));
                }
                other => panic!("{shape:?}: {other:?}"),
            }
        }
        let err = check_elements::<f64>("layer 0 weights", &[1 << 20, 1 << 20]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("layer 0 weights") && message.contains("8796093022208 bytes"),
            "{message}"
        );
    }
}
