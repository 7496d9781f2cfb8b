//! Where a run stands between two epochs: the run's settings and state that a checkpoint
//! saves besides the model and the optimizer, and the borrowed view the checkpoint writer takes.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::noise::Noise;
use crate::model::Autoencoder;
use crate::objective::loss::Loss;
use crate::train::history::History;

/// The trainer settings that decide which batches a run sees and how they are scored: a
/// resumed run must use the same ones to continue the first run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunSettings {
    pub(crate) loss: Loss,
    pub(crate) batch_size: usize,
    pub(crate) seed: u64,
    pub(crate) noise: Option<Noise>,
}

/// Where a run stands between two epochs: everything a checkpoint saves besides the model
/// and the optimizer's state.
#[derive(Debug, Clone)]
pub(crate) struct RunState<T> {
    /// The settings of the run that saved it (`None` in checkpoints written before they
    /// were recorded).
    pub(crate) settings: Option<RunSettings>,
    /// The next epoch to run.
    pub(crate) epoch: usize,
    /// The shuffling and noise generator, as it is after `epoch - 1`.
    pub(crate) rng: ChaCha8Rng,
    /// The row order of epoch `epoch - 1`: each epoch shuffles the previous order.
    pub(crate) order: Vec<usize>,
    /// Epochs run so far.
    pub(crate) history: History,
    /// Lowest monitored loss, its epoch, and the weights after that epoch.
    pub(crate) best: Option<(f64, usize, Autoencoder<T>)>,
    /// Epochs since the best one.
    pub(crate) since_best: usize,
}

/// What the trainer hands to the checkpoint writer: [`RunState`] by reference, with the
/// settings of the running trainer.
#[derive(Debug)]
pub(crate) struct RunStateRef<'a, T> {
    pub(crate) settings: &'a RunSettings,
    pub(crate) epoch: usize,
    pub(crate) rng: &'a ChaCha8Rng,
    pub(crate) order: &'a [usize],
    pub(crate) history: &'a History,
    pub(crate) best: Option<(f64, usize, &'a Autoencoder<T>)>,
    pub(crate) since_best: usize,
}
