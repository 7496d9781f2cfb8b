//! Optimizers (behind one trait) and learning-rate schedules.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::error::{check_positive, check_range};
use crate::float::Float;

mod adam;
mod sgd;

pub use adam::{Adam, WeightDecay};
pub use sgd::Sgd;

use crate::layers::ParamKind;

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
    /// [`crate::error::Error::InvalidHyperparameter`] naming the first one out of range.
    fn validate(&self) -> Result<()>;

    /// Starts a step (Adam counts steps for its bias correction).
    fn begin_step(&mut self);

    /// Updates tensor `index` in place from its gradient, at learning rate `lr`.
    /// Allocates only on the first step.
    fn update(&mut self, index: usize, param: &mut [T], grad: &[T], kind: ParamKind, lr: f64);

    /// Forgets all state, as if no step had been taken.
    fn reset(&mut self);

    /// A copy of the state (step count and per-tensor buffers), for checkpoints.
    ///
    /// The default suits optimizers without state: `OptimizerState::new("stateless", 0)`.
    /// An optimizer with state must override this and [`Optimizer::load_state`], or a
    /// resumed run will not continue exactly.
    ///
    /// ```
    /// use autoencoder::{Adam, Optimizer};
    /// let adam = Adam::<f32>::new(1e-3);
    /// let state = adam.state();
    /// assert_eq!((state.name(), state.steps()), ("adam", 0));
    /// ```
    fn state(&self) -> OptimizerState<T> {
        OptimizerState::new("stateless", 0)
    }

    /// Replaces the state with `state`, as returned by [`Optimizer::state`] (possibly from
    /// a checkpoint); the next step continues exactly where that optimizer stopped. The
    /// hyperparameters (`lr`, betas...) are not part of the state and stay as they are.
    ///
    /// # Errors
    /// [`crate::error::Error::InvalidConfig`] if `state` belongs to another kind of optimizer or its
    /// buffers are missing or inconsistent.
    fn load_state(&mut self, state: OptimizerState<T>) -> Result<()> {
        state.expect_name("stateless")?;
        state.expect_no_more_buffers()
    }
}

/// A snapshot of an optimizer's state, as saved in checkpoints: the optimizer's name, its
/// step count, and named buffers with one vector per parameter tensor.
///
/// Buffer `name` holds, for parameter tensor `index` (the order of
/// [`Optimizer::update`]: layer by layer, weights then bias), a vector of that tensor's
/// length in row-major order, or an empty vector if the optimizer has not created it yet.
///
/// | optimizer | name | steps | buffers |
/// | --- | --- | --- | --- |
/// | [`Adam`] | `"adam"` | `t`, steps taken | `"m"`, `"v"`: first and second moments |
/// | [`Sgd`] | `"sgd"` | 0 | `"velocity"` (empty without momentum) |
///
/// ```
/// use autoencoder::OptimizerState;
/// let state = OptimizerState::new("sgd", 0).with_buffer("velocity", vec![vec![0.5f32, -0.5]]);
/// assert_eq!(state.buffer("velocity"), Some(&[vec![0.5f32, -0.5]][..]));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<T> {
    name: String,
    steps: u64,
    buffers: Vec<(String, Vec<Vec<T>>)>,
}

impl<T> OptimizerState<T> {
    /// A state named `name` after `steps` steps, without buffers.
    pub fn new(name: impl Into<String>, steps: u64) -> Self {
        OptimizerState {
            name: name.into(),
            steps,
            buffers: Vec::new(),
        }
    }

    /// Adds buffer `name`: one vector per parameter tensor.
    pub fn with_buffer(mut self, name: impl Into<String>, tensors: Vec<Vec<T>>) -> Self {
        self.buffers.push((name.into(), tensors));
        self
    }

    /// The optimizer's name, e.g. `"adam"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// All buffers, in the order they were added.
    pub fn buffers(&self) -> &[(String, Vec<Vec<T>>)] {
        &self.buffers
    }

    /// Buffer `name`, if present.
    pub fn buffer(&self, name: &str) -> Option<&[Vec<T>]> {
        self.buffers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }

    /// Removes and returns buffer `name`.
    ///
    /// # Errors
    /// [`crate::error::Error::InvalidConfig`] if there is no such buffer.
    pub fn take_buffer(&mut self, name: &str) -> Result<Vec<Vec<T>>> {
        match self.buffers.iter().position(|(n, _)| n == name) {
            Some(i) => Ok(self.buffers.remove(i).1),
            None => Err(crate::error::Error::InvalidConfig(format!(
                "the state of optimizer `{}` has no buffer `{name}`: it was not saved by this optimizer",
                self.name
            ))),
        }
    }

    /// Checks that the state belongs to optimizer `name`.
    ///
    /// # Errors
    /// [`crate::error::Error::InvalidConfig`] naming both optimizers.
    pub fn expect_name(&self, name: &str) -> Result<()> {
        if self.name == name {
            Ok(())
        } else {
            Err(crate::error::Error::InvalidConfig(format!(
                "the saved optimizer state is `{}`'s but the optimizer is `{name}`: \
                 resume with the same kind of optimizer",
                self.name
            )))
        }
    }

    /// Checks that every buffer has been taken.
    ///
    /// # Errors
    /// [`crate::error::Error::InvalidConfig`] naming the first buffer left.
    pub fn expect_no_more_buffers(&self) -> Result<()> {
        match self.buffers.first() {
            None => Ok(()),
            Some((name, _)) => Err(crate::error::Error::InvalidConfig(format!(
                "the saved state of optimizer `{}` has an unknown buffer `{name}`",
                self.name
            ))),
        }
    }
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
    /// [`crate::error::Error::InvalidHyperparameter`] naming the parameter out of range.
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
