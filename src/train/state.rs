//! Where a run stands between two epochs: what a checkpoint saves besides the model and
//! the optimizer's state, and the settings a resumed run must share with the first.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::noise::Noise;
use crate::model::Autoencoder;
use crate::objective::loss::Loss;
use crate::train::history::History;
use crate::train::shuffle::Shuffle;

/// The trainer settings that decide which batches a run sees and how they are scored: a
/// resumed run must use the same ones to continue the first run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunSettings {
    pub(crate) loss: Loss,
    pub(crate) batch_size: usize,
    pub(crate) seed: u64,
    pub(crate) noise: Option<Noise>,
    /// Checkpoints written before it was recorded ran the row shuffle.
    #[serde(default)]
    pub(crate) shuffle: Shuffle,
}

/// Where a run stands between two epochs: everything a checkpoint saves besides the model
/// and the optimizer's state.
#[derive(Debug, Clone)]
pub(crate) struct RunState<T> {
    /// The run's settings: those of the running trainer during a run (its checkpoints save
    /// them); in a loaded checkpoint, those of the run that saved it (`None` in checkpoints
    /// written before they were recorded).
    pub(crate) settings: Option<RunSettings>,
    /// The next epoch to run.
    pub(crate) epoch: usize,
    /// The shuffling and noise generator, as it is after `epoch - 1`.
    pub(crate) rng: ChaCha8Rng,
    /// The order of epoch `epoch - 1` of the units the run shuffles (rows, or blocks of
    /// rows under the block shuffle): each epoch shuffles the previous order.
    pub(crate) order: Vec<usize>,
    /// Epochs run so far.
    pub(crate) history: History,
    /// Lowest monitored loss, its epoch, and the weights after that epoch.
    pub(crate) best: Option<(f64, usize, Autoencoder<T>)>,
    /// Epochs since the best one.
    pub(crate) since_best: usize,
}
