//! The trainer's settings checked against a model and its data before a run, and what a
//! checkpoint records of them.

use ndarray::ArrayView2;

use crate::data::source::{check_shape, RowSource};
use crate::error::{check_positive, check_range, Result};
use crate::float::Float;
use crate::model::Autoencoder;
use crate::optim::Optimizer;
use crate::train::shuffle::Shuffle;
use crate::train::state::RunSettings;
use crate::train::Trainer;

impl<O> Trainer<O> {
    /// What a checkpoint of a run under `shuffle` records of this trainer's settings.
    pub(super) fn settings(&self, shuffle: Shuffle) -> RunSettings {
        RunSettings {
            loss: self.loss,
            batch_size: self.batch_size,
            seed: self.seed,
            noise: self.noise,
            shuffle,
        }
    }

    /// The shuffle a run on `train` uses: the one set, or the default for the source.
    pub(super) fn shuffle_for<T: Float, S: RowSource<T> + ?Sized>(&self, train: &S) -> Shuffle {
        self.shuffle.unwrap_or(match train.as_array() {
            Some(_) => Shuffle::Rows,
            None => Shuffle::BLOCKS,
        })
    }

    /// The penalties' names, as the history reports them.
    pub(super) fn penalty_names(&self) -> Vec<String> {
        self.penalties
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }

    /// Checks the settings, the objective and the data (rows in memory in full, other
    /// sources' shape); returns the shuffle of a run on `train`.
    pub(super) fn validate<T: Float, S: RowSource<T> + ?Sized>(
        &self,
        model: &Autoencoder<T>,
        train: &S,
        valid: Option<ArrayView2<T>>,
    ) -> Result<Shuffle>
    where
        O: Optimizer<T>,
    {
        self.optimizer.validate()?;
        self.schedule.validate(self.optimizer.lr())?;
        check_range("epochs", self.epochs as f64, self.epochs >= 1, "at least 1")?;
        check_range(
            "batch_size",
            self.batch_size as f64,
            self.batch_size >= 1,
            "at least 1",
        )?;
        if let Some(max) = self.clip_grad_norm {
            check_positive("clip_grad_norm", max)?;
        }
        if let Some(es) = self.early_stopping {
            es.validate()?;
        }
        if let Some(c) = &self.checkpoint {
            check_range(
                "checkpoint every",
                c.every as f64,
                c.every >= 1,
                "at least 1 epoch",
            )?;
        }
        if let Some(noise) = self.noise {
            noise.validate_for::<T>()?;
        }
        let shuffle = self.shuffle_for(train);
        shuffle.validate()?;
        model.check_objective(self.loss, &self.penalties)?;
        match train.as_array() {
            Some(x) => model.check_targets(x, self.loss, "training data")?,
            None => check_shape(train, Some(model.n_in()), "training data")?,
        }
        if let Some(valid) = valid {
            model.check_targets(valid, self.loss, "validation data")?;
        }
        Ok(shuffle)
    }
}
