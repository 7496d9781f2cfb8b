//! What a user needs around a loaded data set: a seeded train/validation split, shuffling,
//! scaling (with its inverse) and a batching iterator. Rows are samples throughout.

use ndarray::{Array, Array1, Array2, ArrayView, ArrayView2, Axis, RemoveAxis, Zip};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::budget::check_elements;
use crate::data::{check_finite, check_rows, check_width, power_of_two_below};
use crate::error::check_range;
use crate::{Error, Float, Result};

/// The numbers `0..n` in a random order drawn from `seed` (ChaCha8, Fisher-Yates): the
/// same seed gives the same order on every platform.
///
/// ```
/// let p = autoencoder::data::permutation(5, 1)?;
/// let mut sorted = p.clone();
/// sorted.sort();
/// assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
/// assert_eq!(p, autoencoder::data::permutation(5, 1)?);
/// # Ok::<(), autoencoder::Error>(())
/// ```
///
/// # Errors
/// [`Error::TooLarge`] if `n` indices exceed [`crate::memory_limit`].
pub fn permutation(n: usize, seed: u64) -> Result<Vec<usize>> {
    check_elements::<usize>("permutation", &[n])?;
    Ok(shuffled(n, seed))
}

/// [`permutation`] of a length already in memory (the rows of an array).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// The rows (entries along axis 0) of `x` in the order [`permutation`] gives for `seed`.
/// Use the same seed on images and their labels to keep them together.
///
/// ```
/// use autoencoder::data::shuffle_rows;
/// use ndarray::array;
/// let x = array![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]];
/// let y = array![0u8, 1, 2];
/// let (xs, ys) = (shuffle_rows(x.view(), 9), shuffle_rows(y.view(), 9));
/// for (row, label) in xs.rows().into_iter().zip(&ys) {
///     assert_eq!(row[0], f64::from(*label));
/// }
/// ```
pub fn shuffle_rows<A: Clone, D: RemoveAxis>(x: ArrayView<A, D>, seed: u64) -> Array<A, D> {
    x.select(Axis(0), &shuffled(x.len_of(Axis(0)), seed))
}

/// A seeded split of `n` samples into a training part and a validation part, as row
/// indices: `round(n * valid_fraction)` samples, drawn at random, go to validation and the
/// rest to training (each part in increasing index order).
///
/// | parameter | range |
/// | --- | --- |
/// | `n` | `>= 1` |
/// | `valid_fraction` | `[0, 1)`, leaving at least one training sample |
///
/// ```
/// use autoencoder::data::Split;
/// use ndarray::Array2;
/// # fn main() -> autoencoder::Result<()> {
/// let x = Array2::from_shape_fn((100, 3), |(i, j)| (i * 3 + j) as f32);
/// let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
/// let split = Split::new(100, 0.2, 42)?;
/// let (train, valid) = split.apply(x.view())?;
/// let (train_y, valid_y) = split.apply(ndarray::aview1(&labels))?;
/// assert_eq!((train.nrows(), valid.nrows()), (80, 20));
/// assert_eq!((train_y.len(), valid_y.len()), (80, 20));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    train: Vec<usize>,
    valid: Vec<usize>,
}

impl Split {
    /// Splits `0..n`, drawing the validation samples from `seed`.
    ///
    /// # Errors
    /// [`Error::EmptyData`] for `n = 0`; [`Error::InvalidHyperparameter`] for a
    /// `valid_fraction` outside `[0, 1)` (NaN included) or one that leaves no training sample.
    pub fn new(n: usize, valid_fraction: f64, seed: u64) -> Result<Split> {
        if n == 0 {
            return Err(Error::EmptyData {
                context: "data set to split",
                rows: 0,
                cols: 0,
            });
        }
        check_range(
            "valid_fraction",
            valid_fraction,
            (0.0..1.0).contains(&valid_fraction),
            "a fraction in [0, 1)",
        )?;
        let n_valid = (n as f64 * valid_fraction).round() as usize;
        if n_valid >= n {
            return Err(Error::hyper(
                "valid_fraction",
                valid_fraction,
                "a fraction that leaves at least one training sample",
            ));
        }
        let order = permutation(n, seed)?;
        let mut valid = order[..n_valid].to_vec();
        let mut train = order[n_valid..].to_vec();
        valid.sort_unstable();
        train.sort_unstable();
        Ok(Split { train, valid })
    }

    /// Row indices of the training part.
    pub fn train(&self) -> &[usize] {
        &self.train
    }

    /// Row indices of the validation part.
    pub fn valid(&self) -> &[usize] {
        &self.valid
    }

