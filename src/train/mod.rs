//! `Trainer`: mini-batch training shared by every kind of autoencoder, with validation,
//! early stopping, history, callbacks and divergence detection.
//!
//! This file holds the `Trainer`, its settings and its public API. The other files:
//! - `history.rs`: what a run records (`EpochRecord`, `History`, `StopReason`) and early
//!   stopping.
//! - `state.rs`: where a run stands between epochs (`RunState`), as checkpoints save it;
//!   `io::checkpoint` reads and writes it, so it imports nothing of the trainer.
//! - `step.rs`: the training step, divergence checks, gradient clipping.
//! - `run.rs`: the epoch loop of `fit` and `resume`, and checkpointing.
//! - `settings.rs`: the settings checked against a model and data before a run, and what
//!   a checkpoint records of them.
//! - `shuffle.rs`: the [`Shuffle`] setting and how an epoch splits into windows of rows.
//! - `feed.rs`: read-ahead, a helper thread filling windows of rows from a
//!   [`RowSource`] while the step computes.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::ArrayView2;
use rand_chacha::ChaCha8Rng;

use crate::data::noise::Noise;
use crate::data::source::RowSource;
use crate::distributed::Communicator;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::checkpoint::Checkpoint;
use crate::model::Autoencoder;
use crate::objective::loss::Loss;
use crate::objective::{LossTerms, Penalty};
use crate::optim::{Optimizer, Schedule};
use crate::train::history::{BatchProgress, EarlyStopping, EpochRecord, History};
use crate::train::shuffle::Shuffle;

