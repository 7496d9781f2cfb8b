//! Reconstruction losses, each with its gradient with respect to the output layer's
//! pre-activation `z` (the loss and the output activation are differentiated together, so
//! binary cross-entropy never takes `log(0)`).

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use serde::{Deserialize, Serialize};

use crate::compute::{
    for_each_block, lane_sum, lane_sum_buffered, row_blocks, row_blocks_mut, simd_dispatch,
    zip_blocks,
};
use crate::error::check_positive;
use crate::{Activation, Error, Float, Result};

/// A reconstruction loss `L(x, x^)` between a target batch `x` and a reconstruction `x^`,
/// both `(batch, n)`.
///
/// Every loss is a mean over the batch; "per element" losses also divide by `n`:
///
/// | variant | value, as computed |
/// | --- | --- |
/// | `MeanSquaredError` | `1/(batch n) sum (x - x^)^2` |
/// | `SumSquaredError` | `1/batch sum_rows ||x - x^||^2` (the source's `||x - x^||^2`, averaged over examples) |
/// | `BinaryCrossEntropy` | `1/(batch n) sum -(x ln x^ + (1 - x) ln(1 - x^))`, from logits |
/// | `BinaryCrossEntropySum` | `1/batch sum_rows sum_features -(x ln x^ + (1 - x) ln(1 - x^))` (nats per example, as in Kingma & Welling's VAE) |
/// | `MeanAbsoluteError` | `1/(batch n) sum |x - x^|` (subgradient 0 at 0) |
/// | `Huber(delta)` | `1/(batch n) sum h(x^ - x)`, `h(r) = r^2/2` if `|r| <= delta`, else `delta (|r| - delta/2)` |
///
/// Binary cross-entropy needs a [`Activation::Sigmoid`] output layer and targets in
/// `[0, 1]`: it is computed from the logits `z` as `max(z, 0) - z x + ln(1 + e^-|z|)`, and
/// its gradient with respect to `z` is `(sigmoid(z) - x) / (batch n)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Loss {
    /// Mean squared error over all elements.
    MeanSquaredError,
    /// Squared error summed over features, averaged over the batch.
    SumSquaredError,
    /// Binary cross-entropy, mean over all elements; sigmoid output, targets in `[0, 1]`.
    BinaryCrossEntropy,
    /// Binary cross-entropy summed over features, averaged over the batch.
    BinaryCrossEntropySum,
    /// Mean absolute error over all elements.
    MeanAbsoluteError,
    /// Huber loss with threshold `delta > 0`, mean over all elements.
    Huber(f64),
}

