//! Penalties added to the reconstruction loss: sparsity on a layer's activations (L1, KL),
//! L2 on activations, L2 / L1 weight decay, and the contractive penalty.
//!
//! The training objective is `L_total = L_recon + sum of penalties`, each penalty already
//! carrying its weight (`lambda` or `beta`). All penalties compose: give several to
//! [`crate::Trainer::penalty`]. Activity penalties apply to one hidden layer (by default the
//! code layer) and are averaged over the batch; weight penalties sum over every layer.

use ndarray::{s, ArrayView2, ArrayViewMut2, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::error::{check_non_negative, check_range};
use crate::objective::loss::sign;
use crate::{Activation, Autoencoder, Dense, Error, Float, Result};

/// The clamp applied to the batch mean activation `rho^_j` before the KL divergence:
/// `rho^_j` is kept in `[KL_EPSILON, 1 - KL_EPSILON]`, so the penalty and its gradient stay
/// finite even when a unit is saturated over a whole batch.
pub const KL_EPSILON: f64 = 1e-6;

/// Whether a weight penalty also applies to the biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Biases {
    /// Biases are not penalized (the usual choice, and the default).
    Excluded,
    /// Biases are penalized like weights.
    Included,
}

/// A penalty term. Build one with the constructors ([`Penalty::kl_sparsity`], ...), which
/// check the hyperparameters; [`Penalty::on_layer`] moves an activity penalty off the code
/// layer.
///
/// With `a` the chosen layer's activations `(batch, n)`, `W` each layer's weights:
///
/// | variant | value, as computed | gradient |
/// | --- | --- | --- |
/// | `L1Activity` | `lambda/batch sum_b sum_j |a_bj|` | `lambda/batch sign(a)` (0 at 0) |
/// | `L2Activity` | `lambda/batch sum_b sum_j a_bj^2` | `2 lambda/batch a` |
/// | `KlSparsity` | `beta sum_j [rho ln(rho/rho^_j) + (1-rho) ln((1-rho)/(1-rho^_j))]`, `rho^_j = 1/batch sum_b a_bj` clamped by [`KL_EPSILON`] | `beta/batch (-rho/rho^_j + (1-rho)/(1-rho^_j))` per element |
/// | `L2Weights` | `lambda sum over layers sum W^2` (+ `b^2` if biases are included) | `2 lambda W` |
/// | `L1Weights` | `lambda sum over layers sum |W|` (+ `|b|`) | `lambda sign(W)` |
/// | `GaussianKl` | `beta/batch sum_b -1/2 sum_j (1 + l_bj - mu_bj^2 - e^l_bj)`, code layer = `[mu, l = log sigma^2]` | `beta/batch mu` and `beta/batch (e^l - 1)/2` |
/// | `Contractive` | `lambda/batch sum_b ||J_b||_F^2`, `J_b = da_b / d(layer input)`, i.e. `lambda/batch sum_b sum_j s'(z_bj)^2 sum_i W_ij^2` | hand-derived, through `s'` and `W` |
///
/// The contractive penalty (Rifai et al. 2011) is the Jacobian of the layer with respect to
/// its own input: for a one-layer encoder that is `J_f(x)`. It needs a sigmoid or tanh layer.
/// KL sparsity needs a sigmoid layer (activations in `(0, 1)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Penalty {
    /// L1 sparsity on a layer's activations.
    L1Activity {
        /// Weight, `>= 0`.
        lambda: f64,
        /// Layer index in [`Autoencoder::layers`]; `None` = the code layer.
        layer: Option<usize>,
    },
    /// L2 on a layer's activations.
    L2Activity {
        /// Weight, `>= 0`.
        lambda: f64,
        /// Layer index; `None` = the code layer.
        layer: Option<usize>,
    },
    /// KL-divergence sparsity towards a target mean activation `rho`.
    KlSparsity {
        /// Target mean activation, in `(0, 1)`.
        rho: f64,
        /// Weight, `>= 0`.
        beta: f64,
        /// Layer index; `None` = the code layer.
        layer: Option<usize>,
    },
    /// L2 weight decay.
    L2Weights {
        /// Weight, `>= 0`.
        lambda: f64,
        /// Whether biases are penalized too.
        biases: Biases,
    },
    /// L1 weight penalty.
    L1Weights {
        /// Weight, `>= 0`.
        lambda: f64,
        /// Whether biases are penalized too.
        biases: Biases,
    },
    /// Contractive penalty: squared Frobenius norm of a layer's Jacobian.
    Contractive {
        /// Weight, `>= 0`.
        lambda: f64,
        /// Layer index; `None` = the code layer.
        layer: Option<usize>,
    },
    /// The VAE's `KL(q(z | x) || N(0, I))` on a Gaussian code layer, with weight `beta`
    /// (beta-VAE), optionally warmed up linearly over the first epochs.
    GaussianKl {
        /// Weight, `>= 0` (1 for the plain VAE's ELBO).
        beta: f64,
        /// Epochs over which the weight rises linearly to `beta`: in epoch `e` (from 0) it is
        /// `beta min(1, (e + 1) / warmup_epochs)`; 0 = no warm-up.
        warmup_epochs: usize,
    },
}

