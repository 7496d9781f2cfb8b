//! Principal component analysis: the linear baseline an autoencoder should beat, fitted
//! from any [`RowSource`] in a few streaming passes.

use std::marker::PhantomData;

use ndarray::{s, Array1, Array2, ArrayView2, Zip};
use serde::{Deserialize, Serialize};

use crate::budget::check_elements;
use crate::compute::product;
use crate::data::source::{at_row, check_shape, RowSource};
use crate::data::{check_finite, check_width, power_of_two_below};
use crate::error::{Error, Result};
use crate::float::Float;

/// Rows per chunk of every pass over the data: the same for data in memory and streamed,
/// so both give the same bits.
const CHUNK: usize = 2048;

/// PCA fitted on a data set: its mean and its top `k` principal directions, computed
/// exactly (in `f64`) from the eigenvectors of the covariance matrix (Householder
/// tridiagonalization and implicit QL). `T` is the caller's element type: [`Pca::transform`]
/// and [`Pca::reconstruct`] take and return arrays of `T`; the fitted quantities stay in
/// `f64`.
///
/// The data are any [`RowSource`] (an array in memory, a `.npy` file, shards): the fit
/// reads them three times in chunks of 2048 rows (largest `|x|`, mean, covariance), so it
/// needs memory for the `(d, d)` covariance and two chunks, whatever the number of rows,
/// and gives the same bits for the same rows wherever they are stored.
///
/// Everything is computed in units of `s`, the power of two below the data's largest `|x|`:
/// dividing by it is exact, so the results are those of the plain formulas to the bit, but
/// no sum or square overflows, even for data near `f64::MAX`. What cannot be represented
/// (a variance past `f64::MAX`, a coordinate of far-out data, an output past `f32::MAX`) is
/// an error, never an infinity or NaN.
///
/// A linear autoencoder with `k` code units and squared-error loss can at best match PCA
/// with `k` components, so this is the reference for reconstruction quality. `Pca`
/// serializes (serde) with its fitted values; deserializing checks them as a fit would
/// leave them.
///
/// ```
/// use autoencoder::Pca;
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// let x = array![[1.0f32, 2.0], [2.0, 4.0], [3.0, 6.0]];
/// let pca = Pca::fit(x.view(), 1)?;
/// let recon = pca.reconstruct(x.view())?; // Array2<f32>, as x
/// assert!((&recon - &x).iter().all(|e| e.abs() < 1e-6)); // the data lie on a line
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PcaParts", into = "PcaParts")]
#[serde(bound(serialize = "T: Clone", deserialize = ""))]
pub struct Pca<T = f64> {
    scale: f64,                      // s, a power of two: the data's largest |x| in [s, 2s)
    mean: Array1<f64>,               // (d), in units of s
    components: Array2<f64>,         // (d, k), orthonormal columns, by decreasing variance
    explained_variance: Array1<f64>, // (k)
    element: PhantomData<fn() -> T>,
}

/// What a [`Pca`] saves: its fields, checked on the way in.
#[derive(Serialize, Deserialize)]
struct PcaParts {
    scale: f64,
    mean: Array1<f64>,
    components: Array2<f64>,
    explained_variance: Array1<f64>,
}

impl<T> From<Pca<T>> for PcaParts {
    fn from(p: Pca<T>) -> PcaParts {
        PcaParts {
            scale: p.scale,
            mean: p.mean,
            components: p.components,
            explained_variance: p.explained_variance,
        }
    }
}

impl<T> TryFrom<PcaParts> for Pca<T> {
    type Error = String;

