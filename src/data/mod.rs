//! Data: the IDX reader ([`idx`]), `.npy` files ([`npy`]: read, write, memory-mapped), CSV
//! ([`csv`]: numbers with a header and a label column), [`RowSource`]s for training from
//! anywhere, incl. `.npy` files larger than memory ([`NpyRows`], [`NpyShards`]), MNIST
//! ([`mnist`], [`Mnist`]), dataset helpers (split,
//! shuffle, scale, batch), corruption for denoising, and the checks shared by every entry
//! point.

use ndarray::ArrayView2;

use crate::error::{Error, Result};
use crate::float::Float;

pub mod csv;
mod dataset;
pub mod idx;
pub mod mnist;
pub(crate) mod noise;
pub mod npy;
mod npy_rows;
pub(crate) mod source;

pub use dataset::{batches, permutation, shuffle_rows, Batches, Order, Scaler, Scaling, Split};
pub use mnist::Mnist;
pub use noise::{corrupt, Noise};
pub use npy_rows::{NpyRows, NpyShards};
pub use source::RowSource;

/// The one data check: `x` has rows and columns, `width` columns if given, and only
/// finite values; `context` names the data in the error.
pub(crate) fn check_rows<T: Float>(
    x: ArrayView2<T>,
    width: Option<usize>,
    context: &'static str,
) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::EmptyData {
            context,
            rows: x.nrows(),
            cols: x.ncols(),
        });
    }
    if let Some(n) = width {
        check_width(x, n, context)?;
    }
    check_finite(x, context)
}

/// Checks that `x` has `n` columns.
pub(crate) fn check_width<T>(x: ArrayView2<T>, n: usize, context: &'static str) -> Result<()> {
    if x.ncols() == n {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            context,
            expected: format!("(_, {n})"),
            found: format!("{:?}", x.dim()),
        })
    }
}

/// Checks that every value of `x` is finite; the error names the first that is not.
pub(crate) fn check_finite<T: Float>(x: ArrayView2<T>, context: &'static str) -> Result<()> {
    // Fast path: one branch-free pass (a logical AND, so it vectorizes, unlike a float
    // sum); locate the culprit only on failure.
    let all_finite = match x.as_slice_memory_order() {
        Some(s) => s.iter().fold(true, |ok, v| ok & v.is_finite()),
        None => x.iter().fold(true, |ok, v| ok & v.is_finite()),
    };
    if all_finite {
        return Ok(());
    }
    for ((row, col), &v) in x.indexed_iter() {
        if !v.is_finite() {
            return Err(Error::NonFiniteData {
                context,
                row,
                col,
                value: v.as_f64(),
            });
        }
    }
    Ok(())
}

/// `(min, max)` over all elements of `x`; `(0, 0)` for an empty array.
pub(crate) fn value_range<T: Float>(x: ArrayView2<T>) -> (T, T) {
    let mut it = x.iter().copied();
    let Some(first) = it.next() else {
        return (T::zero(), T::zero());
    };
    it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The power of two `2^e` with `2^e <= m < 2^(e + 1)`, for finite `m > 0` (subnormal
/// included), read off the bits; 1 for `m = 0`. Dividing by it is exact (short of
/// underflow), so data divided by the power of two below their largest `|x|` lie in
/// `(-2, 2)`, where sums and squares cannot overflow, and give the same bits, scaled.
pub(crate) fn power_of_two_below(m: f64) -> f64 {
    let bits = m.to_bits();
    match (bits >> 52) & 0x7ff {
        _ if m == 0.0 => 1.0,
        0 => f64::from_bits(1 << (63 - bits.leading_zeros())), // subnormal: its top bit
        exponent => f64::from_bits(exponent << 52),
    }
}