    /// The training and validation rows (entries along axis 0) of `x`: images, labels or
    /// anything else with one entry per sample.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have `n` entries along axis 0.
    pub fn apply<A: Clone, D: RemoveAxis>(
        &self,
        x: ArrayView<A, D>,
    ) -> Result<(Array<A, D>, Array<A, D>)> {
        let n = self.train.len() + self.valid.len();
        if x.len_of(Axis(0)) != n {
            return Err(Error::ShapeMismatch {
                context: "Split::apply",
                expected: format!("{n} rows, as the split was made for"),
                found: format!("{:?}", x.shape()),
            });
        }
        Ok((
            x.select(Axis(0), &self.train),
            x.select(Axis(0), &self.valid),
        ))
    }
}

/// How [`Scaler`] maps each column (feature).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Scaling {
    /// Linearly onto `[lo, hi]`: the column's minimum to `lo`, its maximum to `hi`
    /// (MATLAB's `mapminmax`, used by `trainAutoencoder`'s `ScaleData`). A constant column
    /// maps to `lo`.
    MinMax {
        /// Image of the column minimum.
        lo: f64,
        /// Image of the column maximum; `hi > lo`.
        hi: f64,
    },
    /// To zero mean and unit variance (population variance, `1/n`). A constant column
    /// maps to 0.
    Standard,
}

/// A per-column affine map fitted on a data set, and its inverse:
/// `y = (x / s - shift) * gain + base`, `x = ((y - base) / gain + shift) * s`, computed in
/// `f64`, where `s` is a power of two near the column's largest `|x|`. Dividing by a power of
/// two is exact, so the result is the plain `(x - min) * gain + lo` to the bit, but no step
/// overflows: a column spanning `-1e308..1e308`, whose range `max - min` is past `f64::MAX`,
/// or one spanning `1e-320`, whose `1 / range` is, scale like any other.
///
/// Fit it on the training set only, then apply the same map to validation and test data;
/// use [`Scaler::inverse_transform`] to bring reconstructions back to the original units.
/// A value the map sends past what the output type holds (data far outside the fitted
/// range, or past `f32::MAX` for `f32`) is an error, never an infinity.
///
/// ```
/// use autoencoder::data::{Scaler, Scaling};
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// let x = array![[0.0_f64, 10.0], [5.0, 30.0], [10.0, 20.0]];
/// let scaler = Scaler::fit(x.view(), Scaling::MinMax { lo: -1.0, hi: 1.0 })?;
/// let y = scaler.transform(x.view())?;
/// assert_eq!(y, array![[-1.0, -1.0], [0.0, 1.0], [1.0, 0.0]]);
/// assert_eq!(scaler.inverse_transform(y.view())?, x);
///
/// let z = Scaler::fit(x.view(), Scaling::Standard)?.transform(x.view())?;
/// assert!(z.column(0).mean().unwrap().abs() < 1e-12);
/// # Ok(()) }
/// ```
///
/// With serde a scaler serializes as its scaling and three `f64` arrays (the exact bits, so
/// it maps data to the same bits after a round trip); deserializing checks them as a model
/// file's loader does. [`crate::Autoencoder::save_with_scaler`] stores it in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScalerData")]
pub struct Scaler {
    scaling: Scaling,
    scale: Array1<f64>, // (d), s: a power of two, the column's largest |x| in [s, 2s)
    shift: Array1<f64>, // (d), in units of s
    gain: Array1<f64>,  // (d), in units of 1/s, normal (never 0, subnormal or infinite)
    base: f64,
}

/// A [`Scaler`] as serde reads it, before [`Scaler::from_parts`] checks it.
#[derive(Deserialize)]
struct ScalerData {
    scaling: Scaling,
    scale: Array1<f64>,
    shift: Array1<f64>,
    gain: Array1<f64>,
    base: f64,
}

impl TryFrom<ScalerData> for Scaler {
    type Error = Error;

    fn try_from(d: ScalerData) -> Result<Scaler> {
        let scaler = Scaler::from_parts(d.scaling, d.scale, d.shift, d.gain)?;
        if scaler.base.to_bits() != d.base.to_bits() {
            return Err(Error::InvalidConfig(format!(
                "a serialized scaler's base {} is not the one its scaling {:?} implies ({})",
                d.base, scaler.scaling, scaler.base
            )));
        }
        Ok(scaler)
    }
}

