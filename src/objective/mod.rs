//! The training objective: a reconstruction [`Loss`] plus penalties, each family in its own
//! file (activity penalties, weight penalties; the VAE's Gaussian KL sits with the Gaussian
//! latent in `model/latent.rs`), and [`Penalty`], the list of families the trainer takes.
//!
//! The training objective is `L_total = L_recon + sum of penalties`, each penalty already
//! carrying its weight (`lambda` or `beta`). All penalties compose: give several to
//! [`crate::Trainer::penalty`]. Activity penalties apply to one hidden layer (by default the
//! code layer) and are averaged over the batch; weight penalties sum over every parameter
//! tensor. Penalties are validated against the model's [`Architecture`], before any work.

use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::error::Result;
use crate::model::latent::GaussianKl;

pub(crate) mod activity;
pub(crate) mod loss;
pub(crate) mod weight;

use activity::{Activity, ActivityPenalty};
use loss::Loss;
use weight::{Norm, WeightPenalty};

/// A penalty term, of one of three families. Build one with the constructors below, which
/// check the hyperparameters; each returns its family's type, whose modifiers are the only
/// ones that apply ([`ActivityPenalty::on_layer`], [`WeightPenalty::with_biases`],
/// [`GaussianKl::warmup`]), and converts into `Penalty` where one is expected
/// ([`crate::Trainer::penalty`] takes `impl Into<Penalty>`; in a slice write `.into()`).
///
/// With `a` the chosen layer's activations `(batch, n)`, `W` each weight matrix:
///
/// | constructor | value, as computed | gradient |
/// | --- | --- | --- |
/// | `l1_activity(lambda)` | `lambda/batch sum_b sum_j |a_bj|` | `lambda/batch sign(a)` (0 at 0) |
/// | `l2_activity(lambda)` | `lambda/batch sum_b sum_j a_bj^2` | `2 lambda/batch a` |
/// | `kl_sparsity(rho, beta)` | `beta sum_j [rho ln(rho/rho^_j) + (1-rho) ln((1-rho)/(1-rho^_j))]`, `rho^_j = 1/batch sum_b a_bj` clamped by [`activity::KL_EPSILON`] | `beta/batch (-rho/rho^_j + (1-rho)/(1-rho^_j))` per element |
/// | `l2_weights(lambda)` | `lambda sum over tensors sum W^2` (+ `b^2` with biases included) | `2 lambda W` |
/// | `l1_weights(lambda)` | `lambda sum over tensors sum |W|` (+ `|b|`) | `lambda sign(W)` |
/// | `gaussian_kl(beta)` | `beta/batch sum_b -1/2 sum_j (1 + l_bj - mu_bj^2 - e^l_bj)`, code layer = `[mu, l = log sigma^2]` | `beta/batch mu` and `beta/batch (e^l - 1)/2` |
/// | `contractive(lambda)` | `lambda/batch sum_b ||J_b||_F^2`, `J_b = da_b / d(layer input)`, i.e. `lambda/batch sum_b sum_j s'(z_bj)^2 sum_i W_ij^2` | hand-derived, through `s'` and `W` |
///
/// The contractive penalty (Rifai et al. 2011) is the Jacobian of the layer with respect to
/// its own input: for a one-layer encoder that is `J_f(x)`. It needs a dense sigmoid or
/// tanh layer. KL sparsity needs a sigmoid layer (activations in `(0, 1)`). A tied matrix
/// is one parameter, penalized once; with biases included, every bias is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Penalty {
    /// A penalty on one hidden layer's activations.
    Activity(ActivityPenalty),
    /// A penalty on the parameters.
    Weight(WeightPenalty),
    /// The VAE's KL divergence on a Gaussian code layer.
    GaussianKl(GaussianKl),
}

