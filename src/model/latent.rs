//! The Gaussian latent of a VAE: the reparameterization `z = mu + sigma eps` with its
//! backward pass right below it, and its KL divergence to the prior `N(0, I)`.

use ndarray::{s, ArrayView2, ArrayViewMut2, Zip};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::architecture::{Architecture, Latent};
use crate::error::{check_non_negative, Error, Result};
use crate::float::Float;

/// Forward: from the code layer's output `code = [mu | log sigma^2]` `(rows, 2k)`, draws
/// `eps ~ N(0, I)` `(rows, k)` from `rng` (or sets `eps = 0` without one, so `z = mu`) and
/// writes `sample = mu + exp(log sigma^2 / 2) eps` `(rows, k)`, the decoder's input.
pub(crate) fn reparameterize<T: Float>(
    code: ArrayView2<T>,
    mut eps: ArrayViewMut2<T>,
    sample: ArrayViewMut2<T>,
    rng: Option<&mut ChaCha8Rng>,
) {
    let k = sample.ncols();
    match rng {
        Some(rng) => eps.mapv_inplace(|_| T::cast(StandardNormal.sample(rng))),
        None => eps.fill(T::zero()),
    }
    let half = T::cast(0.5);
    Zip::from(sample)
        .and(code.slice(s![.., ..k]))
        .and(code.slice(s![.., k..]))
        .and(&eps)
        .for_each(|z, &mu, &logvar, &e| *z = mu + (half * logvar).exp() * e);
}

/// Draws and discards the `eps` of `rows` rows of a `k`-unit Gaussian latent: exactly what
/// [`reparameterize`] draws for them. A distributed rank skips the rows of the batch before
/// and after its part, so that its `eps` (and the generator) are those of one process.
pub(crate) fn skip_eps(rows: usize, k: usize, rng: &mut ChaCha8Rng) {
    for _ in 0..rows * k {
        let _: f64 = StandardNormal.sample(rng);
    }
}

/// Backward of [`reparameterize`]: from `d_sample = dL/dz` `(rows, k)` writes
/// `d_code = dL/d[mu | log sigma^2]` `(rows, 2k)`:
/// `dL/dmu = dL/dz`, `dL/dlogvar = dL/dz * eps * exp(logvar / 2) / 2`.
pub(crate) fn reparameterize_backward<T: Float>(
    d_sample: ArrayView2<T>,
    code: ArrayView2<T>,
    eps: ArrayView2<T>,
    mut d_code: ArrayViewMut2<T>,
) {
    let k = d_sample.ncols();
    let half = T::cast(0.5);
    d_code.slice_mut(s![.., ..k]).assign(&d_sample);
    Zip::from(d_code.slice_mut(s![.., k..]))
        .and(&d_sample)
        .and(code.slice(s![.., k..]))
        .and(&eps)
        .for_each(|d, &dz, &logvar, &e| *d = dz * e * half * (half * logvar).exp());
}

/// The VAE's `KL(q(z | x) || N(0, I))` on a Gaussian code layer, with weight `beta`
/// (beta-VAE), optionally warmed up linearly over the first epochs. Made by
/// [`crate::Penalty::gaussian_kl`]; see [`crate::Penalty`] for the formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianKl {
    beta: f64,
    warmup_epochs: usize,
}

impl GaussianKl {
    /// The KL with weight `beta`, no warm-up.
    pub(crate) fn new(beta: f64) -> Result<Self> {
        check_non_negative("gaussian kl beta", beta)?;
        Ok(GaussianKl {
            beta,
            warmup_epochs: 0,
        })
    }

    /// Warms the weight up linearly over `epochs` epochs: in epoch `e` (from 0) it is
    /// `beta min(1, (e + 1) / epochs)`; 0 = no warm-up.
    pub fn warmup(self, epochs: usize) -> Self {
        GaussianKl {
            warmup_epochs: epochs,
            ..self
        }
    }

    /// The full weight `beta`.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// The warm-up length in epochs (0 = none).
    pub fn warmup_epochs(&self) -> usize {
        self.warmup_epochs
    }

    /// The penalty as it applies in epoch `epoch` (from 0), warm-up included.
    pub fn at_epoch(&self, epoch: usize) -> GaussianKl {
        if self.warmup_epochs == 0 {
            return *self;
        }
        let factor = ((epoch + 1) as f64 / self.warmup_epochs as f64).min(1.0);
        GaussianKl {
            beta: self.beta * factor,
            ..*self
        }
    }

    /// Checks `beta` and that the model has a Gaussian latent.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `beta` is finite and `>= 0`;
    /// [`Error::InvalidConfig`] for a model without a Gaussian latent.
    pub fn validate(&self, arch: &Architecture) -> Result<()> {
        check_non_negative("gaussian kl beta", self.beta)?;
        if arch.latent != Latent::Gaussian {
            return Err(Error::InvalidConfig(
                "the gaussian-kl penalty needs a VAE: build the model with .gaussian_latent(k)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// For the code layer's output `a = [mu | logvar]` `(batch, 2k)`: returns the KL and
    /// adds its gradient into `d_a`.
    pub(crate) fn value_and_grad<T: Float>(
        &self,
        a: ArrayView2<T>,
        mut d_a: ArrayViewMut2<T>,
    ) -> f64 {
        let (beta, batch) = (self.beta, a.nrows() as f64);
        let k = a.ncols() / 2;
        let (g_mu, g_lv) = (T::cast(beta / batch), T::cast(beta / batch / 2.0));
        let mut sum = 0.0;
        for (a_row, mut d_row) in a.rows().into_iter().zip(d_a.rows_mut()) {
            let (mu, logvar) = (a_row.slice(s![..k]), a_row.slice(s![k..]));
            let mut row = T::zero();
            Zip::from(&mu)
                .and(&logvar)
                .for_each(|&m, &l| row += T::one() + l - m * m - l.exp());
            sum += row.as_f64();
            Zip::from(d_row.slice_mut(s![..k]))
                .and(&mu)
                .for_each(|d, &m| *d += g_mu * m);
            Zip::from(d_row.slice_mut(s![k..]))
                .and(&logvar)
                .for_each(|d, &l| *d += g_lv * (l.exp() - T::one()));
        }
        -0.5 * beta * sum / batch
    }
}
