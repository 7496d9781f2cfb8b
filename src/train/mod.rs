//! `Trainer`: mini-batch training shared by every kind of autoencoder, with validation,
//! early stopping, history, callbacks and divergence detection.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{s, Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::compute::threads::{for_each_block, row_blocks_mut, slice_blocks, zip_blocks};
use crate::data::noise::value_range;
use crate::error::{check_non_negative, check_positive, check_range};
use crate::float::avx2_dispatch;
use crate::objective::LossTerms;
use crate::{
    Autoencoder, Checkpoint, Error, Float, Loss, Noise, Optimizer, Penalty, Result, Schedule,
};

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
    /// Each penalty's part of `train_loss`, in the order given to [`Trainer::penalty`].
    pub train_penalties: Vec<f64>,
    /// Reconstruction loss on the clean validation set after the epoch, if one was given.
    pub valid_loss: Option<f64>,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Wall-clock seconds spent training (validation excluded).
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
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

/// Everything [`Trainer::fit`] measured.
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
    patience: usize,
    min_delta: f64,
    restore: Restore,
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

    fn validate(&self) -> Result<()> {
        check_range(
            "patience",
            self.patience as f64,
            self.patience >= 1,
            "at least 1 epoch",
        )?;
        check_non_negative("min_delta", self.min_delta)
    }
}

/// Progress within an epoch, passed to the [`Trainer::on_batch`] callback.
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
pub(crate) struct Progress<T> {
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

/// Where and how often [`Trainer::checkpoint`] saves.
#[derive(Debug, Clone)]
struct Checkpointing {
    path: PathBuf,
    every: usize,
}

type EpochCallback = Box<dyn FnMut(&EpochRecord) -> ControlFlow<()> + Send>;
type BatchCallback = Box<dyn FnMut(&BatchProgress) + Send>;

/// Trains an [`Autoencoder`] by mini-batch gradient descent on
/// `L_total = L_recon + sum of penalties`.
///
/// | setting | default | range |
/// | --- | --- | --- |
/// | `loss` | [`Loss::MeanSquaredError`] | must suit the output activation |
/// | `penalty` (repeatable) | none | see [`Penalty`] |
/// | `noise` | none (plain autoencoder) | see [`Noise`]; input only, fresh every batch |
/// | `epochs` | 10 | `>= 1` |
/// | `batch_size` | 32 | `>= 1`; the last batch of an epoch may be smaller |
/// | `seed` | 0 | shuffling and noise; same seed, same result, bit for bit |
/// | `schedule` | [`Schedule::Constant`] | per epoch |
/// | `clip_grad_norm` | none | `> 0`: rescale the gradient to at most this global L2 norm |
/// | `early_stopping` | none | see [`EarlyStopping`] |
/// | `checkpoint` | none | path and `every >= 1` epochs; see [`Trainer::checkpoint`] |
///
/// Every setting is checked when [`Trainer::fit`] starts, before any work.
///
/// ```
/// use autoencoder::{Activation, Adam, Autoencoder, Loss, Trainer};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// # fn main() -> autoencoder::Result<()> {
/// let x = Array2::from_shape_fn((64, 8), |(i, j)| ((i * j) % 5) as f64 / 5.0);
/// let mut ae = Autoencoder::<f64>::builder(8)
///     .latent(3, Activation::Tanh)
///     .output(Activation::Sigmoid)
///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// let history = Trainer::new(Adam::new(1e-2))
///     .loss(Loss::BinaryCrossEntropy)
///     .epochs(5)
///     .batch_size(16)
///     .fit(&mut ae, x.view(), None)?;
/// assert_eq!(history.epochs.len(), 5);
/// # Ok(()) }
/// ```
pub struct Trainer<O> {
    optimizer: O,
    loss: Loss,
    penalties: Vec<Penalty>,
    noise: Option<Noise>,
    epochs: usize,
    batch_size: usize,
    seed: u64,
    schedule: Schedule,
    clip_grad_norm: Option<f64>,
    early_stopping: Option<EarlyStopping>,
    checkpoint: Option<Checkpointing>,
    on_epoch: Option<EpochCallback>,
    on_batch: Option<BatchCallback>,
    terms: LossTerms,             // the last step's loss terms; buffers reused
    step_rng: Option<ChaCha8Rng>, // randomness of `step` (sampling), from `seed`
}

impl<O: std::fmt::Debug> std::fmt::Debug for Trainer<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("optimizer", &self.optimizer)
            .field("loss", &self.loss)
            .field("penalties", &self.penalties)
            .field("noise", &self.noise)
            .field("epochs", &self.epochs)
            .field("batch_size", &self.batch_size)
            .field("seed", &self.seed)
            .field("schedule", &self.schedule)
            .field("clip_grad_norm", &self.clip_grad_norm)
            .field("early_stopping", &self.early_stopping)
            .field("checkpoint", &self.checkpoint)
            .field("on_epoch", &self.on_epoch.as_ref().map(|_| "callback"))
            .field("on_batch", &self.on_batch.as_ref().map(|_| "callback"))
            .finish()
    }
}

