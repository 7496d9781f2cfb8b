//! Optimizers (behind one trait) and learning-rate schedules.

use serde::{Deserialize, Serialize};

use crate::error::{check_positive, check_range};
use crate::{Float, Result};

mod adam;
mod sgd;

pub use adam::{Adam, WeightDecay};
pub use sgd::Sgd;

use crate::layer::ParamKind;

/// A first-order optimizer that updates parameter tensors in place and keeps its own
/// per-tensor state (momentum, moments), created on the first step.
///
/// The trainer calls [`Optimizer::begin_step`] once per batch, then
/// [`Optimizer::update`] once per parameter tensor, always in the same order, so `index`
/// identifies a tensor across steps.
pub trait Optimizer<T: Float>: std::fmt::Debug + Send {
    /// The base learning rate (before any schedule).
    fn lr(&self) -> f64;

    /// Checks the hyperparameters.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] naming the first one out of range.
    fn validate(&self) -> Result<()>;

    /// Starts a step (Adam counts steps for its bias correction).
    fn begin_step(&mut self);

    /// Updates tensor `index` in place from its gradient, at learning rate `lr`.
    /// Allocates only on the first step.
    fn update(&mut self, index: usize, param: &mut [T], grad: &[T], kind: ParamKind, lr: f64);

    /// Forgets all state, as if no step had been taken.
    fn reset(&mut self);
}

/// Returns the state buffer for tensor `index`, creating zeroed buffers up to it on first use.
pub(crate) fn state_for<T: Float>(state: &mut Vec<Vec<T>>, index: usize, len: usize) -> &mut [T] {
    while state.len() <= index {
        state.push(Vec::new());
    }
    if state[index].len() != len {
        state[index] = vec![T::zero(); len];
    }
    &mut state[index]
}

/// How the learning rate changes from epoch to epoch (`e` counts from 0, `E` is the
/// trainer's number of epochs, `lr` the optimizer's base rate).
///
/// | variant | learning rate in epoch `e` |
/// | --- | --- |
/// | `Constant` | `lr` |
/// | `Step { every, gamma }` | `lr gamma^floor(e / every)` |
/// | `Exponential { gamma }` | `lr gamma^e` |
/// | `Cosine { min_lr }` | `min_lr + (lr - min_lr) (1 + cos(pi e / E)) / 2` |
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Schedule {
    /// The base rate throughout (the default).
    #[default]
    Constant,
    /// Multiply by `gamma` in `(0, 1]` every `every >= 1` epochs.
    Step {
        /// Epochs between decays, `>= 1`.
        every: usize,
        /// Factor, in `(0, 1]`.
        gamma: f64,
    },
    /// Multiply by `gamma` in `(0, 1]` every epoch.
    Exponential {
        /// Factor, in `(0, 1]`.
        gamma: f64,
    },
    /// Cosine annealing from the base rate to `min_lr` over the run.
    Cosine {
        /// Final rate, `>= 0` and at most the base rate.
        min_lr: f64,
    },
}

impl Schedule {
    /// Checks the parameters against the base rate `lr`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperparameter`] naming the parameter out of range.
    pub fn validate(&self, lr: f64) -> Result<()> {
        check_positive("lr", lr)?;
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { every, gamma } => {
                check_range(
                    "schedule every",
                    every as f64,
                    every >= 1,
                    "at least 1 epoch",
                )?;
                check_range(
                    "schedule gamma",
                    gamma,
                    gamma > 0.0 && gamma <= 1.0,
                    "a value in (0, 1]",
                )
            }
            Schedule::Exponential { gamma } => check_range(
                "schedule gamma",
                gamma,
                gamma > 0.0 && gamma <= 1.0,
                "a value in (0, 1]",
            ),
            Schedule::Cosine { min_lr } => check_range(
                "schedule min_lr",
                min_lr,
                min_lr >= 0.0 && min_lr <= lr,
                "a value in [0, lr]",
            ),
        }
    }

    /// The learning rate for epoch `epoch` of `epochs`, from base rate `lr`.
    ///
    /// ```
    /// use autoencoder::Schedule;
    /// let s = Schedule::Step { every: 2, gamma: 0.5 };
    /// assert_eq!(s.lr_at(0.1, 3, 10), 0.05);
    /// ```
    pub fn lr_at(&self, lr: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => lr * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => lr * gamma.powi(epoch as i32),
            Schedule::Cosine { min_lr } => {
                let t = epoch as f64 / epochs.max(1) as f64;
                min_lr + (lr - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}