impl Loss {
    /// A short name, e.g. `"bce"`, for logs and files.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mse",
            Loss::SumSquaredError => "sse",
            Loss::BinaryCrossEntropy => "bce",
            Loss::BinaryCrossEntropySum => "bce-sum",
            Loss::MeanAbsoluteError => "mae",
            Loss::Huber(_) => "huber",
        }
    }

    /// Checks the loss's parameter and that it suits a model whose output layer has
    /// activation `output`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for binary cross-entropy without a sigmoid output;
    /// [`Error::InvalidHyperparameter`] for a Huber `delta` that is not finite and `> 0`.
    pub fn validate(&self, output: Activation) -> Result<()> {
        match *self {
            Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySum
                if output != Activation::Sigmoid =>
            {
                Err(Error::InvalidConfig(format!(
                "binary cross-entropy needs a sigmoid output layer (it is computed from logits), \
                 but the output activation is {output:?}; use .output(Activation::Sigmoid)"
            )))
            }
            Loss::Huber(delta) => check_positive("huber delta", delta),
            _ => Ok(()),
        }
    }

    /// Checks that targets suit the loss: binary cross-entropy needs every target in `[0, 1]`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first offending row and column.
    pub fn validate_targets<T: Float>(
        &self,
        target: ArrayView2<T>,
        context: &'static str,
    ) -> Result<()> {
        if !matches!(self, Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySum) {
            return Ok(());
        }
        // Fast path: one branch-free pass (vectorizes); locate the culprit only on failure.
        let (zero, one) = (T::zero(), T::one());
        let inside = |ok: bool, &x: &T| ok & (x >= zero) & (x <= one);
        let all_inside = match target.as_slice_memory_order() {
            Some(s) => s.iter().fold(true, inside),
            None => target.iter().fold(true, inside),
        };
        if all_inside {
            return Ok(());
        }
        for ((row, col), &x) in target.indexed_iter() {
            if !(x >= T::zero() && x <= T::one()) {
                return Err(Error::InvalidConfig(format!(
                    "binary cross-entropy needs {context} in [0, 1], but row {row}, column {col} is {x}; \
                     scale the data or use Loss::MeanSquaredError"
                )));
            }
        }
        Ok(())
    }

    /// The loss value for output pre-activation `z` and output `a = s(z)` against `target`,
    /// all `(batch, n)`.
    ///
    /// Binary cross-entropy is computed from the logits, stably, as
    /// `max(z, 0) - z x + ln(1 + e^-|z|)` (written through `a`), which equals
    /// `-(x ln a + (1 - x) ln(1 - a))` only when `a = sigmoid(z)`: the model refuses binary
    /// cross-entropy without a sigmoid output ([`Loss::validate`]), and a caller of this
    /// function must pass a sigmoid's `z` and `a` too.
    pub fn value<T: Float>(
        &self,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        target: ArrayView2<T>,
    ) -> f64 {
        let (batch, n) = target.dim();
        let sum = match *self {
            Loss::MeanSquaredError | Loss::SumSquaredError => {
                sum3(a, target, z, |a, x, _| (a - x) * (a - x))
            }
            Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySum => sum3(a, target, z, bce_term),
            Loss::MeanAbsoluteError => sum3(a, target, z, |a, x, _| (a - x).abs()),
            Loss::Huber(delta) => {
                let delta = T::cast(delta);
                sum3(a, target, z, |a, x, _| huber(a - x, delta))
            }
        };
        sum / self.divisor(batch, n)
    }

    /// The loss value, and `dL/dz` of the output layer written into `d_z` (overwritten, not
    /// accumulated), for output pre-activation `z`, output `a = s(z)` of the output
    /// `activation` `s`, and `target`, all `(batch, n)`: `dL/dz = dL/da * s'(z)`, fused for
    /// binary cross-entropy into `(a - target) / (batch n)` (or `/ batch` for the sum form),
    /// which holds only for a sigmoid output, so any other activation is refused.
    ///
    /// Checks its arguments on every call (constant work, plus one pass over `target` for
    /// binary cross-entropy); the trainer validates once per run and calls the unchecked
    /// form.
    ///
    /// ```
    /// use autoencoder::{Activation, Error, Loss};
    /// use ndarray::{array, Array2};
    /// # fn main() -> autoencoder::Result<()> {
    /// let z = array![[0.0, 2.0]];
    /// let a = Activation::Sigmoid.apply(z.view());
    /// let target = array![[1.0, 1.0]];
    /// let mut d_z = Array2::zeros((1, 2));
    /// let bce = Loss::BinaryCrossEntropy;
    /// let value = bce.value_and_grad(z.view(), a.view(), target.view(), Activation::Sigmoid, d_z.view_mut())?;
    /// assert!((value - (2f64.ln() + (1.0 + (-2f64).exp()).ln()) / 2.0).abs() < 1e-12);
    /// assert_eq!(d_z, (&a - &target) / 2.0); // sigmoid(z) - x, over batch n
    /// // The fused gradient is a sigmoid's: with any other output activation, an error.
    /// let relu = bce.value_and_grad(z.view(), a.view(), target.view(), Activation::Relu, d_z.view_mut());
    /// assert!(matches!(relu, Err(Error::InvalidConfig(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for binary cross-entropy with an output activation other
    /// than [`Activation::Sigmoid`] or a target outside `[0, 1]`;
    /// [`Error::InvalidHyperparameter`] for a Huber `delta` that is not finite and `> 0`;
    /// [`Error::ShapeMismatch`] unless `z`, `a`, `target` and `d_z` have one shape;
    /// [`Error::EmptyData`] for no rows or columns.
    pub fn value_and_grad<T: Float>(
        &self,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        target: ArrayView2<T>,
        activation: Activation,
        d_z: ArrayViewMut2<T>,
    ) -> Result<f64> {
        self.validate(activation)?;
        let shape = target.dim();
        if z.dim() != shape || a.dim() != shape || d_z.dim() != shape {
            return Err(Error::ShapeMismatch {
                context: "Loss::value_and_grad",
                expected: format!("z, a and d_z of the target's shape {shape:?}"),
                found: format!("z {:?}, a {:?}, d_z {:?}", z.dim(), a.dim(), d_z.dim()),
            });
        }
        if shape.0 == 0 || shape.1 == 0 {
            return Err(Error::EmptyData {
                context: "Loss::value_and_grad target",
                rows: shape.0,
                cols: shape.1,
            });
        }
        self.validate_targets(target, "the target")?;
        Ok(self.value_and_grad_unchecked(z, a, target, activation, d_z))
    }

    /// [`Loss::value_and_grad`] without its checks, for the training step: the caller has
    /// validated the loss against the output activation ([`Loss::validate`]) and the shapes.
    ///
    /// # Panics
    /// If the shapes differ (an internal invariant).
    pub(crate) fn value_and_grad_unchecked<T: Float>(
        &self,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        target: ArrayView2<T>,
        activation: Activation,
        d_z: ArrayViewMut2<T>,
    ) -> f64 {
        self.value_and_grad_of(z, a, target, activation, d_z, target.nrows())
    }

    /// `dL/dz` of some rows of a batch of `batch` rows, as [`Loss::value_and_grad_unchecked`]
    /// writes it for them (its value over the whole batch is [`Loss::value`]'s).
    pub(crate) fn grad_rows_unchecked<T: Float>(
        &self,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        target: ArrayView2<T>,
        activation: Activation,
        d_z: ArrayViewMut2<T>,
        batch: usize,
    ) {
        self.value_and_grad_of(z, a, target, activation, d_z, batch);
    }

    /// [`Loss::value_and_grad_unchecked`] of rows of a batch of `batch` rows (the value of
    /// those rows alone, divided as the batch's).
    fn value_and_grad_of<T: Float>(
        &self,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        target: ArrayView2<T>,
        activation: Activation,
        mut d_z: ArrayViewMut2<T>,
        batch: usize,
    ) -> f64 {
        let n = target.ncols();
        let scale = T::cast(1.0 / self.divisor(batch, n));
        // Each loss: its value and dL/da (dL/dz for BCE) in one pass, the same terms and
        // order of additions as `value`.
        let sum = match *self {
            Loss::BinaryCrossEntropy | Loss::BinaryCrossEntropySum => {
                // d/dz [max(z,0) - z x + ln(1 + e^-|z|)] = sigmoid(z) - x = a - x (the
                // sigmoid's derivative is already inside).
                let sum = sum_blocks(a, target, z, d_z, |a, x, z, d| {
                    *d = (a - x) * scale;
                    bce_term(a, x, z)
                });
                return sum / self.divisor(batch, n);
            }
            Loss::MeanSquaredError | Loss::SumSquaredError => {
                let two = T::cast(2.0) * scale;
                sum_blocks(a, target, z, d_z.view_mut(), |a, x, _, d| {
                    let r = a - x;
                    *d = two * r;
                    r * r
                })
            }
            Loss::MeanAbsoluteError => sum_blocks(a, target, z, d_z.view_mut(), |a, x, _, d| {
                let r = a - x;
                *d = sign(r) * scale;
                r.abs()
            }),
            Loss::Huber(delta) => {
                let delta = T::cast(delta);
                sum_blocks(a, target, z, d_z.view_mut(), |a, x, _, d| {
                    let r = a - x;
                    *d = if r.abs() <= delta { r } else { delta * sign(r) } * scale;
                    huber(r, delta)
                })
            }
        };
        let value = sum / self.divisor(batch, n);
        activation.backward(z, a, d_z);
        value
    }

    fn divisor(&self, batch: usize, n: usize) -> f64 {
        match self {
            Loss::SumSquaredError | Loss::BinaryCrossEntropySum => batch as f64,
            _ => (batch * n) as f64,
        }
    }
}

