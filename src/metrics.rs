//! Metrics on plain arrays: how well scores separate two classes (ROC-AUC, average
//! precision, precision and recall at a threshold), thresholds from scores (a quantile, a
//! contamination fraction), and reconstruction errors (per-sample and mean MSE and binary
//! cross-entropy, PSNR).
//!
//! Scores are `f64`, higher meaning "more likely positive" (for anomaly detection: a
//! larger reconstruction error, [`crate::Autoencoder::reconstruction_errors`]); labels are
//! `bool`, `true` for the positive class (the anomalies). Every function checks its inputs
//! (same length, not empty, finite, both classes present where the metric needs them) and
//! returns an [`Error`] naming what is wrong.
//!
//! ```
//! use autoencoder::metrics;
//! use ndarray::array;
//! # fn main() -> autoencoder::Result<()> {
//! let scores = array![0.1, 0.4, 0.35, 0.8];
//! let anomalous = array![false, false, true, true];
//! assert_eq!(metrics::roc_auc(scores.view(), anomalous.view())?, 0.75);
//! let threshold = metrics::quantile(scores.view(), 0.5)?; // 0.375
//! let c = metrics::confusion(scores.view(), anomalous.view(), threshold)?;
//! assert_eq!((c.precision(), c.recall()), (Some(0.5), Some(0.5)));
//! # Ok(()) }
//! ```

use ndarray::{Array1, ArrayView1, ArrayView2, Axis, Zip};

use crate::data::{check_finite, check_rows};
use crate::error::{check_range, Error, Result};
use crate::float::Float;
use crate::objective::loss::bce_of_probabilities;

/// The area under the ROC curve of `scores` for `labels` (both `(n)`): the probability that
/// a random positive scores higher than a random negative, ties counting one half. Computed
/// exactly from ranks (Mann-Whitney): `(sum of the positives' ranks - P (P + 1) / 2) / (P N)`
/// for `P` positives and `N` negatives, tied scores sharing their mean rank. 1 is a perfect
/// ranking, 0.5 chance.
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let auc = autoencoder::metrics::roc_auc(array![0.9, 0.2, 0.5].view(), array![true, false, false].view())?;
/// assert_eq!(auc, 1.0);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] if the lengths differ; [`Error::EmptyData`] if empty;
/// [`Error::NonFiniteData`] for a NaN or infinite score; [`Error::InvalidConfig`] if the
/// labels hold only one class.
pub fn roc_auc(scores: ArrayView1<f64>, labels: ArrayView1<bool>) -> Result<f64> {
    let (positives, negatives) = check_scores(scores, labels, "roc_auc")?;
    let order = sorted_order(scores);
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        // The run of tied scores order[i..j] shares the mean of ranks i+1 ..= j.
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        let tied_positives = order[i..j].iter().filter(|&&k| labels[k]).count();
        rank_sum += mean_rank * tied_positives as f64;
        i = j;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The average precision of `scores` for `labels` (both `(n)`), as scikit-learn's
/// `average_precision_score` computes it: `sum_k (R_k - R_{k-1}) P_k` over the distinct
/// scores taken as thresholds from the highest down, where `P_k` and `R_k` are the
/// precision and recall of flagging every sample scoring at least the `k`-th threshold
/// (`R_0 = 0`). 1 is a perfect ranking; chance is the fraction of positives.
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let ap = autoencoder::metrics::average_precision(
///     array![0.1, 0.4, 0.35, 0.8].view(),
///     array![false, false, true, true].view(),
/// )?;
/// assert!((ap - 5.0 / 6.0).abs() < 1e-15); // (1/2) 1 + (1/2) (2/3)
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`roc_auc`] (a set without positives has no recall to average over).
pub fn average_precision(scores: ArrayView1<f64>, labels: ArrayView1<bool>) -> Result<f64> {
    let (positives, _) = check_scores(scores, labels, "average_precision")?;
    let mut order = sorted_order(scores);
    order.reverse(); // highest first
    let (mut tp, mut flagged, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        tp += order[i..j].iter().filter(|&&k| labels[k]).count();
        flagged += j - i;
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * (tp as f64 / flagged as f64);
        last_recall = recall;
        i = j;
    }
    Ok(ap)
}

/// The counts of flagging as positive every sample whose score is strictly above a
/// threshold; from [`confusion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confusion {
    /// Positives flagged.
    pub true_positives: usize,
    /// Negatives flagged.
    pub false_positives: usize,
    /// Negatives not flagged.
    pub true_negatives: usize,
    /// Positives not flagged.
    pub false_negatives: usize,
}