    /// Accepts what a fit leaves: a power of two `scale`, `d >= 1`, `1 <= k <= d`, finite
    /// values, variances `>= 0` by decreasing value, orthonormal components (to `1e-6`).
    fn try_from(p: PcaParts) -> std::result::Result<Pca<T>, String> {
        let (d, k) = p.components.dim();
        let finite = |a: &[f64]| a.iter().all(|v| v.is_finite());
        let power_of_two =
            p.scale.is_finite() && p.scale > 0.0 && power_of_two_below(p.scale) == p.scale;
        if !power_of_two {
            return Err(format!(
                "PCA scale {} is not a finite power of two",
                p.scale
            ));
        }
        if d == 0 || !(1..=d).contains(&k) || p.mean.len() != d || p.explained_variance.len() != k {
            return Err(format!(
                "PCA shapes do not agree: mean ({}), components {:?}, explained variance ({}); \
                 expected (d), (d, k), (k) with 1 <= k <= d",
                p.mean.len(),
                p.components.dim(),
                p.explained_variance.len()
            ));
        }
        let all_finite = p
            .mean
            .iter()
            .chain(&p.components)
            .chain(&p.explained_variance);
        if !all_finite.clone().all(|v| v.is_finite()) || !finite(&[p.scale]) {
            return Err("PCA values must be finite".into());
        }
        let var = &p.explained_variance;
        if !var.iter().all(|&v| v >= 0.0) || var.windows(2).into_iter().any(|w| w[0] < w[1]) {
            return Err(format!("PCA variances must be >= 0 and decreasing: {var}"));
        }
        let gram = p.components.t().dot(&p.components);
        let off = gram
            .indexed_iter()
            .map(|((i, j), &g)| (g - if i == j { 1.0 } else { 0.0 }).abs())
            .fold(0.0, f64::max);
        if off.is_nan() || off > 1e-6 {
            return Err(format!(
                "PCA components are not orthonormal: |C^T C - I| reaches {off:e}"
            ));
        }
        Ok(Pca {
            scale: p.scale,
            mean: p.mean,
            components: p.components,
            explained_variance: p.explained_variance,
            element: PhantomData,
        })
    }
}

impl<T: Float> Pca<T> {
    /// Fits `k` components to the rows of `x` `(n, d)`, any [`RowSource`] of `T`.
    ///
    /// # Errors
    /// [`Error::EmptyData`] for no rows or columns; [`Error::InvalidHyperparameter`] unless
    /// `1 <= k <= d`; [`Error::NonFiniteData`] for NaN or infinity (naming its row in `x`);
    /// [`Error::TooLarge`] if the `(d, d)` covariance exceeds [`crate::memory_limit`];
    /// [`Error::Unrepresentable`] if a component's variance exceeds `f64::MAX` (data
    /// spread past about `1e154`: scale them first, e.g. with [`crate::data::Scaler`]); the
    /// source's error if a read fails.
    pub fn fit(x: impl RowSource<T>, k: usize) -> Result<Pca<T>> {
        let x = &x;
        check_shape(x, None, "PCA data")?;
        let (n, d) = (x.n_rows(), x.width());
        check_elements::<f64>("PCA covariance", &[d, d])?;
        if !(1..=d).contains(&k) {
            return Err(Error::hyper(
                "pca components",
                k,
                "a count in 1..=d (the data's width)",
            ));
        }
        let rows = CHUNK.min(n);
        check_elements::<f64>("PCA chunks", &[2, rows, d])?;
        let mut chunk = Chunks::new(x, rows);
        let mut largest = 0.0_f64;
        chunk.each(|part, first| {
            check_finite(part, "PCA data").map_err(|e| at_row(e, first))?;
            largest = part.iter().fold(largest, |m, v| m.max(v.as_f64().abs()));
            Ok(())
        })?;
        let scale = power_of_two_below(largest);
        let mean = mean_of(&mut chunk, scale)?;
        let (values, vectors) = symmetric_eigen(covariance(&mut chunk, &mean, scale)?);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut components = Array2::zeros((d, k));
        let mut explained_variance = Array1::zeros(k);
        for (c, &i) in order.iter().take(k).enumerate() {
            components.column_mut(c).assign(&vectors.column(i));
            explained_variance[c] = values[i] * scale * scale;
            if !explained_variance[c].is_finite() {
                return Err(Error::Unrepresentable {
                    context: "Pca::fit",
                    reason: format!(
                        "the variance along component {c} is {:e} x {scale:e}^2, past f64::MAX; \
                         scale the data first (e.g. data::Scaler with Scaling::Standard)",
                        values[i]
                    ),
                });
            }
        }
        Ok(Pca {
            scale,
            mean,
            components,
            explained_variance,
            element: PhantomData,
        })
    }

    /// Number of components.
    pub fn n_components(&self) -> usize {
        self.components.ncols()
    }

    /// The principal directions, `(d, k)`, orthonormal columns by decreasing variance.
    pub fn components(&self) -> &Array2<f64> {
        &self.components
    }

    /// The variance along each direction, `(k)`.
    pub fn explained_variance(&self) -> &Array1<f64> {
        &self.explained_variance
    }