impl Scaler {
    /// Rebuilds a scaler from what [`Scaler::parts`] returned (a file's contents), checking
    /// what [`Scaler::fit`] guarantees: one entry per column in each array, at least one
    /// column, each `scale` a positive power of two, each `shift` in `[-2, 2]`, each `gain`
    /// a normal positive number, and a valid `scaling`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first entry that breaks a rule.
    pub(crate) fn from_parts(
        scaling: Scaling,
        scale: Array1<f64>,
        shift: Array1<f64>,
        gain: Array1<f64>,
    ) -> Result<Scaler> {
        let bad = |what: String| Err(Error::InvalidConfig(format!("scaler: {what}")));
        let d = scale.len();
        if d == 0 || shift.len() != d || gain.len() != d {
            return bad(format!(
                "{} scales, {} shifts and {} gains: expected one of each per column, at least one",
                d,
                shift.len(),
                gain.len()
            ));
        }
        let base = match scaling {
            Scaling::MinMax { lo, hi } => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite()) {
                    return bad(format!("min-max range [{lo}, {hi}] is not finite lo < hi"));
                }
                lo
            }
            Scaling::Standard => 0.0,
        };
        for j in 0..d {
            let (s, sh, g) = (scale[j], shift[j], gain[j]);
            if !(s > 0.0 && s.is_finite() && power_of_two_below(s) == s) {
                return bad(format!(
                    "column {j}: scale {s:e} is not a positive power of two"
                ));
            }
            if !(-2.0..=2.0).contains(&sh) {
                return bad(format!("column {j}: shift {sh:e} is outside [-2, 2]"));
            }
            if !(g.is_normal() && g > 0.0) {
                return bad(format!(
                    "column {j}: gain {g:e} is not a normal positive number"
                ));
            }
        }
        Ok(Scaler {
            scaling,
            scale,
            shift,
            gain,
            base,
        })
    }

    /// The per-column arrays `(scale, shift, gain)`, each `(d)`: the map is
    /// `y = (x / scale - shift) * gain + base` with `base` from the scaling.
    pub(crate) fn parts(&self) -> (&Array1<f64>, &Array1<f64>, &Array1<f64>) {
        (&self.scale, &self.shift, &self.gain)
    }

    /// Fits the map to the columns of `x` `(n, d)`.
    ///
    /// # Errors
    /// [`Error::EmptyData`] for no rows or columns; [`Error::NonFiniteData`] for NaN or
    /// infinity; [`Error::InvalidHyperparameter`] unless `lo < hi`, both finite, with
    /// `hi - lo` finite; [`Error::Unrepresentable`], naming the column, if a column's gain
    /// would be infinite, 0 or subnormal in `f64` (only for a `[lo, hi]` near `f64`'s limits).
    pub fn fit<T: Float>(x: ArrayView2<T>, scaling: Scaling) -> Result<Scaler> {
        check_rows(x, None, "data to fit a scaler on")?;
        let (n, d) = x.dim();
        let mut scale = Array1::ones(d);
        let mut shift = Array1::zeros(d);
        let mut gain = Array1::ones(d);
        let base = match scaling {
            Scaling::MinMax { lo, hi } => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite()) {
                    return Err(Error::hyper(
                        "min-max range",
                        format!("[{lo}, {hi}]"),
                        "finite lo < hi, with hi - lo finite",
                    ));
                }
                lo
            }
            Scaling::Standard => 0.0,
        };
        for (j, col) in x.columns().into_iter().enumerate() {
            let (min, max) = col
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v.as_f64()), b.max(v.as_f64()))
                });
            let s = power_of_two_below(min.abs().max(max.abs()));
            scale[j] = s;
            // In units of s every value lies in (-2, 2): no sum or square below overflows.
            match scaling {
                Scaling::MinMax { lo, hi } => {
                    let (min, max) = (min / s, max / s);
                    shift[j] = min;
                    if max > min {
                        gain[j] = (hi - lo) / (max - min);
                    }
                }
                Scaling::Standard => {
                    let mean = col.iter().map(|v| v.as_f64() / s).sum::<f64>() / n as f64;
                    let var = col
                        .iter()
                        .map(|v| (v.as_f64() / s - mean).powi(2))
                        .sum::<f64>()
                        / n as f64;
                    shift[j] = mean;
                    if var > 0.0 {
                        gain[j] = 1.0 / var.sqrt();
                    }
                }
            }
            if !gain[j].is_normal() {
                return Err(Error::Unrepresentable {
                    context: "Scaler::fit",
                    reason: format!(
                        "column {j} (values in [{min:e}, {max:e}]) needs a gain of {:e} (per {s:e}), \
                         which f64 cannot hold or invert; use a [lo, hi] further from f64's limits",
                        gain[j]
                    ),
                });
            }
        }
        Ok(Scaler {
            scaling,
            scale,
            shift,
            gain,
            base,
        })
    }

    /// The scaling this map was fitted for.
    pub fn scaling(&self) -> Scaling {
        self.scaling
    }

    /// Number of columns.
    pub fn n_features(&self) -> usize {
        self.shift.len()
    }

    /// `y = (x / s - shift) * gain + base` for each row of `x` `(n, d)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `d` wide; [`Error::NonFiniteData`] for NaN or
    /// infinity; [`Error::Unrepresentable`], naming the row and column, for a value the map
    /// sends past what `T` holds.
    pub fn transform<T: Float>(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        self.map(
            x,
            ["Scaler::transform input", "Scaler::transform output"],
            |v, s, shift, gain, base| (v / s - shift) * gain + base,
        )
    }

    /// The inverse, `x = ((y - base) / gain + shift) * s`, for each row of `y` `(n, d)`.
    ///
    /// # Errors
    /// As [`Scaler::transform`].
    pub fn inverse_transform<T: Float>(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.map(
            y,
            [
                "Scaler::inverse_transform input",
                "Scaler::inverse_transform output",
            ],
            |v, s, shift, gain, base| ((v - base) / gain + shift) * s,
        )
    }

    /// Applies `f(v, s, shift, gain, base)` to each value; `context` names the input and
    /// the output in errors.
    fn map<T: Float>(
        &self,
        x: ArrayView2<T>,
        context: [&'static str; 2],
        f: impl Fn(f64, f64, f64, f64, f64) -> f64,
    ) -> Result<Array2<T>> {
        check_width(x, self.n_features(), context[0])?;
        check_finite(x, context[0])?;
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            Zip::from(&mut row)
                .and(&self.scale)
                .and(&self.shift)
                .and(&self.gain)
                .for_each(|v, &s, &shift, &gain| {
                    *v = T::cast(f(v.as_f64(), s, shift, gain, self.base));
                });
        }
        // Finite input can still leave the range of `T`: data far outside the fitted range,
        // or a [lo, hi] past f32::MAX.
        if let Err(Error::NonFiniteData { row, col, .. }) = check_finite(out.view(), context[1]) {
            return Err(Error::Unrepresentable {
                context: context[1],
                reason: format!(
                    "row {row}, column {col}: {:e} lies too far outside the data the scaler \
                     was fitted on to map within the finite values of {}",
                    x[[row, col]].as_f64(),
                    T::NAME
                ),
            });
        }
        Ok(out)
    }
}

