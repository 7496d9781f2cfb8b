//! How many threads the matrix products use.
//!
//! With the default `threading` feature, `ndarray`'s matrix products (matrixmultiply) split
//! each product over up to 4 threads, by default one per physical core. Each thread writes
//! its own block of the output and the inner sums run in the same order whatever the
//! thread count, so results are identical bit for bit for any number of threads.
//! With the `blas` feature the products run in OpenBLAS, whose thread count
//! [`set_threads`] sets through `openblas_set_num_threads`.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{check_range, Result};

/// The most threads matrixmultiply uses.
pub const MAX_THREADS: usize = 4;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads matrix products use, `1..=`[`MAX_THREADS`].
///
/// matrixmultiply reads its setting (the `MATMUL_NUM_THREADS` environment variable, which
/// this function sets) once, at the first matrix product of the process: call this at the
/// start of `main`, before any training or inference and before starting other threads.
/// Setting `MATMUL_NUM_THREADS` in the environment does the same without code.
///
/// ```
/// autoencoder::set_threads(1)?;
/// # Ok::<(), autoencoder::Error>(())
/// ```
///
/// # Errors
/// [`crate::Error::InvalidHyperparameter`] unless `1 <= n <= 4`.
pub fn set_threads(n: usize) -> Result<()> {
    check_range(
        "threads",
        n as f64,
        (1..=MAX_THREADS).contains(&n),
        "a whole number in [1, 4]",
    )?;
    std::env::set_var("MATMUL_NUM_THREADS", n.to_string());
    REQUESTED.store(n, Ordering::Relaxed);
    #[cfg(feature = "blas")]
    // SAFETY: OpenBLAS's documented setter; it takes any positive count.
    unsafe {
        openblas_set_num_threads(n as std::os::raw::c_int)
    };
    Ok(())
}

#[cfg(feature = "blas")]
extern "C" {
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn openblas_get_num_threads() -> std::os::raw::c_int;
}

/// The number of threads matrix products use (or will use): the value given to
/// [`set_threads`], else `MATMUL_NUM_THREADS`, else the number of cores, capped at
/// [`MAX_THREADS`]; always 1 without the `threading` feature. With `blas`, OpenBLAS's own
/// count.
///
/// ```
/// let n = autoencoder::threads();
/// assert!((1..=autoencoder::MAX_THREADS).contains(&n) || cfg!(feature = "blas"));
/// ```
pub fn threads() -> usize {
    #[cfg(feature = "blas")]
    {
        // SAFETY: OpenBLAS's documented getter, no arguments.
        return unsafe { openblas_get_num_threads() }.max(1) as usize;
    }
    #[allow(unreachable_code)]
    if !cfg!(feature = "threading") {
        return 1;
    }
    let n = match REQUESTED.load(Ordering::Relaxed) {
        0 => std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    };
    n.clamp(1, MAX_THREADS)
}
