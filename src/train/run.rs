//! The epoch loop behind `Trainer::fit` and `Trainer::resume`: the run state to start
//! from, one epoch's batches, validation with the best-weights and early-stopping
//! bookkeeping, and checkpoints.

use std::time::Instant;

use ndarray::{s, Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::compute::{for_each_block, row_blocks_mut, slice_blocks, zip_blocks};
use crate::data::noise::Noise;
use crate::data::value_range;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::checkpoint::save_checkpoint;
use crate::model::Autoencoder;
use crate::objective::Penalty;
use crate::optim::Optimizer;
use crate::train::history::{BatchProgress, EpochRecord, History, Restore, StopReason};
use crate::train::state::RunState;
use crate::train::step::Position;
use crate::train::Trainer;

/// What the epoch loop allocates once per run and reuses in every epoch.
struct Workspace<T> {
    /// Rows per batch: the trainer's `batch_size`, at most the number of rows.
    batch_size: usize,
    /// Batches per epoch (the last may be smaller).
    n_batches: usize,
    /// `(batch_size, n_in)`: the batch's clean rows, the target.
    target: Array2<T>,
    /// `(batch_size, n_in)` when denoising, else `(0, n_in)`: the corrupted input.
    noisy: Array2<T>,
    /// Smallest and largest value of the training data, for the noise.
    range: (T, T),
    /// The reconstruction loss, summed over the epoch's samples so far.
    sum_recon: f64,
    /// Each penalty's part of the objective, summed over the epoch's samples so far.
    sum_penalties: Vec<f64>,
    /// The weights at the start of the epoch: the last known to be finite.
    snapshot: Autoencoder<T>,
    /// The penalties as they apply in this epoch (warm-ups).
    penalties: Vec<Penalty>,
}

impl<T: Float> Workspace<T> {
    /// Copies rows `rows` of `train` into `target` (spread over the threads for large
    /// batches) and, when denoising, their corrupted copy into `noisy`, drawn from `rng`.
    fn load_batch(
        &mut self,
        train: ArrayView2<T>,
        rows: &[usize],
        noise: Option<Noise>,
        rng: &mut ChaCha8Rng,
    ) {
        let m = rows.len();
        let elements = m * self.target.ncols();
        let blocks = row_blocks_mut(self.target.slice_mut(s![..m, ..]));
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
        if let Some(noise) = noise {
            let target = self.target.slice(s![..m, ..]);
            noise.apply(target, self.noisy.slice_mut(s![..m, ..]), self.range, rng);
        }
    }
}

impl<O> Trainer<O> {
    /// The one training loop, from the start or from `resumed`.
    pub(super) fn run<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: ArrayView2<T>,
        valid: Option<ArrayView2<T>>,
        resumed: Option<RunState<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        self.validate(model, train, valid)?;
        let mut work = self.workspace(model, train);
        let mut state = self.start(resumed, train)?;
        while state.epoch < self.epochs {
            let stop = self.epoch(model, train, valid, &mut work, &mut state)?;
            self.checkpoint_if_due(model, &state, stop)?;
            if stop.is_some() {
                break;
            }
        }
        Ok(state.history)
    }

    /// The buffers of a run on `train` `(n, n_in)`.
    fn workspace<T: Float>(&self, model: &Autoencoder<T>, train: ArrayView2<T>) -> Workspace<T> {
        let (n, n_in) = train.dim();
        let batch_size = self.batch_size.min(n);
        Workspace {
            batch_size,
            n_batches: n.div_ceil(batch_size),
            target: Array2::<T>::zeros((batch_size, n_in)),
            noisy: Array2::<T>::zeros(if self.noise.is_some() {
                (batch_size, n_in)
            } else {
                (0, n_in)
            }),
            range: value_range(train),
            sum_recon: 0.0,
            sum_penalties: vec![0.0; self.penalties.len()],
            snapshot: model.clone(),
            penalties: self.penalties.clone(),
        }
    }

    /// The state the run starts from: `resumed`, or epoch 0 with the generator seeded from
    /// the trainer's seed and the rows in order. It records this trainer's settings, which
    /// the run's checkpoints save.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `resumed` comes from a run on another number of rows.
    fn start<T: Float>(
        &self,
        resumed: Option<RunState<T>>,
        train: ArrayView2<T>,
    ) -> Result<RunState<T>> {
        let n = train.nrows();
        let mut state = resumed.unwrap_or_else(|| RunState {
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
        state.settings = Some(self.settings());
        state.history.stop = StopReason::Completed;
        if state.order.len() != n {
            return Err(Error::ShapeMismatch {
                context: "resumed training data",
                expected: format!("{} rows, as in the checkpointed run", state.order.len()),
                found: format!("{:?}", train.dim()),
            });
        }
        Ok(state)
    }

    /// Runs epoch `state.epoch`: its batches, validation, the best-weights and
    /// early-stopping bookkeeping; then moves `state` to the next epoch. Returns why the
    /// run stops after this epoch, if it does.
    ///
    /// # Errors
    /// [`Error::Diverged`] if a step fails or the weights are no longer finite; the model
    /// then holds the weights of the start of the epoch. [`Error::Diverged`] with `what`
    /// `"validation loss"` if the validation loss is NaN or infinite; the model then holds
    /// the epoch's (finite) weights, and the epoch is not recorded.
    fn epoch<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: ArrayView2<T>,
        valid: Option<ArrayView2<T>>,
        work: &mut Workspace<T>,
        state: &mut RunState<T>,
    ) -> Result<Option<StopReason>>
    where
        O: Optimizer<T>,
    {
        let epoch = state.epoch;
        let lr = self.schedule.lr_at(self.optimizer.lr(), epoch, self.epochs);
        let seconds = self.train_epoch(model, train, work, state, lr)?;
        if !model.params_are_finite() {
            model.copy_params_from(&work.snapshot);
            return Err(Error::Diverged {
                epoch,
                batch: work.n_batches - 1,
                what: "weights",
                value: f64::NAN,
            });
        }
        let valid_loss = match valid {
            Some(v) => Some(model.evaluate_checked(v, v, self.loss, work.batch_size)),
            None => None,
        };
        // A non-finite validation loss (the loss overflowed on the validation data, or the
        // outputs did) is never an epoch's result: it would count as the best epoch (NaN
        // compares false) and a checkpoint could not hold it.
        if let Some(value) = valid_loss.filter(|v| !v.is_finite()) {
            return Err(Error::Diverged {
                epoch,
                batch: work.n_batches - 1,
                what: "validation loss",
                value,
            });
        }
        let n = train.nrows();
        let (sum_recon, sum_penalties) = (work.sum_recon, &work.sum_penalties);
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
        self.track_best(model, state, record);
        let stop = self.stop_reason(model, state);
        state.history.stop = stop.unwrap_or(StopReason::Completed);
        state.epoch += 1;
        Ok(stop)
    }

    /// Trains on every row once, in batches of the reshuffled row order, at rate `lr`.
    /// Returns the seconds taken; the epoch's loss sums are left in `work`.
    ///
    /// # Errors
    /// As the step; the model then keeps its last finite weights.
    fn train_epoch<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: ArrayView2<T>,
        work: &mut Workspace<T>,
        state: &mut RunState<T>,
        lr: f64,
    ) -> Result<f64>
    where
        O: Optimizer<T>,
    {
        let epoch = state.epoch;
        work.snapshot.copy_params_from(model);
        for (now, given) in work.penalties.iter_mut().zip(&self.penalties) {
            *now = given.at_epoch(epoch);
        }
        let start = Instant::now();
        state.order.shuffle(&mut state.rng);
        work.sum_recon = 0.0;
        work.sum_penalties.fill(0.0);
        for (batch, rows) in state.order.chunks(work.batch_size).enumerate() {
            let m = rows.len();
            work.load_batch(train, rows, self.noise, &mut state.rng);
            let target = work.target.slice(s![..m, ..]);
            let input = match self.noise {
                Some(_) => work.noisy.slice(s![..m, ..]),
                None => target,
            };
            let at = Position { lr, epoch, batch };
            if let Err(e) = self.step_checked(
                model,
                input,
                target,
                Some(&work.penalties),
                &mut state.rng,
                at,
            ) {
                if !model.params_are_finite() {
                    model.copy_params_from(&work.snapshot);
                }
                return Err(e);
            }
            self.tally(work, epoch, batch, m, start);
        }
        Ok(start.elapsed().as_secs_f64())
    }

    /// Adds the last step's loss terms, on batch `batch` of `m` rows, to the epoch's sums,
    /// and tells the batch callback how far the epoch has come.
    fn tally<T: Float>(
        &mut self,
        work: &mut Workspace<T>,
        epoch: usize,
        batch: usize,
        m: usize,
        start: Instant,
    ) {
        let terms = &self.terms;
        work.sum_recon += terms.reconstruction * m as f64;
        for (s, p) in work.sum_penalties.iter_mut().zip(&terms.penalties) {
            *s += p * m as f64;
        }
        if let Some(f) = self.on_batch.as_mut() {
            let samples = batch * work.batch_size + m;
            let loss = (work.sum_recon + work.sum_penalties.iter().sum::<f64>()) / samples as f64;
            let seconds = start.elapsed().as_secs_f64();
            f(&BatchProgress {
                epoch,
                batch: batch + 1,
                n_batches: work.n_batches,
                samples,
                loss,
                seconds,
            });
        }
    }

    /// Adds `record` to the history and keeps the best weights: an epoch becomes the best
    /// if its monitored loss is below the best so far by more than early stopping's
    /// `min_delta` (0 without early stopping).
    fn track_best<T: Float>(
        &self,
        model: &Autoencoder<T>,
        state: &mut RunState<T>,
        record: EpochRecord,
    ) {
        let epoch = record.epoch;
        let monitored = History::monitored(&record);
        state.history.epochs.push(record);

        let min_delta = self.early_stopping.map_or(0.0, |e| e.min_delta);
        // Written as "improves", so that a NaN never counts as the best.
        match &mut state.best {
            Some((best_loss, best_epoch, best_model)) if monitored < *best_loss - min_delta => {
                (*best_loss, *best_epoch) = (monitored, epoch);
                best_model.copy_params_from(model);
                state.since_best = 0;
            }
            Some(_) => state.since_best += 1,
            None => state.best = Some((monitored, epoch, model.clone())),
        }
        state.history.best_epoch = state.best.as_ref().map(|b| b.1);
    }

    /// Why the run stops after the epoch just recorded, if it does: the epoch callback
    /// asked to, or early stopping ran out of patience (and then restores the best
    /// weights if it is set to).
    fn stop_reason<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        state: &RunState<T>,
    ) -> Option<StopReason> {
        let mut stop = None;
        if let Some(f) = self.on_epoch.as_mut() {
            if f(state.history.epochs.last().expect("recorded")).is_break() {
                stop = Some(StopReason::Callback);
            }
        }
        if let (None, Some(es)) = (stop, self.early_stopping) {
            if state.since_best >= es.patience {
                stop = Some(StopReason::EarlyStopped);
                if let (Restore::Best, Some((_, _, best_model))) = (es.restore, &state.best) {
                    model.copy_params_from(best_model);
                }
            }
        }
        stop
    }

    /// Saves a checkpoint after every `every`-th epoch and after the last epoch of the
    /// run, whatever ended it (`stop`, or all epochs done).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written; [`Error::InvalidConfig`] if the state
    /// holds a NaN or infinite value (then nothing is written: the file could not load).
    fn checkpoint_if_due<T: Float>(
        &self,
        model: &Autoencoder<T>,
        state: &RunState<T>,
        stop: Option<StopReason>,
    ) -> Result<()>
    where
        O: Optimizer<T>,
    {
        if let Some(c) = &self.checkpoint {
            let last = stop.is_some() || state.epoch == self.epochs;
            if last || state.epoch % c.every == 0 {
                save_checkpoint(&c.path, model, &self.optimizer.state(), state)?;
            }
        }
        Ok(())
    }
}