    /// Coordinates of each row of `x` `(n, d)` on the components: `(n, k)`,
    /// `(x - mean) components`, computed in `f64` and rounded to `T`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `d` wide; [`Error::NonFiniteData`] for NaN or
    /// infinity; [`Error::Unrepresentable`] for a coordinate past `T`'s largest value.
    pub fn transform(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let (coords, t) = self.project(x)?;
        finite_or_refuse(coords * t, "Pca::transform output")
    }

    /// The projection of each row of `x` onto the component subspace, `(n, d)`:
    /// `mean + (x - mean) components components^T`, computed in `f64` and rounded to `T`.
    ///
    /// # Errors
    /// As [`Pca::transform`].
    pub fn reconstruct(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let (coords, t) = self.project(x)?;
        let mean = &self.mean * (self.scale / t);
        finite_or_refuse(
            (coords.dot(&self.components.t()) + mean) * t,
            "Pca::reconstruct output",
        )
    }

    /// The coordinates of `x` `(n, d)` in units of `t`, `(n, k)`, and `t`, after the input
    /// checks: `t` is the power of two below the largest `|x|`, or `s` if that is larger, so
    /// that no step overflows for inputs far from the fitted data.
    fn project(&self, x: ArrayView2<T>) -> Result<(Array2<f64>, f64)> {
        check_width(x, self.mean.len(), "PCA input")?;
        check_finite(x, "PCA input")?;
        let t =
            power_of_two_below(x.iter().fold(0.0, |m, v| m.max(v.as_f64().abs()))).max(self.scale);
        let mut centered = x.mapv(|v| v.as_f64() / t); // (n, d), in units of t
        centered -= &(&self.mean * (self.scale / t));
        Ok((centered.dot(&self.components), t))
    }
}

/// `a` rounded to `T`, or [`Error::Unrepresentable`] naming its first value past `T`'s
/// range.
fn finite_or_refuse<T: Float>(a: Array2<f64>, context: &'static str) -> Result<Array2<T>> {
    let a = a.mapv(T::cast);
    match check_finite(a.view(), context) {
        Err(Error::NonFiniteData { row, col, .. }) => Err(Error::Unrepresentable {
            context,
            reason: format!(
                "row {row}, column {col} is past {}::MAX; the input lies far outside the data \
                 PCA was fitted on",
                T::NAME
            ),
        }),
        _ => Ok(a),
    }
}

/// The passes over a source in chunks of [`CHUNK`] rows: views straight into data in
/// memory, or rows read into one buffer.
struct Chunks<'a, T: Float, S: RowSource<T> + ?Sized> {
    source: &'a S,
    buffer: Array2<T>, // (rows, d) for streamed sources, (0, d) in memory
}

impl<'a, T: Float, S: RowSource<T> + ?Sized> Chunks<'a, T, S> {
    fn new(source: &'a S, rows: usize) -> Self {
        let rows = if source.as_array().is_some() { 0 } else { rows };
        Chunks {
            source,
            buffer: Array2::zeros((rows, source.width())),
        }
    }

    /// Calls `f(chunk, first row)` on each chunk in order.
    fn each(&mut self, mut f: impl FnMut(ArrayView2<T>, usize) -> Result<()>) -> Result<()> {
        let n = self.source.n_rows();
        for first in (0..n).step_by(CHUNK) {
            let rows = CHUNK.min(n - first);
            match self.source.as_array() {
                Some(x) => f(x.slice(s![first..first + rows, ..]), first)?,
                None => {
                    let mut part = self.buffer.slice_mut(s![..rows, ..]);
                    self.source.read_rows(first, part.view_mut())?;
                    f(part.view(), first)?;
                }
            }
        }
        Ok(())
    }
}

/// Column means of the source `(n, d)` in units of `scale`, in `f64`, summed row by row.
fn mean_of<T: Float, S: RowSource<T> + ?Sized>(
    chunks: &mut Chunks<'_, T, S>,
    scale: f64,
) -> Result<Array1<f64>> {
    let mut sum = Array1::<f64>::zeros(chunks.source.width());
    chunks.each(|part, _| {
        for row in part.rows() {
            Zip::from(&mut sum)
                .and(row)
                .for_each(|s, &v| *s += v.as_f64() / scale);
        }
        Ok(())
    })?;
    Ok(sum / chunks.source.n_rows() as f64)
}

