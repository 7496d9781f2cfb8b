//! Activity penalties: terms on one hidden layer's activations (L1 and KL sparsity, L2 on
//! activations) and the contractive penalty on its Jacobian. Each sees that layer's
//! pre-activation `z`, output `a` and the gradient `dL/da` flowing into it.

use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{Architecture, LayerKindName};
use crate::error::{check_non_negative, check_range, Error, Result};
use crate::float::Float;
use crate::layers::Layer;
use crate::objective::loss::sign;

/// The clamp applied to the batch mean activation `rho^_j` before the KL divergence:
/// `rho^_j` is kept in `[KL_EPSILON, 1 - KL_EPSILON]`, so the penalty and its gradient stay
/// finite even when a unit is saturated over a whole batch.
pub const KL_EPSILON: f64 = 1e-6;

/// Sums per-unit statistics over the global batch of a distributed run (KL sparsity's mean
/// activation); implemented by the distributed trainer's exchange.
pub(crate) trait BatchSums {
    /// `sums` holds this process's per-unit sums over its rows: replaces them by the sums
    /// over every process's rows, added in process order, and returns the global batch's rows.
    fn global(&mut self, sums: &mut [f64]) -> usize;
}

/// What an activity penalty may need beyond its layer: a buffer for per-unit sums, at least
/// as long as the layer is wide, and, in a distributed run, the sums over the global batch.
pub(crate) struct BatchStats<'a> {
    pub(crate) sums: &'a mut [f64],
    pub(crate) global: Option<&'a mut dyn BatchSums>,
}

/// Which activity penalty, with its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Activity {
    /// L1 sparsity `lambda/batch sum |a|`.
    L1 {
        /// Weight, `>= 0`.
        lambda: f64,
    },
    /// L2 on activations, `lambda/batch sum a^2`.
    L2 {
        /// Weight, `>= 0`.
        lambda: f64,
    },
    /// KL-divergence sparsity towards a target mean activation `rho`.
    KlSparsity {
        /// Target mean activation, in `(0, 1)`.
        rho: f64,
        /// Weight, `>= 0`.
        beta: f64,
    },
    /// Contractive penalty: squared Frobenius norm of the layer's Jacobian.
    Contractive {
        /// Weight, `>= 0`.
        lambda: f64,
    },
}

/// A penalty on one hidden layer's activations, by default the code layer's. Made by
/// [`crate::Penalty::l1_activity`], [`crate::Penalty::l2_activity`],
/// [`crate::Penalty::kl_sparsity`] and [`crate::Penalty::contractive`]; moved to another
/// hidden layer with [`ActivityPenalty::on_layer`]. See [`crate::Penalty`] for the formulas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivityPenalty {
    activity: Activity,
    /// Layer index in [`crate::Autoencoder::layers`]; `None` = the code layer.
    layer: Option<usize>,
}

impl ActivityPenalty {
    /// A penalty on the code layer, its hyperparameters checked.
    pub(crate) fn new(activity: Activity) -> Result<Self> {
        let p = ActivityPenalty {
            activity,
            layer: None,
        };
        p.validate_params().map(|()| p)
    }

    /// Moves the penalty to hidden layer `index` of [`crate::Autoencoder::layers`]. The
    /// index is checked against the model when training starts.
    pub fn on_layer(self, index: usize) -> Self {
        ActivityPenalty {
            layer: Some(index),
            ..self
        }
    }

    /// Which penalty, with its hyperparameters.
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// The layer given with [`ActivityPenalty::on_layer`]; `None` = the code layer.
    pub fn layer(&self) -> Option<usize> {
        self.layer
    }