impl Penalty {
    /// L1 sparsity `lambda/batch sum |a|` on the code layer.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l1_activity(lambda: f64) -> Result<ActivityPenalty> {
        ActivityPenalty::new(Activity::L1 { lambda })
    }

    /// L2 `lambda/batch sum a^2` on the code layer's activations.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l2_activity(lambda: f64) -> Result<ActivityPenalty> {
        ActivityPenalty::new(Activity::L2 { lambda })
    }

    /// KL sparsity with target `rho` and weight `beta` on the code layer.
    ///
    /// ```
    /// use autoencoder::Penalty;
    /// assert!(Penalty::kl_sparsity(0.05, 3.0).is_ok());
    /// assert!(Penalty::kl_sparsity(1.0, 3.0).is_err()); // rho must lie in (0, 1)
    /// let on_first_hidden = Penalty::kl_sparsity(0.05, 3.0)?.on_layer(0);
    /// # Ok::<(), autoencoder::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `rho` is in `(0, 1)` and `beta`
    /// finite `>= 0`.
    pub fn kl_sparsity(rho: f64, beta: f64) -> Result<ActivityPenalty> {
        ActivityPenalty::new(Activity::KlSparsity { rho, beta })
    }

    /// Contractive penalty `lambda ||J||_F^2` on the code layer.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn contractive(lambda: f64) -> Result<ActivityPenalty> {
        ActivityPenalty::new(Activity::Contractive { lambda })
    }

    /// L2 weight decay `lambda sum W^2` over every weight matrix, biases excluded (see
    /// [`WeightPenalty::with_biases`]).
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l2_weights(lambda: f64) -> Result<WeightPenalty> {
        WeightPenalty::new(Norm::L2, lambda)
    }

    /// L1 weight penalty `lambda sum |W|` over every weight matrix, biases excluded.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l1_weights(lambda: f64) -> Result<WeightPenalty> {
        WeightPenalty::new(Norm::L1, lambda)
    }

    /// The VAE's KL divergence `KL(q(z | x) || N(0, I))` with weight `beta`, for a model
    /// built with [`crate::AutoencoderBuilder::gaussian_latent`]. With
    /// [`Loss::BinaryCrossEntropySum`] and `beta = 1` the training objective is the
    /// negative ELBO per example, in nats. Warm it up with [`GaussianKl::warmup`].
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `beta` is finite and `>= 0`.
    pub fn gaussian_kl(beta: f64) -> Result<GaussianKl> {
        GaussianKl::new(beta)
    }

    /// A short name for logs and history, e.g. `"kl"`.
    pub fn name(&self) -> &'static str {
        match self {
            Penalty::Activity(p) => p.name(),
            Penalty::Weight(p) => p.name(),
            Penalty::GaussianKl(_) => "gaussian-kl",
        }
    }

    /// The penalty as it applies in epoch `epoch` (from 0): warm-up scales the Gaussian KL's
    /// weight; the others do not change.
    pub fn at_epoch(&self, epoch: usize) -> Penalty {
        match self {
            Penalty::GaussianKl(kl) => Penalty::GaussianKl(kl.at_epoch(epoch)),
            other => *other,
        }
    }

    /// Checks the hyperparameters and that the penalty suits a model of architecture `arch`
    /// ([`crate::Autoencoder::architecture`]).
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] for values out of range;
    /// [`crate::Error::InvalidConfig`] for a penalty that does not suit the model.
    pub fn validate(&self, arch: &Architecture) -> Result<()> {
        match self {
            Penalty::Activity(p) => p.validate(arch),
            Penalty::Weight(p) => p.validate(arch),
            Penalty::GaussianKl(p) => p.validate(arch),
        }
    }
}

impl From<ActivityPenalty> for Penalty {
    fn from(p: ActivityPenalty) -> Self {
        Penalty::Activity(p)
    }
}

impl From<WeightPenalty> for Penalty {
    fn from(p: WeightPenalty) -> Self {
        Penalty::Weight(p)
    }
}

impl From<GaussianKl> for Penalty {
    fn from(p: GaussianKl) -> Self {
        Penalty::GaussianKl(p)
    }
}

/// The one validation of an objective on a model of architecture `arch`: the loss suits the
/// output layer and every penalty suits the model.
///
/// # Errors
/// As [`Loss::validate`] and [`Penalty::validate`].
pub(crate) fn validate(arch: &Architecture, loss: Loss, penalties: &[Penalty]) -> Result<()> {
    let output = arch.layers[arch.layers.len() - 1].activation;
    loss.validate(output)?;
    penalties.iter().try_for_each(|p| p.validate(arch))
}

/// The value of the training objective on one batch: reconstruction loss plus each
/// penalty's weighted value (already multiplied by its `lambda` or `beta`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossTerms {
    /// The reconstruction loss.
    pub reconstruction: f64,
    /// One value per penalty, in the order the penalties were given.
    pub penalties: Vec<f64>,
}

impl LossTerms {
    /// `reconstruction + sum of penalties`.
    pub fn total(&self) -> f64 {
        self.reconstruction + self.penalties.iter().sum::<f64>()
    }

    /// Zeroes every term, for `n` penalties (reusing the buffer).
    pub(crate) fn reset(&mut self, n: usize) {
        self.reconstruction = 0.0;
        self.penalties.clear();
        self.penalties.resize(n, 0.0);
    }
}