impl<O> Trainer<O> {
    /// A trainer using `optimizer`, with the defaults in the table above.
    pub fn new(optimizer: O) -> Self {
        Trainer {
            optimizer,
            loss: Loss::MeanSquaredError,
            penalties: Vec::new(),
            noise: None,
            epochs: 10,
            batch_size: 32,
            seed: 0,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            early_stopping: None,
            checkpoint: None,
            on_epoch: None,
            on_batch: None,
            terms: LossTerms::default(),
            step_rng: None,
        }
    }

    /// Sets the reconstruction loss.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Adds a penalty term (call once per penalty; they sum).
    pub fn penalty(mut self, penalty: impl Into<Penalty>) -> Self {
        self.penalties.push(penalty.into());
        self
    }

    /// Trains a denoising autoencoder: the input of every batch is corrupted by `noise`
    /// (fresh each batch); the target stays the clean data. Validation uses clean input.
    pub fn noise(mut self, noise: Noise) -> Self {
        self.noise = Some(noise);
        self
    }

    /// Sets the number of epochs.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets the mini-batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the seed of the shuffling and noise generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the learning-rate schedule.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Clips the gradient to global L2 norm `max_norm` (over all parameters) before each step.
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// Enables early stopping.
    pub fn early_stopping(mut self, early_stopping: EarlyStopping) -> Self {
        self.early_stopping = Some(early_stopping);
        self
    }

    /// Saves a [`Checkpoint`] to `path` after every `every`-th epoch (epochs `every - 1`,
    /// `2 every - 1`, ... counted from 0) and after the last epoch of the run, whatever
    /// ended it (all epochs done, early stopping, the epoch callback). A checkpoint holds
    /// the model, the optimizer's state, the generator's state, the next epoch, the history
    /// and the best weights so far; [`Trainer::resume`] continues from it exactly. Each
    /// save replaces the previous one atomically, so a run killed at any moment loses at
    /// most the epochs since the last save. The file format is in `docs/format.md`.
    ///
    /// A failed save stops training with [`Error::Io`]; the model keeps its weights. A run
    /// that diverges ([`Error::Diverged`]) saves nothing more: the last checkpoint stays.
    pub fn checkpoint(mut self, path: impl AsRef<Path>, every: usize) -> Self {
        self.checkpoint = Some(Checkpointing {
            path: path.as_ref().to_path_buf(),
            every,
        });
        self
    }

    /// Calls `f` after every epoch (after validation); returning `ControlFlow::Break(())`
    /// stops training.
    pub fn on_epoch(
        mut self,
        f: impl FnMut(&EpochRecord) -> ControlFlow<()> + Send + 'static,
    ) -> Self {
        self.on_epoch = Some(Box::new(f));
        self
    }

    /// Calls `f` after every batch, e.g. to draw a progress bar.
    pub fn on_batch(mut self, f: impl FnMut(&BatchProgress) + Send + 'static) -> Self {
        self.on_batch = Some(Box::new(f));
        self
    }

