//! What a run records and when it stops: per-epoch records, the [`History`], why training
//! stopped, early stopping, and the progress passed to batch callbacks.

use serde::{Deserialize, Serialize};

use crate::error::{check_non_negative, check_range, Result};

/// What one epoch did. Losses are means over the epoch's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Training objective: reconstruction plus every penalty, on the (corrupted, if
    /// denoising) training input, averaged over the epoch's batches weighted by size.
    pub train_loss: f64,
    /// The reconstruction part of `train_loss`.
    pub train_reconstruction: f64,
    /// Each penalty's part of `train_loss`, in the order given to [`Trainer::penalty`](crate::Trainer::penalty).
    pub train_penalties: Vec<f64>,
    /// Reconstruction loss on the clean validation set after the epoch, if one was given.
    pub valid_loss: Option<f64>,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Wall-clock seconds spent training (validation excluded).
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
    /// Of `seconds`, the time the training step waited for rows from a source read piece
    /// by piece ([`crate::data::RowSource`]): the read-ahead not keeping up, e.g. a disk
    /// slower than training. 0 for data in memory under the row shuffle.
    #[serde(default)]
    pub read_wait_seconds: f64,
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// All requested epochs ran.
    Completed,
    /// Early stopping: the monitored loss did not improve for `patience` epochs.
    EarlyStopped,
    /// The epoch callback asked to stop.
    Callback,
}

/// Everything [`Trainer::fit`](crate::Trainer::fit) measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per epoch run.
    pub epochs: Vec<EpochRecord>,
    /// Names of the penalties, in the order of [`EpochRecord::train_penalties`].
    pub penalty_names: Vec<String>,
    /// The epoch with the lowest monitored loss (validation if given, else training).
    pub best_epoch: Option<usize>,
    /// Why training stopped.
    pub stop: StopReason,
}

impl History {
    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The loss early stopping monitors: validation if present, else training.
    pub fn monitored(record: &EpochRecord) -> f64 {
        record.valid_loss.unwrap_or(record.train_loss)
    }
}

/// Which weights the model keeps when early stopping ends a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restore {
    /// Restore the weights of the best epoch (the default).
    Best,
    /// Keep the last epoch's weights.
    Last,
}

/// Early stopping: stop when the monitored loss (validation if given, else training) has
/// not fallen by more than `min_delta` below the best so far for `patience` epochs.
///
/// | parameter | default | range |
/// | --- | --- | --- |
/// | `patience` | given | `>= 1` epochs |
/// | `min_delta` | 0 | `>= 0` |
/// | `restore` | [`Restore::Best`] | |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub(super) patience: usize,
    pub(super) min_delta: f64,
    pub(super) restore: Restore,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without improvement.
    pub fn new(patience: usize) -> Self {
        EarlyStopping {
            patience,
            min_delta: 0.0,
            restore: Restore::Best,
        }
    }

    /// Improvements smaller than `min_delta` do not count.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// Which weights to keep at the end.
    pub fn restore(mut self, restore: Restore) -> Self {
        self.restore = restore;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        check_range(
            "patience",
            self.patience as f64,
            self.patience >= 1,
            "at least 1 epoch",
        )?;
        check_non_negative("min_delta", self.min_delta)
    }
}

/// Progress within an epoch, passed to the [`Trainer::on_batch`](crate::Trainer::on_batch) callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchProgress {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Batches done in this epoch, from 1.
    pub batch: usize,
    /// Batches per epoch.
    pub n_batches: usize,
    /// Samples done in this epoch.
    pub samples: usize,
    /// Running mean of the training objective over this epoch so far.
    pub loss: f64,
    /// Seconds since the epoch started.
    pub seconds: f64,
}
