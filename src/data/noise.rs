//! Corruption processes `q(x~ | x)` for denoising autoencoders.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::value_range;
use crate::error::check_range;
use crate::{Error, Float, Result};

/// A corruption process `q(x~ | x)`, applied element-wise to the input only; the target
/// stays the clean `x`. The trainer draws fresh noise for every batch.
///
/// | variant | `x~` |
/// | --- | --- |
/// | `Gaussian { std, clip }` | `x + std * N(0, 1)`, then clamped to `clip = Some((lo, hi))` if given, else to the finite values of the element type |
/// | `Masking { fraction }` | each element independently set to 0 with probability `fraction` |
/// | `SaltAndPepper { fraction }` | each element independently, with probability `fraction`, set to the data's minimum or maximum (each with probability 1/2) |
///
/// For salt-and-pepper, the minimum and maximum are those of the whole array passed to
/// [`corrupt`] (for the trainer: the whole training set, computed once).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Noise {
    /// Additive Gaussian noise with standard deviation `std >= 0`, optionally clipped.
    Gaussian {
        /// Standard deviation, `>= 0`.
        std: f64,
        /// Range to clamp the result to, e.g. `Some((0.0, 1.0))`; finite `lo <= hi`.
        clip: Option<(f64, f64)>,
    },
    /// Masking noise: zero a fraction of the inputs.
    Masking {
        /// Probability in `[0, 1]` that an element is zeroed.
        fraction: f64,
    },
    /// Salt-and-pepper noise: set a fraction of the inputs to the minimum or maximum.
    SaltAndPepper {
        /// Probability in `[0, 1]` that an element is replaced.
        fraction: f64,
    },
}

impl Noise {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a `std` that is not finite and `>= 0`, a fraction
    /// outside `[0, 1]`, NaN, or a clip range that is not finite `lo <= hi` (a clip to
    /// `(inf, inf)` would turn every input into an infinity).
    pub fn validate(&self) -> Result<()> {
        self.validate_for::<f64>()
    }

    /// Checks the parameters as [`Noise::validate`] does, and that they stay in range once
    /// converted to the element type `T`: a `std` of `1e300` or a clip bound of `1e39` is
    /// finite in `f64` but infinite in `f32`. The trainer and [`corrupt`] check with it.
    ///
    /// ```
    /// use autoencoder::{Error, Noise};
    /// let noise = Noise::Gaussian { std: 1e300, clip: None };
    /// assert!(noise.validate_for::<f64>().is_ok());
    /// assert!(matches!(
    ///     noise.validate_for::<f32>(),
    ///     Err(Error::InvalidHyperparameter { name: "gaussian noise std", .. })
    /// ));
    /// ```
    ///
    /// # Errors
    /// As [`Noise::validate`], in `T`.
    pub fn validate_for<T: Float>(&self) -> Result<()> {
        match *self {
            Noise::Gaussian { std, clip } => {
                check_range(
                    "gaussian noise std",
                    std,
                    std >= 0.0 && T::cast(std).is_finite(),
                    "a value >= 0 that stays finite in the element type (f32: up to 3.4e38)",
                )?;
                if let Some((lo, hi)) = clip {
                    let (l, h) = (T::cast(lo), T::cast(hi));
                    if !(l.is_finite() && h.is_finite() && l <= h) {
                        return Err(Error::hyper(
                            "gaussian noise clip",
                            format!("({lo}, {hi})"),
                            "lo <= hi, both finite in the element type (f32: within 3.4e38)",
                        ));
                    }
                }
                Ok(())
            }
            Noise::Masking { fraction } => check_range(
                "masking fraction",
                fraction,
                (0.0..=1.0).contains(&fraction),
                "a value in [0, 1]",
            ),
            Noise::SaltAndPepper { fraction } => check_range(
                "salt-and-pepper fraction",
                fraction,
                (0.0..=1.0).contains(&fraction),
                "a value in [0, 1]",
            ),
        }
    }

    /// Writes a corrupted copy of `clean` into `out` (same shape), drawing from `rng`.
    /// `range` is `(min, max)` of the data, used by salt-and-pepper. Allocates nothing.
    ///
    /// # Panics
    /// If the shapes differ (an internal invariant; [`corrupt`] checks).
    pub(crate) fn apply<T: Float, R: Rng + ?Sized>(
        &self,
        clean: ArrayView2<T>,
        out: ArrayViewMut2<T>,
        range: (T, T),
        rng: &mut R,
    ) {
        match *self {
            Noise::Gaussian { std, clip } => {
                let std = T::cast(std);
                // Without a clip range, the finite values of T: a sum that overflows saturates.
                let (lo, hi) = clip.map_or((T::min_value(), T::max_value()), |(l, h)| {
                    (T::cast(l), T::cast(h))
                });
                Zip::from(out).and(clean).for_each(|o, &x| {
                    let e: f64 = StandardNormal.sample(rng);
                    *o = (x + std * T::cast(e)).max(lo).min(hi);
                });
            }
            Noise::Masking { fraction } => {
                Zip::from(out).and(clean).for_each(|o, &x| {
                    *o = if rng.random::<f64>() < fraction {
                        T::zero()
                    } else {
                        x
                    };
                });
            }
            Noise::SaltAndPepper { fraction } => {
                Zip::from(out).and(clean).for_each(|o, &x| {
                    *o = if rng.random::<f64>() < fraction {
                        if rng.random::<bool>() {
                            range.1
                        } else {
                            range.0
                        }
                    } else {
                        x
                    };
                });
            }
        }
    }
}

/// A corrupted copy `x~ ~ q(x~ | x)` of `x` `(n, d)`, e.g. to make a noisy test set the way
/// the trainer corrupts batches.
///
/// ```
/// use autoencoder::{corrupt, Noise};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// let clean = Array2::<f32>::from_elem((4, 5), 0.5);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let noisy = corrupt(clean.view(), Noise::Masking { fraction: 1.0 }, &mut rng)?;
/// assert!(noisy.iter().all(|&v| v == 0.0));
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::InvalidHyperparameter`] as [`Noise::validate_for`] in `T`;
/// [`Error::NonFiniteData`] if `x` holds NaN or infinity.
pub fn corrupt<T: Float, R: Rng + ?Sized>(
    x: ArrayView2<T>,
    noise: Noise,
    rng: &mut R,
) -> Result<Array2<T>> {
    noise.validate_for::<T>()?;
    super::check_finite(x, "corrupt input")?;
    let mut out = Array2::zeros(x.dim());
    noise.apply(x, out.view_mut(), value_range(x), rng);
    Ok(out)
}