impl Penalty {
    /// L1 sparsity `lambda/batch sum |a|` on the code layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l1_activity(lambda: f64) -> Result<Penalty> {
        let p = Penalty::L1Activity {
            lambda,
            layer: None,
        };
        p.validate_params().map(|()| p)
    }

    /// L2 `lambda/batch sum a^2` on the code layer's activations.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l2_activity(lambda: f64) -> Result<Penalty> {
        let p = Penalty::L2Activity {
            lambda,
            layer: None,
        };
        p.validate_params().map(|()| p)
    }

    /// KL sparsity with target `rho` and weight `beta` on the code layer.
    ///
    /// ```
    /// use autoencoder::Penalty;
    /// assert!(Penalty::kl_sparsity(0.05, 3.0).is_ok());
    /// assert!(Penalty::kl_sparsity(1.0, 3.0).is_err()); // rho must lie in (0, 1)
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `rho` is in `(0, 1)` and `beta` finite `>= 0`.
    pub fn kl_sparsity(rho: f64, beta: f64) -> Result<Penalty> {
        let p = Penalty::KlSparsity {
            rho,
            beta,
            layer: None,
        };
        p.validate_params().map(|()| p)
    }

    /// L2 weight decay `lambda sum W^2` over every layer, biases excluded.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l2_weights(lambda: f64) -> Result<Penalty> {
        let p = Penalty::L2Weights {
            lambda,
            biases: Biases::Excluded,
        };
        p.validate_params().map(|()| p)
    }

    /// L1 weight penalty `lambda sum |W|` over every layer, biases excluded.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn l1_weights(lambda: f64) -> Result<Penalty> {
        let p = Penalty::L1Weights {
            lambda,
            biases: Biases::Excluded,
        };
        p.validate_params().map(|()| p)
    }

    /// Contractive penalty `lambda ||J||_F^2` on the code layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn contractive(lambda: f64) -> Result<Penalty> {
        let p = Penalty::Contractive {
            lambda,
            layer: None,
        };
        p.validate_params().map(|()| p)
    }

    /// The VAE's KL divergence `KL(q(z | x) || N(0, I))` with weight `beta`, for a model
    /// built with [`crate::AutoencoderBuilder::gaussian_latent`]. With
    /// [`Loss::BinaryCrossEntropySum`](crate::Loss::BinaryCrossEntropySum) and `beta = 1`
    /// the training objective is the negative ELBO per example, in nats.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] unless `beta` is finite and `>= 0`.
    pub fn gaussian_kl(beta: f64) -> Result<Penalty> {
        let p = Penalty::GaussianKl {
            beta,
            warmup_epochs: 0,
        };
        p.validate_params().map(|()| p)
    }

    /// Warms a [`Penalty::GaussianKl`] up over `epochs` epochs; other penalties are
    /// returned unchanged.
    pub fn warmup(self, epochs: usize) -> Penalty {
        match self {
            Penalty::GaussianKl { beta, .. } => Penalty::GaussianKl {
                beta,
                warmup_epochs: epochs,
            },
            other => other,
        }
    }

    /// The penalty as it applies in epoch `epoch` (from 0): warm-up scales the weight.
    pub fn at_epoch(&self, epoch: usize) -> Penalty {
        match *self {
            Penalty::GaussianKl {
                beta,
                warmup_epochs,
            } if warmup_epochs > 0 => {
                let factor = ((epoch + 1) as f64 / warmup_epochs as f64).min(1.0);
                Penalty::GaussianKl {
                    beta: beta * factor,
                    warmup_epochs,
                }
            }
            other => other,
        }
    }

    /// Moves an activity penalty (L1/L2 activity, KL, contractive) to hidden layer `index`
    /// of [`Autoencoder::layers`]; weight penalties are returned unchanged. The index is
    /// checked against the model when training starts.
    pub fn on_layer(self, index: usize) -> Penalty {
        match self {
            Penalty::L1Activity { lambda, .. } => Penalty::L1Activity {
                lambda,
                layer: Some(index),
            },
            Penalty::L2Activity { lambda, .. } => Penalty::L2Activity {
                lambda,
                layer: Some(index),
            },
            Penalty::KlSparsity { rho, beta, .. } => Penalty::KlSparsity {
                rho,
                beta,
                layer: Some(index),
            },
            Penalty::Contractive { lambda, .. } => Penalty::Contractive {
                lambda,
                layer: Some(index),
            },
            weights => weights,
        }
    }

    /// Applies weight penalties to biases too; activity penalties are returned unchanged.
    pub fn with_biases(self) -> Penalty {
        match self {
            Penalty::L2Weights { lambda, .. } => Penalty::L2Weights {
                lambda,
                biases: Biases::Included,
            },
            Penalty::L1Weights { lambda, .. } => Penalty::L1Weights {
                lambda,
                biases: Biases::Included,
            },
            other => other,
        }
    }

    /// A short name for logs and history, e.g. `"kl"`.
    pub fn name(&self) -> &'static str {
        match self {
            Penalty::L1Activity { .. } => "l1-activity",
            Penalty::L2Activity { .. } => "l2-activity",
            Penalty::KlSparsity { .. } => "kl",
            Penalty::L2Weights { .. } => "l2-weights",
            Penalty::L1Weights { .. } => "l1-weights",
            Penalty::Contractive { .. } => "contractive",
            Penalty::GaussianKl { .. } => "gaussian-kl",
        }
    }

    fn validate_params(&self) -> Result<()> {
        match *self {
            Penalty::L1Activity { lambda, .. } => check_non_negative("l1 activity lambda", lambda),
            Penalty::L2Activity { lambda, .. } => check_non_negative("l2 activity lambda", lambda),
            Penalty::KlSparsity { rho, beta, .. } => {
                check_range("kl rho", rho, rho > 0.0 && rho < 1.0, "a value in (0, 1)")?;
                check_non_negative("kl beta", beta)
            }
            Penalty::L2Weights { lambda, .. } => check_non_negative("l2 weight lambda", lambda),
            Penalty::L1Weights { lambda, .. } => check_non_negative("l1 weight lambda", lambda),
            Penalty::Contractive { lambda, .. } => check_non_negative("contractive lambda", lambda),
            Penalty::GaussianKl { beta, .. } => check_non_negative("gaussian kl beta", beta),
        }
    }

    /// Checks the hyperparameters and that the penalty suits `model`: the layer exists and
    /// is hidden (not the output layer), KL sparsity sits on a sigmoid layer, the
    /// contractive penalty on a sigmoid or tanh layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for values out of range; [`Error::InvalidConfig`]
    /// for a layer that does not exist or whose activation does not suit the penalty.
    pub fn validate<T: Float>(&self, model: &Autoencoder<T>) -> Result<()> {
        self.validate_params()?;
        if matches!(self, Penalty::GaussianKl { .. }) && model.latent() != crate::Latent::Gaussian {
            return Err(Error::InvalidConfig(
                "the gaussian-kl penalty needs a VAE: build the model with .gaussian_latent(k)"
                    .into(),
            ));
        }
        let Some(index) = self.activity_layer(model.code_layer() + 1) else {
            return Ok(());
        };
        let n_hidden = model.layers().len() - 1;
        if index >= n_hidden {
            return Err(Error::InvalidConfig(format!(
                "{} penalty on layer {index}, but the model's hidden layers are 0..{n_hidden} \
                 (layer {n_hidden} is the output)",
                self.name()
            )));
        }
        let activation = model.layers()[index].activation();
        let suits = match self {
            Penalty::KlSparsity { .. } => activation.is_in_unit_interval(),
            Penalty::Contractive { .. } => {
                matches!(activation, Activation::Sigmoid | Activation::Tanh)
            }
            _ => true,
        };
        if suits {
            Ok(())
        } else {
            let needs = match self {
                Penalty::KlSparsity { .. } => "activations in (0, 1): a sigmoid layer",
                _ => "a sigmoid or tanh layer",
            };
            Err(Error::InvalidConfig(format!(
                "{} penalty on layer {index} needs {needs}, but that layer's activation is {activation:?}",
                self.name()
            )))
        }
    }

    /// The layer an activity penalty reads, given the number of encoder layers; `None` for
    /// weight penalties.
    pub(crate) fn activity_layer(&self, n_encoder: usize) -> Option<usize> {
        match *self {
            Penalty::L1Activity { layer, .. }
            | Penalty::L2Activity { layer, .. }
            | Penalty::KlSparsity { layer, .. }
            | Penalty::Contractive { layer, .. } => Some(layer.unwrap_or(n_encoder - 1)),
            Penalty::GaussianKl { .. } => Some(n_encoder - 1),
            Penalty::L2Weights { .. } | Penalty::L1Weights { .. } => None,
        }
    }

    /// For an activity penalty on `layer` with pre-activation `z` and output `a`
    /// `(batch, n)`: returns its value and adds its gradient with respect to `a` into `d_a`
    /// (and, for the contractive penalty, its direct gradient into the layer's `dL/dW`).
    pub(crate) fn activity_value_and_grad<T: Float>(
        &self,
        layer: &mut Dense<T>,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        mut d_a: ArrayViewMut2<T>,
    ) -> f64 {
        let batch = a.nrows() as f64;
        match *self {
            Penalty::L1Activity { lambda, .. } => {
                let g = T::cast(lambda / batch);
                let mut sum = 0.0;
                for (a_row, d_row) in a.rows().into_iter().zip(d_a.rows_mut()) {
                    let mut row = T::zero();
                    Zip::from(d_row).and(a_row).for_each(|d, &a| {
                        row += a.abs();
                        *d += g * sign(a);
                    });
                    sum += row.as_f64();
                }
                lambda * sum / batch
            }
            Penalty::L2Activity { lambda, .. } => {
                let g = T::cast(2.0 * lambda / batch);
                let mut sum = 0.0;
                for (a_row, d_row) in a.rows().into_iter().zip(d_a.rows_mut()) {
                    let mut row = T::zero();
                    Zip::from(d_row).and(a_row).for_each(|d, &a| {
                        row += a * a;
                        *d += g * a;
                    });
                    sum += row.as_f64();
                }
                lambda * sum / batch
            }
            Penalty::KlSparsity { rho, beta, .. } => {
                let mut value = 0.0;
                for (a_col, d_col) in a.axis_iter(Axis(1)).zip(d_a.axis_iter_mut(Axis(1))) {
                    let mean = a_col.iter().fold(0.0, |s, &v| s + v.as_f64()) / batch;
                    let rho_hat = mean.clamp(KL_EPSILON, 1.0 - KL_EPSILON);
                    value += rho * (rho / rho_hat).ln()
                        + (1.0 - rho) * ((1.0 - rho) / (1.0 - rho_hat)).ln();
                    let g =
                        T::cast(beta / batch * (-rho / rho_hat + (1.0 - rho) / (1.0 - rho_hat)));
                    d_col.into_iter().for_each(|d| *d += g);
                }
                beta * value
            }
            Penalty::Contractive { lambda, .. } => {
                // P = lambda/batch sum_b sum_j s'(z_bj)^2 c_j, with c_j = sum_i W_ij^2.
                // s' is a function of a: sigmoid a(1-a), tanh 1-a^2; so
                // dP/da_bj = lambda/batch c_j 2 s' ds'/da, and the direct part
                // dP/dW_ij = 2 lambda W_ij (1/batch sum_b s'(z_bj)^2).
                let activation = layer.activation();
                let scale = lambda / batch;
                let mut value = 0.0;
                let (w, _, grad_w, _) = layer.params_with_grads_mut();
                for j in 0..w.ncols() {
                    let c_j = w
                        .column(j)
                        .iter()
                        .fold(0.0, |s, &w| s + w.as_f64() * w.as_f64());
                    let mut sum_sq = 0.0; // sum_b s'(z_bj)^2
                    for ((d, &a), &z) in d_a
                        .column_mut(j)
                        .iter_mut()
                        .zip(a.column(j))
                        .zip(z.column(j))
                    {
                        let (a, z) = (a.as_f64(), z.as_f64());
                        let ds = activation.derivative(z, a);
                        let dds_da = match activation {
                            Activation::Sigmoid => 1.0 - 2.0 * a, // d(a(1 - a))/da
                            _ => -2.0 * a,                        // tanh: d(1 - a^2)/da
                        };
                        sum_sq += ds * ds;
                        *d += T::cast(scale * c_j * 2.0 * ds * dds_da);
                    }
                    value += scale * c_j * sum_sq;
                    let factor = T::cast(2.0 * lambda * sum_sq / batch);
                    Zip::from(grad_w.column_mut(j))
                        .and(w.column(j))
                        .for_each(|g, &w| *g += factor * w);
                }
                value
            }
            Penalty::GaussianKl { beta, .. } => {
                // a = [mu | logvar], (batch, 2k).
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
            Penalty::L2Weights { .. } | Penalty::L1Weights { .. } => 0.0,
        }
    }

    /// For a weight penalty: returns its value over all `layers` and adds its gradient
    /// into each layer's parameter gradients. Activity penalties return 0.
    pub(crate) fn weight_value_and_grad<'a, T: Float>(
        &self,
        layers: impl Iterator<Item = &'a mut Dense<T>>,
    ) -> f64 {
        let (lambda, biases, l2) = match *self {
            Penalty::L2Weights { lambda, biases } => (lambda, biases, true),
            Penalty::L1Weights { lambda, biases } => (lambda, biases, false),
            _ => return 0.0,
        };
        let lam = T::cast(lambda);
        let two_lam = T::cast(2.0 * lambda);
        let mut sum = 0.0;
        for layer in layers {
            let (w, b, gw, gb) = layer.params_with_grads_mut();
            let mut acc = |g: &mut T, &p: &T| {
                if l2 {
                    sum += (p * p).as_f64();
                    *g += two_lam * p;
                } else {
                    sum += p.abs().as_f64();
                    *g += lam * sign(p);
                }
            };
            Zip::from(gw).and(w).for_each(&mut acc);
            if biases == Biases::Included {
                Zip::from(gb).and(b).for_each(&mut acc);
            }
        }
        lambda * sum
    }
}