impl Confusion {
    /// `TP / (TP + FP)`: the fraction of flagged samples that are positive; `None` if
    /// nothing was flagged.
    pub fn precision(&self) -> Option<f64> {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// `TP / (TP + FN)`: the fraction of positives flagged; `None` without positives.
    pub fn recall(&self) -> Option<f64> {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// `FP / (FP + TN)`: the fraction of negatives flagged; `None` without negatives.
    pub fn false_positive_rate(&self) -> Option<f64> {
        ratio(
            self.false_positives,
            self.false_positives + self.true_negatives,
        )
    }

    /// The harmonic mean of precision and recall, `2 TP / (2 TP + FP + FN)`; `None` if
    /// there is neither a positive nor a flagged sample.
    pub fn f1(&self) -> Option<f64> {
        ratio(
            2 * self.true_positives,
            2 * self.true_positives + self.false_positives + self.false_negatives,
        )
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Flags every sample whose score is strictly above `threshold` and counts the outcomes
/// against `labels` (both `(n)`); [`Confusion::precision`] and [`Confusion::recall`] give
/// precision and recall at that threshold. Either class may be absent.
///
/// # Errors
/// [`Error::ShapeMismatch`], [`Error::EmptyData`] or [`Error::NonFiniteData`] as for
/// [`roc_auc`]; [`Error::InvalidHyperparameter`] for a NaN threshold.
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let c = autoencoder::metrics::confusion(array![0.1, 0.7, 0.9].view(), array![false, false, true].view(), 0.5)?;
/// assert_eq!((c.true_positives, c.false_positives, c.true_negatives), (1, 1, 1));
/// assert_eq!(c.precision(), Some(0.5));
/// # Ok(()) }
/// ```
pub fn confusion(
    scores: ArrayView1<f64>,
    labels: ArrayView1<bool>,
    threshold: f64,
) -> Result<Confusion> {
    check_pair(scores, labels, "confusion")?;
    check_range(
        "threshold",
        threshold,
        !threshold.is_nan(),
        "a number (not NaN)",
    )?;
    let mut c = Confusion {
        true_positives: 0,
        false_positives: 0,
        true_negatives: 0,
        false_negatives: 0,
    };
    for (&s, &positive) in scores.iter().zip(labels) {
        match (s > threshold, positive) {
            (true, true) => c.true_positives += 1,
            (true, false) => c.false_positives += 1,
            (false, false) => c.true_negatives += 1,
            (false, true) => c.false_negatives += 1,
        }
    }
    Ok(c)
}

/// The `q`-quantile of `scores` `(n)`, interpolating linearly between the two nearest
/// sorted values as NumPy's default does: with the values sorted, `v[lo] + (h - lo)
/// (v[lo + 1] - v[lo])` for `h = (n - 1) q`, `lo = floor(h)`. `q = 0` gives the minimum,
/// `q = 1` the maximum. On the scores of normal data, a threshold that flags a fraction
/// `1 - q` of them (see [`contamination_threshold`]).
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let s = array![4.0, 1.0, 3.0, 2.0];
/// assert_eq!(autoencoder::metrics::quantile(s.view(), 0.5)?, 2.5);
/// assert_eq!(autoencoder::metrics::quantile(s.view(), 1.0)?, 4.0);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::EmptyData`] if empty; [`Error::NonFiniteData`] for a NaN or infinite score;
/// [`Error::InvalidHyperparameter`] for `q` outside `[0, 1]`.
pub fn quantile(scores: ArrayView1<f64>, q: f64) -> Result<f64> {
    check_range("q", q, (0.0..=1.0).contains(&q), "a value in [0, 1]")?;
    check_scores_alone(scores, "quantile")?;
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Ok(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// The threshold that flags a fraction `contamination` of `scores` (computed on normal
/// data, e.g. the training set's reconstruction errors): the `1 - contamination`
/// [`quantile`]. Samples scoring strictly above it are flagged ([`confusion`]).
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::Array1;
/// let train_scores = Array1::from_iter((1..=100).map(f64::from));
/// let t = autoencoder::metrics::contamination_threshold(train_scores.view(), 0.05)?;
/// assert_eq!(train_scores.iter().filter(|&&s| s > t).count(), 5);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`quantile`]; [`Error::InvalidHyperparameter`] for `contamination` outside `[0, 1]`.
pub fn contamination_threshold(scores: ArrayView1<f64>, contamination: f64) -> Result<f64> {
    check_range(
        "contamination",
        contamination,
        (0.0..=1.0).contains(&contamination),
        "a fraction in [0, 1]",
    )?;
    quantile(scores, 1.0 - contamination)
}

/// Each row's mean squared error between `x` and `recon` (both `(n, d)`):
/// `1/d sum_j (x_ij - recon_ij)^2`, as `(n)` in `f64`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes differ; [`Error::EmptyData`];
/// [`Error::NonFiniteData`].
pub fn mse_per_sample<T: Float>(x: ArrayView2<T>, recon: ArrayView2<T>) -> Result<Array1<f64>> {
    check_same(x, recon, "mse")?;
    Ok(Zip::from(x.rows()).and(recon.rows()).map_collect(|a, b| {
        let sum = a.iter().zip(b).fold(0.0, |s, (&a, &b)| {
            let d = a.as_f64() - b.as_f64();
            s + d * d
        });
        sum / a.len() as f64
    }))
}

/// The mean squared error over all elements of `x` and `recon` (both `(n, d)`):
/// `1/(n d) sum (x - recon)^2`, the mean of [`mse_per_sample`].
///
/// # Errors
/// As [`mse_per_sample`].
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let e = autoencoder::metrics::mse(array![[0.0, 1.0]].view(), array![[0.5, 1.0]].view())?;
/// assert_eq!(e, 0.125);
/// # Ok(()) }
/// ```
pub fn mse<T: Float>(x: ArrayView2<T>, recon: ArrayView2<T>) -> Result<f64> {
    Ok(mean(&mse_per_sample(x, recon)?))
}

/// Each row's binary cross-entropy of probabilities `p` against targets `x` in `[0, 1]`
/// (both `(n, d)`): `-1/d sum_j (x_ij ln p_ij + (1 - x_ij) ln(1 - p_ij))`, with `p` clipped
/// to `[1e-7, 1 - 1e-7]` as [`crate::bce_of_probabilities`] does; `(n)` in `f64`. For a
/// model's own loss from logits, use [`crate::Autoencoder::reconstruction_errors`].
///
/// # Errors
/// As [`mse_per_sample`], and [`Error::InvalidConfig`] for a target outside `[0, 1]`.
pub fn bce_per_sample<T: Float>(x: ArrayView2<T>, p: ArrayView2<T>) -> Result<Array1<f64>> {
    check_same(x, p, "bce")?;
    crate::objective::loss::Loss::BinaryCrossEntropy.validate_targets(x, "bce targets")?;
    Ok(Zip::from(x.rows())
        .and(p.rows())
        .map_collect(|x, p| bce_of_probabilities(p.insert_axis(Axis(0)), x.insert_axis(Axis(0)))))
}

/// The mean binary cross-entropy over all elements, the mean of [`bce_per_sample`].
///
/// # Errors
/// As [`bce_per_sample`].
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let e = autoencoder::metrics::bce(array![[1.0, 0.0]].view(), array![[0.5, 0.5]].view())?;
/// assert!((e - std::f64::consts::LN_2).abs() < 1e-15);
/// # Ok(()) }
/// ```
pub fn bce<T: Float>(x: ArrayView2<T>, p: ArrayView2<T>) -> Result<f64> {
    Ok(mean(&bce_per_sample(x, p)?))
}

/// The peak signal-to-noise ratio of `recon` against `x` (both `(n, d)`), in decibels:
/// `10 log10(peak^2 / MSE)` with the [`mse`] over all elements; `peak` is the largest
/// possible value (1 for data in `[0, 1]`, 255 for bytes). Infinite when the two are equal.
///
/// ```
/// # fn main() -> autoencoder::Result<()> {
/// use ndarray::array;
/// let db = autoencoder::metrics::psnr(array![[0.0, 1.0]].view(), array![[0.1, 0.9]].view(), 1.0)?;
/// assert!((db - 20.0).abs() < 1e-9); // MSE 0.01
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`mse`]; [`Error::InvalidHyperparameter`] unless `peak` is finite and `> 0`.
pub fn psnr<T: Float>(x: ArrayView2<T>, recon: ArrayView2<T>, peak: f64) -> Result<f64> {
    crate::error::check_positive("peak", peak)?;
    let e = mse(x, recon)?;
    Ok(10.0 * (peak * peak / e).log10())
}

/// The mean of a non-empty array, summed in order.
fn mean(v: &Array1<f64>) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Checks two arrays of one shape, non-empty and finite.
fn check_same<T: Float>(x: ArrayView2<T>, y: ArrayView2<T>, context: &'static str) -> Result<()> {
    check_rows(x, None, context)?;
    if x.dim() != y.dim() {
        return Err(Error::ShapeMismatch {
            context,
            expected: format!("{:?}, the shape of the first array", x.dim()),
            found: format!("{:?}", y.dim()),
        });
    }
    check_finite(y, context)
}

/// Checks scores: non-empty and finite.
fn check_scores_alone(scores: ArrayView1<f64>, context: &'static str) -> Result<()> {
    check_rows(scores.insert_axis(Axis(1)), None, context)
}

/// Checks scores and labels of one length, scores non-empty and finite.
fn check_pair(
    scores: ArrayView1<f64>,
    labels: ArrayView1<bool>,
    context: &'static str,
) -> Result<()> {
    check_scores_alone(scores, context)?;
    if scores.len() != labels.len() {
        return Err(Error::ShapeMismatch {
            context,
            expected: format!("{} labels, one per score", scores.len()),
            found: format!("{}", labels.len()),
        });
    }
    Ok(())
}

/// [`check_pair`], and both classes present; returns the numbers of positives and negatives.
fn check_scores(
    scores: ArrayView1<f64>,
    labels: ArrayView1<bool>,
    context: &'static str,
) -> Result<(usize, usize)> {
    check_pair(scores, labels, context)?;
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(Error::InvalidConfig(format!(
            "{context} needs both classes, but the {} labels hold {positives} positives and \
             {negatives} negatives",
            labels.len()
        )));
    }
    Ok((positives, negatives))
}

/// The indices of `scores` in increasing order of score (finite, checked).
fn sorted_order(scores: ArrayView1<f64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order
}
