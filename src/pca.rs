//! Principal component analysis: the linear baseline an autoencoder should beat.

use ndarray::{s, Array1, Array2, ArrayView2, Zip};

use crate::budget::check_elements;
use crate::compute::product;
use crate::data::{check_finite, check_rows, check_width, power_of_two_below};
use crate::error::{Error, Result};
use crate::float::Float;

/// PCA fitted on a data set: its mean and its top `k` principal directions, computed
/// exactly (in `f64`) from the eigenvectors of the covariance matrix (Householder
/// tridiagonalization and implicit QL).
///
/// Everything is computed in units of `s`, the power of two below the data's largest `|x|`:
/// dividing by it is exact, so the results are those of the plain formulas to the bit, but
/// no sum or square overflows, even for data near `f64::MAX`. What cannot be represented
/// (a variance past `f64::MAX`, a coordinate of far-out data) is an error, never an
/// infinity or NaN.
///
/// A linear autoencoder with `k` code units and squared-error loss can at best match PCA
/// with `k` components, so this is the reference for reconstruction quality.
///
/// ```
/// use autoencoder::Pca;
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// let x = array![[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]];
/// let pca = Pca::fit(x.view(), 1)?;
/// let recon = pca.reconstruct(x.view())?;
/// assert!((&recon - &x).iter().all(|e| e.abs() < 1e-9)); // the data lie on a line
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Pca {
    scale: f64,                      // s, a power of two: the data's largest |x| in [s, 2s)
    mean: Array1<f64>,               // (d), in units of s
    components: Array2<f64>,         // (d, k), orthonormal columns, by decreasing variance
    explained_variance: Array1<f64>, // (k)
}

impl Pca {
    /// Fits `k` components to the rows of `x` `(n, d)`.
    ///
    /// # Errors
    /// [`Error::EmptyData`] for no rows or columns; [`Error::InvalidHyperparameter`] unless
    /// `1 <= k <= d`; [`Error::NonFiniteData`] for NaN or infinity; [`Error::TooLarge`] if
    /// the `(d, d)` covariance exceeds [`crate::memory_limit`]; [`Error::Unrepresentable`]
    /// if a component's variance exceeds `f64::MAX` (data spread past about `1e154`: scale
    /// them first, e.g. with [`crate::data::Scaler`]).
    pub fn fit<T: Float>(x: ArrayView2<T>, k: usize) -> Result<Pca> {
        check_rows(x, None, "PCA data")?;
        let d = x.ncols();
        check_elements::<f64>("PCA covariance", &[d, d])?;
        if !(1..=d).contains(&k) {
            return Err(Error::hyper(
                "pca components",
                k,
                "a count in 1..=d (the data's width)",
            ));
        }
        let scale = power_of_two_below(x.iter().fold(0.0, |m, v| m.max(v.as_f64().abs())));
        let mean = mean_of(x, scale);
        let (values, vectors) = symmetric_eigen(covariance(x, &mean, scale));
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
    /// `(x - mean) components`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `d` wide; [`Error::NonFiniteData`] for NaN or
    /// infinity; [`Error::Unrepresentable`] for a coordinate past `f64::MAX`.
    pub fn transform<T: Float>(&self, x: ArrayView2<T>) -> Result<Array2<f64>> {
        let (coords, t) = self.project(x)?;
        finite_or_refuse(coords * t, "Pca::transform output")
    }

    /// The projection of each row of `x` onto the component subspace, `(n, d)`:
    /// `mean + (x - mean) components components^T`.
    ///
    /// # Errors
    /// As [`Pca::transform`].
    pub fn reconstruct<T: Float>(&self, x: ArrayView2<T>) -> Result<Array2<f64>> {
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
    fn project<T: Float>(&self, x: ArrayView2<T>) -> Result<(Array2<f64>, f64)> {
        check_width(x, self.mean.len(), "PCA input")?;
        check_finite(x, "PCA input")?;
        let t =
            power_of_two_below(x.iter().fold(0.0, |m, v| m.max(v.as_f64().abs()))).max(self.scale);
        let mut centered = x.mapv(|v| v.as_f64() / t); // (n, d), in units of t
        centered -= &(&self.mean * (self.scale / t));
        Ok((centered.dot(&self.components), t))
    }
}

/// `a`, or [`Error::Unrepresentable`] naming its first non-finite value.
fn finite_or_refuse(a: Array2<f64>, context: &'static str) -> Result<Array2<f64>> {
    match check_finite(a.view(), context) {
        Err(Error::NonFiniteData { row, col, .. }) => Err(Error::Unrepresentable {
            context,
            reason: format!(
                "row {row}, column {col} is past f64::MAX; the input lies far outside the data \
                 PCA was fitted on"
            ),
        }),
        _ => Ok(a),
    }
}

/// Column means of `x` `(n, d)` in units of `scale`, in `f64`.
fn mean_of<T: Float>(x: ArrayView2<T>, scale: f64) -> Array1<f64> {
    let mut sum = Array1::<f64>::zeros(x.ncols());
    for row in x.rows() {
        Zip::from(&mut sum)
            .and(row)
            .for_each(|s, &v| *s += v.as_f64() / scale);
    }
    sum / x.nrows() as f64
}

/// Covariance `1/n (x/scale - mean)^T (x/scale - mean)`, `(d, d)`, in `f64` and units of
/// `scale^2`, accumulated over chunks of rows so that no `f64` copy of the whole of `x` is
/// made.
fn covariance<T: Float>(x: ArrayView2<T>, mean: &Array1<f64>, scale: f64) -> Array2<f64> {
    const CHUNK: usize = 2048;
    let (n, d) = x.dim();
    let mut cov = Array2::<f64>::zeros((d, d));
    let mut centered = Array2::<f64>::zeros((CHUNK.min(n), d)); // (chunk, d)
    for start in (0..n).step_by(CHUNK) {
        let rows = CHUNK.min(n - start);
        let mut c = centered.slice_mut(s![..rows, ..]);
        Zip::from(&mut c)
            .and(x.slice(s![start..start + rows, ..]))
            .and_broadcast(mean)
            .for_each(|c, &v, &m| *c = v.as_f64() / scale - m);
        product(1.0 / n as f64, &c.t(), &c.view(), 1.0, &mut cov.view_mut());
    }
    cov
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
