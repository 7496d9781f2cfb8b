//! Element-wise activation functions and their derivatives.
//!
//! Every layer caches both its pre-activation `z` and its output `a = s(z)`, so each
//! derivative is computed from whichever of the two gives the cheaper, more stable form
//! (sigmoid: `a (1 - a)`, from the output; ReLU: `z > 0`, from the input).

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Zip};
use serde::{Deserialize, Serialize};

use crate::compute::{for_each_block, row_blocks, row_blocks_mut, simd_dispatch, zip_blocks};
use crate::error::{check_range, Result};
use crate::float::Float;

/// An element-wise activation `a = s(z)`.
///
/// All forms are numerically stable: sigmoid and softplus never overflow, whatever `|z|`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Activation {
    /// `s(z) = z`; `s'(z) = 1`.
    Identity,
    /// `s(z) = max(z, 0)`; `s'(z) = 1` if `z > 0`, else `0` (0 at the kink).
    Relu,
    /// `s(z) = z` if `z > 0`, else `alpha z`; `s'(z) = 1` or `alpha`. `alpha` in `[0, 1)`.
    LeakyRelu(f64),
    /// `s(z) = 1 / (1 + e^-z)`, computed without overflow; `s'(z) = a (1 - a)`.
    Sigmoid,
    /// `s(z) = tanh z`; `s'(z) = 1 - a^2`.
    Tanh,
    /// `s(z) = ln(1 + e^z)`, computed as `max(z, 0) + ln(1 + e^-|z|)`; `s'(z) = sigmoid(z)`.
    Softplus,
    /// `s(z) = z` if `z > 0`, else `alpha (e^z - 1)`; `s'(z) = 1` or `alpha e^z`.
    /// `alpha` must be finite and `> 0`.
    Elu(f64),
    /// GELU, tanh form: `s(z) = z/2 (1 + tanh(k (z + 0.044715 z^3)))`, `k = sqrt(2/pi)`.
    Gelu,
}

/// Which of `z` (input) and `a` (output) the derivative reads; see [`Activation::derivative`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivativeFrom {
    /// The derivative is a function of the pre-activation `z`.
    Input,
    /// The derivative is a function of the output `a`.
    Output,
}

const GELU_K: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
const GELU_C: f64 = 0.044_715;

