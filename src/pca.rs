//! Principal component analysis: the linear baseline an autoencoder should beat.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::{Error, Float, Result};

/// PCA fitted on a data set: its mean and its top `k` principal directions, computed
/// exactly (in `f64`) from the eigenvectors of the covariance matrix by cyclic Jacobi
/// rotations.
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
    mean: Array1<f64>,               // (d)
    components: Array2<f64>,         // (d, k), orthonormal columns, by decreasing variance
    explained_variance: Array1<f64>, // (k)
}

impl Pca {
    /// Fits `k` components to the rows of `x` `(n, d)`.
    ///
    /// # Errors
    /// [`Error::EmptyData`] for no rows or columns; [`Error::InvalidHyperparameter`] unless
    /// `1 <= k <= d`; [`Error::NonFiniteData`] for NaN or infinity.
    pub fn fit<T: Float>(x: ArrayView2<T>, k: usize) -> Result<Pca> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(Error::EmptyData {
                context: "PCA data",
                rows: n,
                cols: d,
            });
        }
        if !(1..=d).contains(&k) {
            return Err(Error::hyper(
                "pca components",
                k,
                "a count in 1..=d (the data's width)",
            ));
        }
        crate::data::check_finite(x, "PCA data")?;
        let x = x.mapv(|v| v.as_f64());
        let mean = x.mean_axis(Axis(0)).expect("n > 0");
        let centered = &x - &mean;
        let cov = centered.t().dot(&centered) / n as f64;
        let (values, vectors) = symmetric_eigen(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut components = Array2::zeros((d, k));
        let mut explained_variance = Array1::zeros(k);
        for (c, &i) in order.iter().take(k).enumerate() {
            components.column_mut(c).assign(&vectors.column(i));
            explained_variance[c] = values[i];
        }
        Ok(Pca {
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

    /// Coordinates of each row of `x` `(n, d)` on the components: `(n, k)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `d` wide.
    pub fn transform<T: Float>(&self, x: ArrayView2<T>) -> Result<Array2<f64>> {
        crate::data::check_width(x, self.mean.len(), "PCA input")?;
        Ok((&x.mapv(|v| v.as_f64()) - &self.mean).dot(&self.components))
    }

    /// The projection of each row of `x` onto the component subspace, `(n, d)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `d` wide.
    pub fn reconstruct<T: Float>(&self, x: ArrayView2<T>) -> Result<Array2<f64>> {
        Ok(self.transform(x)?.dot(&self.components.t()) + &self.mean)
    }
}

/// Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations:
/// returns (eigenvalues, eigenvectors as columns).
fn symmetric_eigen(mut a: Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let d = a.nrows();
    let mut v = Array2::<f64>::eye(d);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|p| (p + 1..d).map(move |q| (p, q)))
            .map(|(p, q)| a[[p, q]].powi(2))
            .sum();
        let scale: f64 = a
            .diag()
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        if off <= 1e-22 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[[p, q]];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- J^T A J on rows/columns p, q.
                for k in 0..d {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    (a.diag().to_owned(), v)
}