/// Covariance `1/n (x/scale - mean)^T (x/scale - mean)`, `(d, d)`, in `f64` and units of
/// `scale^2`, accumulated over the chunks, so that no `f64` copy of the whole of `x` is
/// made.
fn covariance<T: Float, S: RowSource<T> + ?Sized>(
    chunks: &mut Chunks<'_, T, S>,
    mean: &Array1<f64>,
    scale: f64,
) -> Result<Array2<f64>> {
    let (n, d) = (chunks.source.n_rows(), chunks.source.width());
    let mut cov = Array2::<f64>::zeros((d, d));
    let mut centered = Array2::<f64>::zeros((CHUNK.min(n), d)); // (chunk, d)
    chunks.each(|part, _| {
        let rows = part.nrows();
        let mut c = centered.slice_mut(s![..rows, ..]);
        Zip::from(&mut c)
            .and(part)
            .and_broadcast(mean)
            .for_each(|c, &v, &m| *c = v.as_f64() / scale - m);
        product(1.0 / n as f64, &c.t(), &c.view(), 1.0, &mut cov.view_mut());
        Ok(())
    })?;
    Ok(cov)
}

/// Eigen-decomposition of a symmetric matrix `(d, d)`: returns (eigenvalues, eigenvectors
/// as columns), unordered. Householder reduction to tridiagonal form, then the implicit QL
/// algorithm (EISPACK `tred2` / `tql2`, as in JAMA): exact to rounding, `O(d^3)`, about a
/// second for MNIST's 784 dimensions.
fn symmetric_eigen(a: Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut v = a;
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    if n == 1 {
        return (Array1::from(vec![v[[0, 0]]]), Array2::eye(1));
    }
    tred2(&mut v, &mut d, &mut e);
    tql2(&mut v, &mut d, &mut e);
    (Array1::from(d), v)
}

/// Householder tridiagonalization of the symmetric `v` in place: on return `v` holds the
/// orthogonal transformation, `d` the diagonal and `e[1..]` the sub-diagonal.
#[allow(clippy::needless_range_loop)] // index form mirrors the published algorithm
fn tred2(v: &mut Array2<f64>, d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for j in 0..n {
        d[j] = v[[n - 1, j]];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[[i - 1, j]];
                v[[i, j]] = 0.0;
                v[[j, i]] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[[j, i]] = f;
                g = e[j] + v[[j, j]] * f;
                for k in j + 1..i {
                    g += v[[k, j]] * d[k];
                    e[k] += v[[k, j]] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[[k, j]] -= f * e[k] + g * d[k];
                }
                d[j] = v[[i - 1, j]];
                v[[i, j]] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[[n - 1, i]] = v[[i, i]];
        v[[i, i]] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[[k, i + 1]] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[[k, i + 1]] * v[[k, j]];
                }
                for k in 0..=i {
                    v[[k, j]] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[[k, i + 1]] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[[n - 1, j]];
        v[[n - 1, j]] = 0.0;
    }
    v[[n - 1, n - 1]] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal (`d`, `e`) from [`tred2`], accumulating the
/// rotations into `v`: on return `d` holds the eigenvalues and `v`'s columns the eigenvectors.
#[allow(clippy::needless_range_loop)] // index form mirrors the published algorithm
fn tql2(v: &mut Array2<f64>, d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            for _iteration in 0..100 {
                let g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for i in l + 2..n {
                    d[i] -= h;
                }
                f += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    let g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        let h = v[[k, i + 1]];
                        v[[k, i + 1]] = s * v[[k, i]] + c * h;
                        v[[k, i]] = c * v[[k, i]] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `A V = V diag(values)` and `V^T V = I` to rounding, on random symmetric matrices
    /// (including a rank-deficient one with repeated zero eigenvalues, as MNIST's constant
    /// border pixels give).
    #[test]
    fn eigen_decomposition_is_exact_to_rounding() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (d, rank) in [(1, 1), (2, 2), (7, 7), (60, 60), (60, 5)] {
            let b = Array2::from_shape_simple_fn((rank, d), || rng.random_range(-1.0..1.0));
            let a = b.t().dot(&b) + Array2::from_shape_fn((d, d), |(i, j)| (i + j) as f64 * 1e-3);
            let (values, v) = symmetric_eigen(a.clone());
            let residual = &a.dot(&v) - &(&v * &values);
            let orth = &v.t().dot(&v) - &Array2::<f64>::eye(d);
            let max = |m: &Array2<f64>| m.iter().fold(0.0_f64, |acc, x| acc.max(x.abs()));
            assert!(
                max(&residual) < 1e-12 * (1.0 + max(&a)),
                "d {d}: {}",
                max(&residual)
            );
            assert!(max(&orth) < 1e-12, "d {d}: {}", max(&orth));
        }
    }
}