    /// The optimizer, with its state.
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// Trains `model` on the rows of `train` `(n, n_in)`, reporting the reconstruction loss
    /// on `valid` `(m, n_in)` after each epoch if given.
    ///
    /// Each epoch reshuffles the rows from the seeded generator (which also draws the
    /// denoising noise and a VAE's `eps`) and visits every row once,
    /// in batches of `batch_size` (the last may be smaller). The optimizer's state carries
    /// over between calls to `fit`.
    ///
    /// # Errors
    /// Before any work: [`Error::InvalidHyperparameter`] for any setting out of range,
    /// [`Error::InvalidConfig`] for a loss or penalty that does not suit the model or data,
    /// [`Error::EmptyData`], [`Error::ShapeMismatch`] or [`Error::NonFiniteData`] for bad
    /// data. During training: [`Error::Diverged`] if the loss or the gradient becomes
    /// non-finite; the model then holds its last finite weights.
    pub fn fit<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: ArrayView2<T>,
        valid: Option<ArrayView2<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        self.run(model, train, valid, None)
    }

    /// Continues the run saved in `checkpoint` (see [`Trainer::checkpoint`]): replaces
    /// `model` with the checkpoint's model and the optimizer's state with the saved one,
    /// then trains epochs `checkpoint.epoch()` to `epochs - 1` exactly as the interrupted
    /// run would have, with the saved generator, history and best weights. With the same
    /// settings and data, the weights are bit for bit those of an uninterrupted run. The
    /// returned [`History`] covers the whole run, the checkpoint's epochs included.
    ///
    /// The trainer's settings are not in the checkpoint: pass the ones of the first run
    /// (`epochs` is the total, not the number of epochs still to run). If the checkpoint
    /// is already at `epochs` or beyond, no epoch runs.
    ///
    /// ```
    /// use autoencoder::{Activation, Adam, Autoencoder, Checkpoint, Trainer};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// use std::ops::ControlFlow;
    /// # fn main() -> autoencoder::Result<()> {
    /// # let dir = std::env::temp_dir().join(format!("ae-doc-resume-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("run.ckpt");
    /// let x = Array2::from_shape_fn((64, 8), |(i, j)| ((i * j) % 5) as f32 / 5.0);
    /// let mut ae = Autoencoder::<f32>::builder(8)
    ///     .latent(3, Activation::Tanh)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
    /// // A run of 4 epochs that stops after 2 (say, the machine went down).
    /// Trainer::new(Adam::new(1e-2))
    ///     .epochs(4)
    ///     .checkpoint(&path, 1)
    ///     .on_epoch(|r| match r.epoch {
    ///         1 => ControlFlow::Break(()),
    ///         _ => ControlFlow::Continue(()),
    ///     })
    ///     .fit(&mut ae, x.view(), None)?;
    ///
    /// // Later, in another process: the same settings, resumed.
    /// let checkpoint = Checkpoint::<f32>::load(&path)?;
    /// assert_eq!(checkpoint.epoch(), 2);
    /// let history = Trainer::new(Adam::new(1e-2))
    ///     .epochs(4)
    ///     .resume(&mut ae, checkpoint, x.view(), None)?;
    /// assert_eq!(history.epochs.len(), 4);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::fit`]; and [`Error::InvalidConfig`] if the checkpoint's optimizer
    /// state is not this optimizer's kind, or its penalties, loss, batch size, seed or
    /// noise differ from the trainer's (the number of epochs may differ: a run can be
    /// extended).
    pub fn resume<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        checkpoint: Checkpoint<T>,
        train: ArrayView2<T>,
        valid: Option<ArrayView2<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        let (saved_model, state, progress) = checkpoint.into_parts();
        if let Some(saved) = progress
            .settings
            .as_ref()
            .filter(|&s| *s != self.settings())
        {
            return Err(Error::InvalidConfig(format!(
                "the checkpoint was trained with {saved:?} but the trainer has {:?}: resume \
                 with the settings of the first run",
                self.settings()
            )));
        }
        if progress.history.penalty_names != self.penalty_names() {
            return Err(Error::InvalidConfig(format!(
                "the checkpoint was trained with penalties {:?} but the trainer has {:?}: \
                 resume with the settings of the first run",
                progress.history.penalty_names,
                self.penalty_names()
            )));
        }
        // Check everything before touching the caller's model or the optimizer.
        self.validate(&saved_model, train, valid)?;
        self.optimizer.load_state(state)?;
        *model = saved_model;
        self.run(model, train, valid, Some(progress))
    }

    fn settings(&self) -> RunSettings {
        RunSettings {
            loss: self.loss,
            batch_size: self.batch_size,
            seed: self.seed,
            noise: self.noise,
        }
    }

    fn penalty_names(&self) -> Vec<String> {
        self.penalties
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }

    /// The one training loop, from the start or from `resumed`.
    fn run<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: ArrayView2<T>,
        valid: Option<ArrayView2<T>>,
        resumed: Option<Progress<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        self.validate(model, train, valid)?;
        let (n, n_in) = train.dim();
        let batch_size = self.batch_size.min(n);
        let n_batches = n.div_ceil(batch_size);
        let mut target = Array2::<T>::zeros((batch_size, n_in)); // (batch, n_in), clean rows
        let mut noisy = Array2::<T>::zeros(if self.noise.is_some() {
            (batch_size, n_in)
        } else {
            (0, n_in)
        });
        let range = value_range(train);
        let mut sum_penalties = vec![0.0; self.penalties.len()];
        let mut snapshot = model.clone(); // last weights known finite (start of epoch)
        let mut penalties = self.penalties.clone(); // as they apply this epoch (warm-up)
        let settings = self.settings();
        let Progress {
            settings: _,
            epoch: first_epoch,
            mut rng,
            mut order,
            mut history,
            mut best,
            mut since_best,
        } = resumed.unwrap_or_else(|| Progress {
            settings: None,
            epoch: 0,
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            order: (0..n).collect(),
            history: History {
                epochs: Vec::new(),
                penalty_names: self.penalty_names(),
                best_epoch: None,
                stop: StopReason::Completed,
            },
            best: None,
            since_best: 0,
        });
        history.stop = StopReason::Completed;
        if order.len() != n {
            return Err(Error::ShapeMismatch {
                context: "resumed training data",
                expected: format!("{} rows, as in the checkpointed run", order.len()),
                found: format!("{:?}", train.dim()),
            });
        }

        for epoch in first_epoch..self.epochs {
            snapshot.copy_params_from(model);
            for (now, given) in penalties.iter_mut().zip(&self.penalties) {
                *now = given.at_epoch(epoch);
            }
            let lr = self.schedule.lr_at(self.optimizer.lr(), epoch, self.epochs);
            let start = Instant::now();
            order.shuffle(&mut rng);
            let mut sum_recon = 0.0;
            sum_penalties.fill(0.0);
            for (batch, rows) in order.chunks(batch_size).enumerate() {
                let m = rows.len();
                // Gather the batch's rows (spread over the threads for large batches).
                let elements = m * target.ncols();
                let blocks = row_blocks_mut(target.slice_mut(s![..m, ..]));
                for_each_block(
                    elements,
                    zip_blocks(blocks, slice_blocks(rows)),
                    |(mut dst, rows)| {
                        for (r, &i) in rows.iter().enumerate() {
                            dst.row_mut(r).assign(&train.row(i));
                        }
                        0.0
                    },
                );
                let target = target.slice(s![..m, ..]);
                let input = match self.noise {
                    Some(noise) => {
                        noise.apply(target, noisy.slice_mut(s![..m, ..]), range, &mut rng);
                        noisy.slice(s![..m, ..])
                    }
                    None => target,
                };
                let at = Position { lr, epoch, batch };
                if let Err(e) =
                    self.step_checked(model, input, target, Some(&penalties), &mut rng, at)
                {
                    if !model.params_are_finite() {
                        model.copy_params_from(&snapshot);
                    }
                    return Err(e);
                }
                let terms = &self.terms;

                sum_recon += terms.reconstruction * m as f64;
                for (s, p) in sum_penalties.iter_mut().zip(&terms.penalties) {
                    *s += p * m as f64;
                }
                if let Some(f) = self.on_batch.as_mut() {
                    let samples = batch * batch_size + m;
                    let loss = (sum_recon + sum_penalties.iter().sum::<f64>()) / samples as f64;
                    let seconds = start.elapsed().as_secs_f64();
                    f(&BatchProgress {
                        epoch,
                        batch: batch + 1,
                        n_batches,
                        samples,
                        loss,
                        seconds,
                    });
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            if !model.params_are_finite() {
                model.copy_params_from(&snapshot);
                return Err(Error::Diverged {
                    epoch,
                    batch: n_batches - 1,
                    what: "weights",
                    value: f64::NAN,
                });
            }
            let valid_loss = match valid {
                Some(v) => Some(model.evaluate_checked(v, v, self.loss, batch_size)),
                None => None,
            };
            let train_penalties: Vec<f64> = sum_penalties.iter().map(|s| s / n as f64).collect();
            let record = EpochRecord {
                epoch,
                train_loss: (sum_recon + sum_penalties.iter().sum::<f64>()) / n as f64,
                train_reconstruction: sum_recon / n as f64,
                train_penalties,
                valid_loss,
                lr,
                seconds,
                samples_per_second: n as f64 / seconds.max(1e-12),
            };
            let monitored = History::monitored(&record);
            history.epochs.push(record);

            let min_delta = self.early_stopping.map_or(0.0, |e| e.min_delta);
            match &mut best {
                Some((best_loss, _, _)) if monitored >= *best_loss - min_delta => since_best += 1,
                Some((best_loss, best_epoch, best_model)) => {
                    (*best_loss, *best_epoch) = (monitored, epoch);
                    best_model.copy_params_from(model);
                    since_best = 0;
                }
                None => best = Some((monitored, epoch, model.clone())),
            }
            history.best_epoch = best.as_ref().map(|b| b.1);

            let mut stop = None;
            if let Some(f) = self.on_epoch.as_mut() {
                if f(history.epochs.last().expect("just pushed")).is_break() {
                    stop = Some(StopReason::Callback);
                }
            }
            if let (None, Some(es)) = (stop, self.early_stopping) {
                if since_best >= es.patience {
                    stop = Some(StopReason::EarlyStopped);
                    if let (Restore::Best, Some((_, _, best_model))) = (es.restore, &best) {
                        model.copy_params_from(best_model);
                    }
                }
            }
            history.stop = stop.unwrap_or(StopReason::Completed);
            if let Some(c) = &self.checkpoint {
                let last = stop.is_some() || epoch + 1 == self.epochs;
                if last || (epoch + 1) % c.every == 0 {
                    let progress = crate::io::ProgressRef {
                        settings: &settings,
                        epoch: epoch + 1,
                        rng: &rng,
                        order: &order,
                        history: &history,
                        best: best.as_ref().map(|(l, e, m)| (*l, *e, m)),
                        since_best,
                    };
                    crate::io::save_checkpoint(&c.path, model, &self.optimizer.state(), progress)?;
                }
            }
            if stop.is_some() {
                break;
            }
        }
        Ok(history)
    }

    /// One training step on one batch: forward `input` `(rows, n_in)`, compare with `target`
    /// `(rows, n_in)` (pass the same array twice for a plain autoencoder), backpropagate
    /// the reconstruction loss plus every penalty, and update the parameters once with the
    /// optimizer at its base learning rate. [`Trainer::fit`] runs this same step on every
    /// batch, adding what depends on epochs around it (shuffling, noise, schedules, penalty
    /// warm-ups); here penalties apply at full weight and sampling (variational models)
    /// draws from a generator seeded by [`Trainer::seed`] at the first call. Returns the
    /// objective `reconstruction + sum of penalties` on the batch, before the update;
    /// [`Trainer::last_terms`] has its parts.
    ///
    /// After the first call with a given batch size this allocates nothing in this crate
    /// (without the `blas` feature the matrix products take a scratch buffer of their own:
    /// see the README's Performance section).
    ///
    /// ```
    /// use autoencoder::{Activation, Adam, Autoencoder, Loss, Trainer};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let x = Array2::from_shape_fn((32, 8), |(i, j)| ((i + j) % 4) as f32 / 4.0);
    /// let mut ae = Autoencoder::<f32>::builder(8)
    ///     .latent(3, Activation::Relu)
    ///     .output(Activation::Sigmoid)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
    /// let mut trainer = Trainer::new(Adam::new(1e-2)).loss(Loss::BinaryCrossEntropy);
    /// let first = trainer.step(&mut ae, x.view(), x.view())?;
    /// for _ in 0..50 {
    ///     trainer.step(&mut ae, x.view(), x.view())?;
    /// }
    /// assert!(trainer.step(&mut ae, x.view(), x.view())? < first);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Trainer::fit`] for settings and data (checked on every call, without
    /// allocating unless they are bad); [`Error::ShapeMismatch`] if `input` and `target`
    /// have different numbers of rows; [`Error::Diverged`] (epoch and batch 0) if the loss
    /// or the gradient is not finite, in which case no update is made.
    pub fn step<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
    ) -> Result<f64>
    where
        O: Optimizer<T>,
    {
        self.validate(model, target, None)?;
        model.check_data(input, "step input")?;
        if input.nrows() != target.nrows() {
            return Err(Error::ShapeMismatch {
                context: "step target",
                expected: format!("{} rows, as the input", input.nrows()),
                found: format!("{:?}", target.dim()),
            });
        }
        let mut rng = self
            .step_rng
            .take()
            .unwrap_or_else(|| ChaCha8Rng::seed_from_u64(self.seed));
        let at = Position {
            lr: self.optimizer.lr(),
            epoch: 0,
            batch: 0,
        };
        let result = self.step_checked(model, input, target, None, &mut rng, at);
        self.step_rng = Some(rng);
        result.map(|()| self.terms.total())
    }

    /// The loss terms of the last step (of [`Trainer::step`] or within [`Trainer::fit`]):
    /// the reconstruction loss and each penalty's weighted value, on that batch.
    ///
    /// ```
    /// use autoencoder::{Adam, Trainer};
    /// let trainer = Trainer::new(Adam::<f32>::new(1e-3));
    /// assert_eq!(trainer.last_terms().total(), 0.0); // no step yet
    /// ```
    pub fn last_terms(&self) -> &LossTerms {
        &self.terms
    }

    /// The training step shared by [`Trainer::step`] and [`Trainer::fit`], on checked
    /// inputs: gradient of the objective (`penalties` as they apply now, or the given ones
    /// if `None`), divergence checks, clipping, one optimizer update at rate `at.lr`, tied
    /// weights re-synced. Leaves the loss terms in `self.terms`. Allocates nothing once the
    /// model's workspace and the optimizer's state exist for this batch size.
    fn step_checked<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        penalties: Option<&[Penalty]>,
        rng: &mut ChaCha8Rng,
        at: Position,
    ) -> Result<()>
    where
        O: Optimizer<T>,
    {
        let penalties = penalties.unwrap_or(&self.penalties);
        model.loss_and_gradient(input, target, self.loss, penalties, &mut self.terms, rng);
        let diverged = |what, value: f64| {
            Err(Error::Diverged {
                epoch: at.epoch,
                batch: at.batch,
                what,
                value,
            })
        };
        let total = self.terms.total();
        if !total.is_finite() {
            return diverged("loss", total);
        }
        let norm = grad_norm(model);
        if !norm.is_finite() {
            return diverged("gradient norm", norm);
        }
        if let Some(max) = self.clip_grad_norm {
            if norm > max {
                scale_grads(model, T::cast(max / norm));
            }
        }
        self.optimizer.begin_step();
        let optimizer = &mut self.optimizer;
        model.visit_params(|index, param, grad, kind| {
            optimizer.update(index, param, grad, kind, at.lr)
        });
        model.sync_tied();
        Ok(())
    }

    fn validate<T: Float>(
        &self,
        model: &Autoencoder<T>,
        train: ArrayView2<T>,
        valid: Option<ArrayView2<T>>,
    ) -> Result<()>
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
        self.loss.validate(model.output_activation())?;
        for penalty in &self.penalties {
            penalty.validate(model.architecture())?;
        }
        model.check_data(train, "training data")?;
        self.loss.validate_targets(train, "training data")?;
        if let Some(valid) = valid {
            model.check_data(valid, "validation data")?;
            self.loss.validate_targets(valid, "validation data")?;
        }
        Ok(())
    }
}

/// Where a step runs: its learning rate, and the epoch and batch that errors report.
#[derive(Debug, Clone, Copy)]
struct Position {
    lr: f64,
    epoch: usize,
    batch: usize,
}

/// Global L2 norm of all parameter gradients.
fn grad_norm<T: Float>(model: &mut Autoencoder<T>) -> f64 {
    let mut sum = 0.0;
    model.visit_params(|_, _, grad, _| sum += sum_squares_wide(grad).as_f64());
    sum.sqrt()
}

avx2_dispatch! {
    /// [`sum_squares`], for AVX2 when available.
    fn sum_squares_wide / sum_squares<T>(x: &[T]) -> T
    where T: Float
}

/// `sum x^2` in 8 interleaved partial sums combined in a fixed order (vectorizes, and the
/// result does not depend on the instruction set).
#[inline(always)]
fn sum_squares<T: Float>(x: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (acc, &g) in acc.iter_mut().zip(chunk) {
            *acc += g * g;
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |s, &g| s + g * g);
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// Multiplies every gradient by `factor`.
fn scale_grads<T: Float>(model: &mut Autoencoder<T>, factor: T) {
    model.visit_params(|_, _, grad, _| grad.iter_mut().for_each(|g| *g *= factor));
}