    /// A short name for logs and history, e.g. `"kl"`.
    pub fn name(&self) -> &'static str {
        match self.activity {
            Activity::L1 { .. } => "l1-activity",
            Activity::L2 { .. } => "l2-activity",
            Activity::KlSparsity { .. } => "kl",
            Activity::Contractive { .. } => "contractive",
        }
    }

    /// Whether the penalty needs sums over the global batch ([`BatchSums`]): KL sparsity.
    pub(crate) fn uses_batch_sums(&self) -> bool {
        matches!(self.activity, Activity::KlSparsity { .. })
    }

    /// The layer the penalty reads in a model of architecture `arch`.
    pub(crate) fn layer_index(&self, arch: &Architecture) -> usize {
        self.layer.unwrap_or(arch.code_layer())
    }

    fn validate_params(&self) -> Result<()> {
        match self.activity {
            Activity::L1 { lambda } => check_non_negative("l1 activity lambda", lambda),
            Activity::L2 { lambda } => check_non_negative("l2 activity lambda", lambda),
            Activity::KlSparsity { rho, beta } => {
                check_range("kl rho", rho, rho > 0.0 && rho < 1.0, "a value in (0, 1)")?;
                check_non_negative("kl beta", beta)
            }
            Activity::Contractive { lambda } => check_non_negative("contractive lambda", lambda),
        }
    }

    /// Checks the hyperparameters and that the penalty suits a model of architecture
    /// `arch`: the layer exists and is hidden (not the output layer), KL sparsity sits on a
    /// layer with activations in `(0, 1)`, the contractive penalty on a dense sigmoid or tanh
    /// layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for values out of range; [`Error::InvalidConfig`]
    /// for a layer that does not exist or does not suit the penalty.
    pub fn validate(&self, arch: &Architecture) -> Result<()> {
        self.validate_params()?;
        let index = self.layer_index(arch);
        let n_hidden = arch.n_hidden();
        if index >= n_hidden {
            return Err(Error::InvalidConfig(format!(
                "{} penalty on layer {index}, but the model's hidden layers are 0..{n_hidden} \
                 (layer {n_hidden} is the output)",
                self.name()
            )));
        }
        let layer = arch.layers[index];
        let activation = layer.activation;
        let needs = match self.activity {
            Activity::KlSparsity { .. } if !activation.is_in_unit_interval() => {
                "activations in (0, 1): a sigmoid layer"
            }
            Activity::Contractive { .. }
                if !matches!(activation, Activation::Sigmoid | Activation::Tanh)
                    || layer.kind != LayerKindName::Dense =>
            {
                "a dense sigmoid or tanh layer"
            }
            _ => return Ok(()),
        };
        Err(Error::InvalidConfig(format!(
            "{} penalty on layer {index} needs {needs}, but that layer's activation is {activation:?}",
            self.name()
        )))
    }

    /// For the penalty on `layer` with pre-activation `z` and output `a` `(batch, n)`:
    /// returns its value and adds its gradient with respect to `a` into `d_a` (and, for the
    /// contractive penalty, its direct gradient into the layer's `dL/dW`). KL sparsity's
    /// mean activation is over the global batch when `stats.global` is given (a
    /// distributed run), and its gradient is then that of this process's share: `beta /
    /// batch` times the derivative at the global mean, `batch` being this process's rows.
    pub(crate) fn value_and_grad<T: Float>(
        &self,
        layer: &mut Layer<T>,
        z: ArrayView2<T>,
        a: ArrayView2<T>,
        mut d_a: ArrayViewMut2<T>,
        stats: BatchStats<'_>,
    ) -> f64 {
        let batch = a.nrows() as f64;
        match self.activity {
            Activity::L1 { lambda } => {
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
            Activity::L2 { lambda } => {
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
            Activity::KlSparsity { rho, beta } => {
                let sums = &mut stats.sums[..a.ncols()];
                for (sum, a_col) in sums.iter_mut().zip(a.axis_iter(Axis(1))) {
                    *sum = a_col.iter().fold(0.0, |s, &v| s + v.as_f64());
                }
                let rows = match stats.global {
                    Some(global) => global.global(sums) as f64,
                    None => batch,
                };
                let mut value = 0.0;
                for (&sum, d_col) in sums.iter().zip(d_a.axis_iter_mut(Axis(1))) {
                    let mean = sum / rows;
                    let rho_hat = mean.clamp(KL_EPSILON, 1.0 - KL_EPSILON);
                    value += rho * (rho / rho_hat).ln()
                        + (1.0 - rho) * ((1.0 - rho) / (1.0 - rho_hat)).ln();
                    let g =
                        T::cast(beta / batch * (-rho / rho_hat + (1.0 - rho) / (1.0 - rho_hat)));
                    d_col.into_iter().for_each(|d| *d += g);
                }
                beta * value
            }
            Activity::Contractive { lambda } => match layer.as_dense_mut() {
                Some(dense) => contractive(dense, lambda, z, a, d_a),
                None => 0.0, // refused by `validate`
            },
        }
    }
}

/// The contractive penalty on a dense layer.
///
/// `P = lambda/batch sum_b sum_j s'(z_bj)^2 c_j`, with `c_j = sum_i W_ij^2`. `s'` is a
/// function of `a` (sigmoid `a(1-a)`, tanh `1-a^2`), so
/// `dP/da_bj = lambda/batch c_j 2 s' ds'/da`, and the direct part
/// `dP/dW_ij = 2 lambda W_ij (1/batch sum_b s'(z_bj)^2)`.
fn contractive<T: Float>(
    layer: &mut crate::layers::Dense<T>,
    lambda: f64,
    z: ArrayView2<T>,
    a: ArrayView2<T>,
    mut d_a: ArrayViewMut2<T>,
) -> f64 {
    let batch = a.nrows() as f64;
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