/// The order in which [`batches`] visits the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Rows `0, 1, 2, ...`.
    Sequential,
    /// A [`permutation`] drawn from the seed.
    Shuffled {
        /// Seed of the permutation.
        seed: u64,
    },
}

/// Iterator over mini-batches of rows; see [`batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a, T> {
    x: ArrayView2<'a, T>,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

/// Mini-batches of the rows of `x` `(n, d)`: `ceil(n / batch_size)` arrays of
/// `(batch_size, d)`, the last one smaller if `batch_size` does not divide `n`; every row
/// appears once. Each batch is a fresh array (the [`crate::Trainer`] batches internally
/// without allocating; this is for your own loops).
///
/// # Errors
/// [`Error::InvalidHyperparameter`] for `batch_size = 0`.
///
/// ```
/// use autoencoder::data::{batches, Order};
/// use ndarray::Array2;
/// # fn main() -> autoencoder::Result<()> {
/// let x = Array2::<f32>::zeros((10, 4));
/// let sizes: Vec<usize> = batches(x.view(), 4, Order::Shuffled { seed: 1 })?
///     .map(|b| b.nrows())
///     .collect();
/// assert_eq!(sizes, vec![4, 4, 2]);
/// # Ok(()) }
/// ```
pub fn batches<T: Clone>(
    x: ArrayView2<'_, T>,
    batch_size: usize,
    order: Order,
) -> Result<Batches<'_, T>> {
    check_range(
        "batch_size",
        batch_size as f64,
        batch_size >= 1,
        "at least 1",
    )?;
    let order = match order {
        Order::Sequential => (0..x.nrows()).collect(),
        Order::Shuffled { seed } => shuffled(x.nrows(), seed),
    };
    Ok(Batches {
        x,
        order,
        batch_size,
        next: 0,
    })
}

impl<T> Batches<'_, T> {
    /// The row order: batch `b` holds rows `order[b * batch_size ..]` (up to `batch_size`
    /// of them). Use it to pick the matching labels.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl<T: Clone> Iterator for Batches<'_, T> {
    type Item = Array2<T>;

    fn next(&mut self) -> Option<Array2<T>> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = self.x.select(Axis(0), &self.order[self.next..end]);
        self.next = end;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl<T: Clone> ExactSizeIterator for Batches<'_, T> {}
