//! Weight penalties: L2 (weight decay) and L1 on every parameter tensor the model lists
//! ([`crate::Autoencoder`]'s one list of parameters), so a tied matrix counts once and
//! every bias, encoder or decoder, is covered when biases are included.

use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::error::{check_non_negative, Result};
use crate::float::Float;
use crate::layers::ParamKind;
use crate::objective::loss::sign;

/// Whether a weight penalty also applies to the biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Biases {
    /// Biases are not penalized (the usual choice, and the default).
    Excluded,
    /// Biases are penalized like weights.
    Included,
}

/// Which norm a [`WeightPenalty`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    /// `sum p^2`, gradient `2 p`.
    L2,
    /// `sum |p|`, subgradient `sign(p)` (0 at 0).
    L1,
}

/// A penalty on the parameters: `lambda sum p^2` ([`crate::Penalty::l2_weights`]) or
/// `lambda sum |p|` ([`crate::Penalty::l1_weights`]) over every weight matrix, and every
/// bias too after [`WeightPenalty::with_biases`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightPenalty {
    norm: Norm,
    lambda: f64,
    biases: Biases,
}

impl WeightPenalty {
    /// A penalty of `norm` with weight `lambda`, biases excluded.
    pub(crate) fn new(norm: Norm, lambda: f64) -> Result<Self> {
        let name = match norm {
            Norm::L2 => "l2 weight lambda",
            Norm::L1 => "l1 weight lambda",
        };
        check_non_negative(name, lambda)?;
        Ok(WeightPenalty {
            norm,
            lambda,
            biases: Biases::Excluded,
        })
    }

    /// Applies the penalty to the biases too.
    pub fn with_biases(self) -> Self {
        WeightPenalty {
            biases: Biases::Included,
            ..self
        }
    }

    /// The norm.
    pub fn norm(&self) -> Norm {
        self.norm
    }

    /// The weight `lambda`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Whether biases are penalized.
    pub fn biases(&self) -> Biases {
        self.biases
    }

    /// A short name for logs and history, e.g. `"l2-weights"`.
    pub fn name(&self) -> &'static str {
        match self.norm {
            Norm::L2 => "l2-weights",
            Norm::L1 => "l1-weights",
        }
    }

    /// Checks the hyperparameters (any model suits a weight penalty).
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] unless `lambda` is finite and `>= 0`.
    pub fn validate(&self, _arch: &Architecture) -> Result<()> {
        WeightPenalty::new(self.norm, self.lambda).map(|_| ())
    }

    /// For one parameter tensor: adds `sum p^2` (or `sum |p|`) to `sum` and the penalty's
    /// gradient into `grad`; tensors the penalty skips (biases, unless included) are left
    /// alone. The value of the penalty is `lambda * sum` over every tensor.
    pub(crate) fn accumulate<T: Float>(
        &self,
        param: &[T],
        grad: &mut [T],
        kind: ParamKind,
        sum: &mut f64,
    ) {
        if kind == ParamKind::Bias && self.biases == Biases::Excluded {
            return;
        }
        let lam = T::cast(self.lambda);
        let two_lam = T::cast(2.0 * self.lambda);
        for (g, &p) in grad.iter_mut().zip(param) {
            match self.norm {
                Norm::L2 => {
                    *sum += (p * p).as_f64();
                    *g += two_lam * p;
                }
                Norm::L1 => {
                    *sum += p.abs().as_f64();
                    *g += lam * sign(p);
                }
            }
        }
    }
}