impl Activation {
    /// Checks the activation's own parameter (`alpha` of leaky ReLU and ELU).
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] if `alpha` is out of range.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Activation::LeakyRelu(alpha) => check_range(
                "leaky relu alpha",
                alpha,
                (0.0..1.0).contains(&alpha),
                "a value in [0, 1)",
            ),
            Activation::Elu(alpha) => check_range(
                "elu alpha",
                alpha,
                alpha > 0.0 && alpha.is_finite(),
                "a finite value > 0",
            ),
            _ => Ok(()),
        }
    }

    /// Checks the activation's parameter as [`Activation::validate`] does, and that it stays
    /// in range once converted to the element type `T`: an ELU `alpha` of `1e300` is finite
    /// in `f64` but infinite in `f32` (codes of `-inf`), `1e-50` is 0 in `f32`, and a leaky
    /// ReLU `alpha` of `1 - 1e-10` rounds to 1. Models check their layers with it when built
    /// ([`crate::AutoencoderBuilder::build`], [`crate::Dense::new`], [`crate::Dense::random`]).
    ///
    /// ```
    /// use autoencoder::{Activation, Error};
    /// assert!(Activation::Elu(1e300).validate_for::<f64>().is_ok());
    /// let err = Activation::Elu(1e300).validate_for::<f32>().unwrap_err();
    /// assert!(matches!(err, Error::InvalidHyperparameter { name: "elu alpha", .. }));
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] if `alpha` is out of range, in `f64` or in `T`.
    pub fn validate_for<T: Float>(&self) -> Result<()> {
        self.validate()?;
        match *self {
            Activation::LeakyRelu(alpha) => {
                let a = T::cast(alpha);
                check_range(
                    "leaky relu alpha",
                    alpha,
                    a >= T::zero() && a < T::one(),
                    "a value in [0, 1) that stays below 1 in the element type",
                )
            }
            Activation::Elu(alpha) => {
                let a = T::cast(alpha);
                check_range(
                    "elu alpha",
                    alpha,
                    a > T::zero() && a.is_finite(),
                    "a value > 0 that stays finite and > 0 in the element type \
                     (f32: about 1.4e-45 to 3.4e38)",
                )
            }
            _ => Ok(()),
        }
    }

    /// Whether every output lies strictly inside `(0, 1)` (sigmoid only), as a KL sparsity
    /// penalty requires.
    pub fn is_in_unit_interval(&self) -> bool {
        matches!(self, Activation::Sigmoid)
    }

    /// Which of `z` and `a` [`Activation::derivative`] reads.
    pub fn derivative_from(&self) -> DerivativeFrom {
        match self {
            Activation::Sigmoid | Activation::Tanh | Activation::Identity => DerivativeFrom::Output,
            _ => DerivativeFrom::Input,
        }
    }

    /// `s(z)` for one value.
    #[inline]
    pub fn value<T: Float>(&self, z: T) -> T {
        let zero = T::zero();
        let one = T::one();
        match *self {
            Activation::Identity => z,
            Activation::Relu => {
                if z > zero {
                    z
                } else {
                    zero
                }
            }
            Activation::LeakyRelu(alpha) => {
                if z > zero {
                    z
                } else {
                    T::cast(alpha) * z
                }
            }
            Activation::Sigmoid => sigmoid(z),
            Activation::Tanh => z.tanh(),
            Activation::Softplus => z.max(zero) + (-z.abs()).exp().ln_1p(),
            Activation::Elu(alpha) => {
                if z > zero {
                    z
                } else {
                    T::cast(alpha) * z.exp_m1()
                }
            }
            Activation::Gelu => {
                let half = T::cast(0.5);
                let inner = T::cast(GELU_K) * (z + T::cast(GELU_C) * z * z * z);
                half * z * (one + inner.tanh())
            }
        }
    }

    /// `s'(z)` for one value, given both `z` and `a = s(z)`; reads only the one named by
    /// [`Activation::derivative_from`].
    #[inline]
    pub fn derivative<T: Float>(&self, z: T, a: T) -> T {
        let zero = T::zero();
        let one = T::one();
        match *self {
            Activation::Identity => one,
            Activation::Relu => {
                if z > zero {
                    one
                } else {
                    zero
                }
            }
            Activation::LeakyRelu(alpha) => {
                if z > zero {
                    one
                } else {
                    T::cast(alpha)
                }
            }
            Activation::Sigmoid => a * (one - a),
            Activation::Tanh => one - a * a,
            Activation::Softplus => sigmoid(z),
            Activation::Elu(alpha) => {
                if z > zero {
                    one
                } else {
                    T::cast(alpha) * z.exp()
                }
            }
            Activation::Gelu => {
                let half = T::cast(0.5);
                let k = T::cast(GELU_K);
                let c = T::cast(GELU_C);
                let t = (k * (z + c * z * z * z)).tanh();
                half * (one + t) + half * z * (one - t * t) * k * (one + T::cast(3.0) * c * z * z)
            }
        }
    }

    /// Applies `s` element-wise: `a = s(z)`; `z`, `a`: `(batch, n)`.
    pub fn forward<T: Float>(&self, z: ArrayView2<T>, a: ArrayViewMut2<T>) {
        Zip::from(a).and(z).for_each(|a, &z| *a = self.value(z));
    }

    /// Adds the bias and applies `s` in one pass: `z += b` (`b` broadcast over rows), then
    /// `a = s(z)`; `z`, `a`: `(batch, n)`, `bias`: `(n)`. The activation is chosen once,
    /// outside the loop, so each loop is specialised and vectorizes.
    ///
    /// ```
    /// use autoencoder::Activation;
    /// use ndarray::{array, Array2};
    /// let mut z = array![[-1.0, 0.5], [2.0, -3.0]]; // X W, before the bias
    /// let mut a = Array2::zeros((2, 2));
    /// Activation::Relu.forward_with_bias(array![0.5, 0.5].view(), z.view_mut(), a.view_mut());
    /// assert_eq!(z, array![[-0.5, 1.0], [2.5, -2.5]]);
    /// assert_eq!(a, array![[0.0, 1.0], [2.5, 0.0]]);
    /// ```
    ///
    /// # Panics
    /// If the shapes disagree (an internal invariant).
    pub fn forward_with_bias<T: Float>(
        &self,
        bias: ArrayView1<T>,
        z: ArrayViewMut2<T>,
        a: ArrayViewMut2<T>,
    ) {
        let zero = T::zero();
        let elements = z.len();
        let blocks = zip_blocks(row_blocks_mut(z), row_blocks_mut(a));
        for_each_block(elements, blocks, |(z, a)| {
            match *self {
                Activation::Identity => bias_map_wide(bias, z, a, |z| z),
                Activation::Relu => bias_map_wide(bias, z, a, |z| if z > zero { z } else { zero }),
                Activation::Sigmoid => bias_map_wide(bias, z, a, sigmoid),
                other => bias_map_wide(bias, z, a, |z| other.value(z)),
            }
            0.0
        });
    }

    /// Multiplies a gradient by `s'` in place: `grad *= s'(z)`, element-wise. `grad` holds
    /// `dL/da` on entry and `dL/dz` on return; `z`, `a`, `grad`: `(batch, n)`.
    pub fn backward<T: Float>(&self, z: ArrayView2<T>, a: ArrayView2<T>, grad: ArrayViewMut2<T>) {
        let (zero, one) = (T::zero(), T::one());
        if *self == Activation::Identity {
            return;
        }
        let elements = grad.len();
        let inputs = zip_blocks(row_blocks(z), row_blocks(a));
        for_each_block(
            elements,
            zip_blocks(row_blocks_mut(grad), inputs),
            |(grad, (z, a))| {
                match *self {
                    Activation::Identity => {}
                    Activation::Relu => {
                        scale_by_wide(grad, z, |z| if z > zero { one } else { zero })
                    }
                    Activation::Sigmoid => scale_by_wide(grad, a, |a| a * (one - a)),
                    Activation::Tanh => scale_by_wide(grad, a, |a| one - a * a),
                    other => Zip::from(grad)
                        .and(z)
                        .and(a)
                        .for_each(|g, &z, &a| *g *= other.derivative(z, a)),
                }
                0.0
            },
        );
    }

    /// `s(z)` for a whole array (allocates; for inference and tests).
    pub fn apply<T: Float>(&self, z: ArrayView2<T>) -> Array2<T> {
        z.mapv(|z| self.value(z))
    }
}