mod feed;
pub(crate) mod history;
mod run;
mod settings;
pub(crate) mod shuffle;
pub(crate) mod state;
mod step;

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
/// | `shuffle` | [`Shuffle::Rows`] for data in memory, [`Shuffle::BLOCKS`] for other sources | see [`Shuffle`] |
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
    shuffle: Option<Shuffle>,
    schedule: Schedule,
    clip_grad_norm: Option<f64>,
    early_stopping: Option<EarlyStopping>,
    checkpoint: Option<Checkpointing>,
    on_epoch: Option<EpochCallback>,
    on_batch: Option<BatchCallback>,
    terms: LossTerms,             // the last step's loss terms; buffers reused
    step_rng: Option<ChaCha8Rng>, // randomness of `step` (sampling), from `seed`
    comm: Option<Arc<dyn Communicator>>, // the group of a distributed run
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
            .field("shuffle", &self.shuffle)
            .field("schedule", &self.schedule)
            .field("clip_grad_norm", &self.clip_grad_norm)
            .field("early_stopping", &self.early_stopping)
            .field("checkpoint", &self.checkpoint)
            .field("on_epoch", &self.on_epoch.as_ref().map(|_| "callback"))
            .field("on_batch", &self.on_batch.as_ref().map(|_| "callback"))
            .field("comm", &self.comm)
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
            shuffle: None,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            early_stopping: None,
            checkpoint: None,
            on_epoch: None,
            on_batch: None,
            terms: LossTerms::default(),
            step_rng: None,
            comm: None,
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

    /// Sets the order in which epochs visit the rows (see [`Shuffle`]). Without it, rows
    /// in memory are shuffled one by one ([`Shuffle::Rows`]) and rows read from other
    /// sources by blocks ([`Shuffle::BLOCKS`]). A run on a file and a run on the same rows
    /// in memory give the same weights, bit for bit, when they use the same setting.
    pub fn shuffle(mut self, shuffle: Shuffle) -> Self {
        self.shuffle = Some(shuffle);
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

    /// Trains data-parallel over the processes of `comm` (see [`crate::distributed`]):
    /// every process (rank) runs the same program with the same settings, model, data
    /// source and validation data; [`Trainer::fit`] and [`Trainer::resume`] then split
    /// every batch into contiguous parts, rank `r` of `R` taking rows
    /// `M r / R .. M (r + 1) / R` of a batch of `M`, and add the ranks' gradients in rank
    /// order, so every rank takes the same step and ends with the same weights and
    /// [`History`].
    ///
    /// - **Same bits for a given number of ranks**: two runs with `R` ranks are identical,
    ///   whatever the threads per rank. Runs with different `R` agree to rounding (the
    ///   gradient is summed in another order): the README states the measured bound.
    ///   With one rank the run is exactly a run without a communicator.
    /// - **Rows**: every rank shuffles the same way; a denoising run gathers and corrupts
    ///   the whole batch on every rank (the noise is then that of one process) and trains
    ///   on its part; a variational model's rank draws (and discards) the `eps` of the
    ///   rows outside its part, so its `eps` are those of one process too. Rows of a source that is not in memory are read by every rank's
    ///   read-ahead thread in full windows (shared storage), of which each uses its part.
    /// - **Penalties**: the loss and activity penalties are means over the global batch
    ///   (each rank's part weighted by its rows); KL sparsity's mean activation is that of
    ///   the global batch (one more, small exchange per step: a sum per unit); weight
    ///   penalties count once.
    /// - **Files**: only rank 0 writes checkpoints ([`Trainer::checkpoint`]), on storage
    ///   every rank can read for [`Trainer::resume`] (load it through
    ///   [`crate::distributed::agree`], so that a rank that cannot read it stops every
    ///   rank); resuming with the same number of ranks gives the bits of the uninterrupted
    ///   run. Save the final model on rank 0, its result agreed the same way.
    /// - **Errors**: a rank that fails (a row it cannot read, a checkpoint it cannot
    ///   write) stops every rank with the same [`Error::RankFailed`]; a divergence is seen
    ///   on the summed gradient by every rank, as [`Error::Diverged`]. Callbacks run on
    ///   every rank with the same records: they must decide the same on every rank.
    ///
    /// [`Trainer::step`] runs on one process only and refuses a trainer with a communicator
    /// of several ranks.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use autoencoder::distributed::{Communicator, Local};
    /// use autoencoder::{Activation, Adam, Autoencoder, Trainer};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let x = Array2::from_shape_fn((64, 8), |(i, j)| ((i * j) % 5) as f64 / 5.0);
    /// // Two ranks as two threads of this process (use `distributed::Mpi` across machines).
    /// let weights = std::thread::scope(|s| {
    ///     let ranks: Vec<_> = Local::group(2)?
    ///         .into_iter()
    ///         .map(|comm| {
    ///             let x = x.view();
    ///             s.spawn(move || -> autoencoder::Result<Vec<f64>> {
    ///                 let mut ae = Autoencoder::<f64>::builder(8)
    ///                     .latent(3, Activation::Tanh)
    ///                     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
    ///                 Trainer::new(Adam::new(1e-2))
    ///                     .epochs(3)
    ///                     .batch_size(16)
    ///                     .distributed(Arc::new(comm))
    ///                     .fit(&mut ae, x, None)?;
    ///                 Ok(ae.encode(x)?.iter().copied().collect())
    ///             })
    ///         })
    ///         .collect();
    ///     ranks
    ///         .into_iter()
    ///         .map(|h| h.join().expect("no panic"))
    ///         .collect::<autoencoder::Result<Vec<_>>>()
    /// })?;
    /// assert_eq!(weights[0], weights[1]); // every rank holds the same model
    /// # Ok(()) }
    /// ```
    pub fn distributed(mut self, comm: Arc<dyn Communicator>) -> Self {
        self.comm = Some(comm);
        self
    }

    /// The communicator of a distributed run over more than one rank.
    fn group(&self) -> Option<&Arc<dyn Communicator>> {
        self.comm.as_ref().filter(|c| c.size() > 1)
    }

    /// The optimizer, with its state.
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// Trains `model` on the rows of `train` `(n, n_in)`, reporting the reconstruction loss
    /// on `valid` `(m, n_in)` after each epoch if given.
    ///
    /// `train` is any [`RowSource`]: an `ArrayView2` or `Array2` in memory, a `.npy` file
    /// read piece by piece ([`crate::data::NpyRows`]), a list of shards
    /// ([`crate::data::NpyShards`]), or your own. Each epoch reshuffles the rows (see
    /// [`Trainer::shuffle`]) from the seeded generator (which also draws the denoising noise
    /// and a VAE's `eps`) and visits every row once, in batches of `batch_size` (the last
    /// may be smaller). The optimizer's state carries over between calls to `fit`.
    ///
    /// Rows in memory are checked before any work; rows of other sources are read ahead
    /// on a helper thread into two buffers allocated once (see [`Shuffle`] for their size)
    /// and checked as they are read, so memory does not grow with the data and a bad value
    /// stops the run when it is reached (the model keeps its last finite weights).
    ///
    /// # Errors
    /// Before any work: [`Error::InvalidHyperparameter`] for any setting out of range,
    /// [`Error::InvalidConfig`] for a loss or penalty that does not suit the model or data,
    /// [`Error::EmptyData`], [`Error::ShapeMismatch`] or [`Error::NonFiniteData`] for bad
    /// data, [`Error::TooLarge`] for read-ahead buffers over the memory limit. During
    /// training: [`Error::Diverged`] if the loss or the gradient becomes non-finite, or the
    /// validation loss does (the data overflow the element type); the source's error if a
    /// read fails; [`Error::NonFiniteData`] or [`Error::InvalidConfig`] for a row read that
    /// is not finite or not a valid target. The model then holds its last finite weights.
    pub fn fit<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: impl RowSource<T>,
        valid: Option<ArrayView2<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        self.run(model, &train, valid, None)
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
    /// state is not this optimizer's kind, or its penalties, loss, batch size, seed,
    /// noise or shuffle differ from the trainer's (the number of epochs may differ: a run
    /// can be extended).
    pub fn resume<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        checkpoint: Checkpoint<T>,
        train: impl RowSource<T>,
        valid: Option<ArrayView2<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        let (saved_model, optimizer_state, state) = checkpoint.into_parts();
        let settings = self.settings(self.shuffle_for(&train));
        if let Some(saved) = state.settings.as_ref().filter(|&s| *s != settings) {
            return Err(Error::InvalidConfig(format!(
                "the checkpoint was trained with {saved:?} but the trainer has {settings:?}: \
                 resume with the settings of the first run"
            )));
        }
        if state.history.penalty_names != self.penalty_names() {
            return Err(Error::InvalidConfig(format!(
                "the checkpoint was trained with penalties {:?} but the trainer has {:?}: \
                 resume with the settings of the first run",
                state.history.penalty_names,
                self.penalty_names()
            )));
        }
        // Check everything before touching the caller's model or the optimizer.
        self.validate(&saved_model, &train, valid)?;
        self.optimizer.load_state(optimizer_state)?;
        *model = saved_model;
        self.run(model, &train, valid, Some(state))
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
        if self.group().is_some() {
            return Err(Error::InvalidConfig(
                "Trainer::step runs on one process; a distributed trainer trains through \
                 fit or resume"
                    .into(),
            ));
        }
        self.validate(model, &target, None)?;
        model.check_data(input, "step input")?;
        if input.nrows() != target.nrows() {
            return Err(Error::ShapeMismatch {
                context: "step target",
                expected: format!("{} rows, as the input", input.nrows()),
                found: format!("{:?}", target.dim()),
            });
        }
        self.step_at_base_lr(model, input, target)
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
}