/// `max(z, 0) - z x + ln(1 + e^-|z|)`: binary cross-entropy of `a = sigmoid(z)` against
/// `x`, with `ln(1 + e^-|z|) = -ln(max(a, 1 - a))` read off the output (one logarithm, no
/// exponential; exact for the exact sigmoid, within a few `f32` roundings otherwise).
#[inline(always)]
fn bce_term<T: Float>(a: T, x: T, z: T) -> T {
    let one = T::one();
    let p = if a >= one - a { a } else { one - a };
    z.max(T::zero()) - z * x - p.ln_fast()
}

#[inline]
fn huber<T: Float>(r: T, delta: T) -> T {
    let half = T::cast(0.5);
    if r.abs() <= delta {
        half * r * r
    } else {
        delta * (r.abs() - half * delta)
    }
}

/// Sign with 0 at 0: the subgradient used for every absolute-value term (MAE, L1).
#[inline]
pub(crate) fn sign<T: Float>(r: T) -> T {
    if r > T::zero() {
        T::one()
    } else if r < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// Sum of `f(a, x, z)` over all elements: per row in `T`, across the rows of each of the 8
/// [`row_blocks`] in `f64`, then across the blocks in order.
fn sum3<T: Float>(
    a: ArrayView2<T>,
    x: ArrayView2<T>,
    z: ArrayView2<T>,
    f: impl Fn(T, T, T) -> T,
) -> f64 {
    let blocks = zip_blocks(zip_blocks(row_blocks(a), row_blocks(x)), row_blocks(z));
    blocks
        .into_iter()
        .map(|((a, x), z)| sum3_rows(a, x, z, &f))
        .sum()
}

/// [`sum3`] of a block of rows.
fn sum3_rows<T: Float>(
    a: ArrayView2<T>,
    x: ArrayView2<T>,
    z: ArrayView2<T>,
    f: &impl Fn(T, T, T) -> T,
) -> f64 {
    let mut total = 0.0;
    for ((a, x), z) in a.rows().into_iter().zip(x.rows()).zip(z.rows()) {
        total += match (a.as_slice(), x.as_slice(), z.as_slice()) {
            (Some(a), Some(x), Some(z)) => lane_sum(a.len(), |i| f(a[i], x[i], z[i])),
            _ => lane_sum(a.len(), |i| f(a[i], x[i], z[i])),
        }
        .as_f64();
    }
    total
}

simd_dispatch! {
    /// [`sum_rows`], for AVX-512F or AVX2 when available.
    fn sum_rows_wide / sum_rows<T, F>(
        a: ArrayView2<T>,
        x: ArrayView2<T>,
        z: ArrayView2<T>,
        d: ArrayViewMut2<T>,
        f: F,
    ) -> f64
    where T: Float, F: Fn(T, T, T, &mut T) -> T
}

/// As [`sum3`], also writing `d` (same shape) element by element: `f(a, x, z, &mut d)`
/// returns the term to sum. The same order of additions as [`sum3`]; the blocks run on
/// the matrix-product threads when the batch is large.
fn sum_blocks<T: Float, F: Fn(T, T, T, &mut T) -> T + Sync>(
    a: ArrayView2<T>,
    x: ArrayView2<T>,
    z: ArrayView2<T>,
    d: ArrayViewMut2<T>,
    f: F,
) -> f64 {
    let elements = d.len();
    let inputs = zip_blocks(zip_blocks(row_blocks(a), row_blocks(x)), row_blocks(z));
    for_each_block(
        elements,
        zip_blocks(inputs, row_blocks_mut(d)),
        |(((a, x), z), d)| sum_rows_wide(a, x, z, d, &f),
    )
}

/// [`sum_blocks`] of one block.
#[inline(always)]
fn sum_rows<T: Float, F: Fn(T, T, T, &mut T) -> T>(
    a: ArrayView2<T>,
    x: ArrayView2<T>,
    z: ArrayView2<T>,
    mut d: ArrayViewMut2<T>,
    f: F,
) -> f64 {
    let mut total = 0.0;
    for (((a, x), z), mut d) in a
        .rows()
        .into_iter()
        .zip(x.rows())
        .zip(z.rows())
        .zip(d.rows_mut())
    {
        total += match (a.as_slice(), x.as_slice(), z.as_slice(), d.as_slice_mut()) {
            (Some(a), Some(x), Some(z), Some(d)) => lane_sum_slices(a, x, z, d, &f),
            _ => lane_sum(a.len(), |i| f(a[i], x[i], z[i], &mut d[i])),
        }
        .as_f64();
    }
    total
}

/// [`lane_sum`] of `f(a[i], x[i], z[i], &mut d[i])` over equal-length slices: a plain map
/// into the sum's stack buffer, which the compiler vectorizes (the same order of additions
/// as [`lane_sum`]).
#[inline(always)]
fn lane_sum_slices<T: Float>(
    a: &[T],
    x: &[T],
    z: &[T],
    d: &mut [T],
    f: &impl Fn(T, T, T, &mut T) -> T,
) -> T {
    let n = a.len().min(x.len()).min(z.len()).min(d.len());
    lane_sum_buffered(
        n,
        // Forced inline: left as a call, the loop would neither vectorize nor get AVX2
        // (binary cross-entropy 6x slower).
        #[inline(always)]
        |range, terms| {
            for ((((t, &a), &x), &z), d) in terms
                .iter_mut()
                .zip(&a[range.clone()])
                .zip(&x[range.clone()])
                .zip(&z[range.clone()])
                .zip(&mut d[range])
            {
                *t = f(a, x, z, d);
            }
        },
    )
}

/// Binary cross-entropy per element of probabilities `p` against `x`, with `p` clipped to
/// `[1e-7, 1 - 1e-7]`, mean over elements: for reconstructions that are not logits, such as PCA's.
/// For models, prefer the exact logit form through [`crate::Autoencoder::evaluate`].
pub fn bce_of_probabilities<T: Float>(p: ArrayView2<T>, x: ArrayView2<T>) -> f64 {
    let eps = 1e-7;
    let mut total = 0.0;
    Zip::from(p).and(x).for_each(|&p, &x| {
        let p = p.as_f64().clamp(eps, 1.0 - eps);
        let x = x.as_f64();
        total -= x * p.ln() + (1.0 - x) * (1.0 - p).ln();
    });
    total / p.len().max(1) as f64
}

#[cfg(test)]
mod fused_tests {
    use super::*;
    use ndarray::Array2;

    /// The one-pass value of `value_and_grad` is `value`, bit for bit, for every loss and
    /// for contiguous and non-contiguous (transposed) inputs.
    #[test]
    fn fused_value_equals_value() {
        let z = Array2::from_shape_fn((7, 37), |(i, j)| ((i * 37 + j) as f32 * 0.37).sin() * 6.0);
        let a = Activation::Sigmoid.apply(z.view());
        let x = Array2::from_shape_fn((7, 37), |(i, j)| ((i + 3 * j) % 5) as f32 / 4.0);
        let (zt, at, xt) = (z.t().to_owned(), a.t().to_owned(), x.t().to_owned());
        for loss in [
            Loss::BinaryCrossEntropy,
            Loss::BinaryCrossEntropySum,
            Loss::MeanSquaredError,
            Loss::SumSquaredError,
            Loss::MeanAbsoluteError,
            Loss::Huber(0.3),
        ] {
            let mut d = Array2::zeros((7, 37));
            let fused = loss.value_and_grad_unchecked(
                z.view(),
                a.view(),
                x.view(),
                Activation::Sigmoid,
                d.view_mut(),
            );
            assert_eq!(
                fused.to_bits(),
                loss.value(z.view(), a.view(), x.view()).to_bits(),
                "{loss:?}"
            );
            // The same values through transposed (non-contiguous rows) views.
            let strided = loss.value(zt.t(), at.t(), xt.t());
            assert_eq!(fused.to_bits(), strided.to_bits(), "{loss:?} strided");
        }
    }
}