/// The logistic function `1 / (1 + e^-z)`, computed without overflow for any `z` as
/// `1 / (1 + e)` for `z >= 0` and `e / (1 + e)` otherwise, with `e = e^-|z|` from
/// [`Float::exp_fast`] (branch-free, so loops over it vectorize).
#[inline(always)]
pub fn sigmoid<T: Float>(z: T) -> T {
    let one = T::one();
    let e = (-z.abs()).exp_fast();
    let numerator = if z >= T::zero() { one } else { e };
    numerator / (one + e)
}

simd_dispatch! {
    /// [`bias_map`], for AVX-512F or AVX2 when available.
    fn bias_map_wide / bias_map<T, F>(bias: ArrayView1<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>, f: F)
    where T: Float, F: Fn(T) -> T
}

simd_dispatch! {
    /// [`scale_by`], for AVX-512F or AVX2 when available.
    fn scale_by_wide / scale_by<T, F>(grad: ArrayViewMut2<T>, v: ArrayView2<T>, f: F)
    where T: Float, F: Fn(T) -> T
}

/// `z += b` row by row, then `a = f(z)`, over contiguous rows when possible.
#[inline(always)]
fn bias_map<T: Float>(
    bias: ArrayView1<T>,
    mut z: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    f: impl Fn(T) -> T,
) {
    for (mut z_row, mut a_row) in z.rows_mut().into_iter().zip(a.rows_mut()) {
        match (z_row.as_slice_mut(), a_row.as_slice_mut(), bias.as_slice()) {
            (Some(z_row), Some(a_row), Some(b)) => {
                let n = z_row.len().min(a_row.len()).min(b.len());
                for ((z, a), &b) in z_row[..n].iter_mut().zip(&mut a_row[..n]).zip(&b[..n]) {
                    *z += b;
                    *a = f(*z);
                }
            }
            _ => Zip::from(z_row).and(a_row).and(bias).for_each(|z, a, &b| {
                *z += b;
                *a = f(*z);
            }),
        }
    }
}

/// `grad *= f(v)` element-wise, over one contiguous slice when possible.
#[inline(always)]
fn scale_by<T: Float>(mut grad: ArrayViewMut2<T>, v: ArrayView2<T>, f: impl Fn(T) -> T) {
    let same_layout = grad.strides() == v.strides();
    match (grad.as_slice_memory_order_mut(), v.as_slice_memory_order()) {
        (Some(g), Some(v)) if same_layout => {
            g.iter_mut().zip(v).for_each(|(g, &v)| *g *= f(v));
        }
        _ => Zip::from(grad).and(v).for_each(|g, &v| *g *= f(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_softplus_do_not_overflow() {
        for &z in &[-1000.0f64, -90.0, -80.0, 0.0, 80.0, 90.0, 1000.0] {
            let s = Activation::Sigmoid.value(z);
            assert!(
                s.is_finite() && (0.0..=1.0).contains(&s),
                "sigmoid({z}) = {s}"
            );
            let p = Activation::Softplus.value(z);
            assert!(p.is_finite() && p >= 0.0, "softplus({z}) = {p}");
            let s32 = Activation::Sigmoid.value(z as f32);
            assert!(s32.is_finite(), "f32 sigmoid({z}) = {s32}");
            let p32 = Activation::Softplus.value(z as f32);
            assert!(p32.is_finite(), "f32 softplus({z}) = {p32}");
        }
        assert_eq!(Activation::Softplus.value(1000.0f64), 1000.0);
    }

    #[test]
    fn parameters_are_validated() {
        assert!(Activation::LeakyRelu(0.01).validate().is_ok());
        assert!(Activation::LeakyRelu(1.5).validate().is_err());
        assert!(Activation::LeakyRelu(f64::NAN).validate().is_err());
        assert!(Activation::Elu(1.0).validate().is_ok());
        assert!(Activation::Elu(0.0).validate().is_err());
    }
}
