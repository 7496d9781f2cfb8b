//! The epoch loop behind `Trainer::fit` and `Trainer::resume`: the run state to start
//! from, one epoch's batches, validation with the best-weights and early-stopping
//! bookkeeping, and checkpoints.

use std::sync::Arc;
use std::time::Instant;

use ndarray::{s, Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::compute::{for_each_block, row_blocks_mut, slice_blocks, zip_blocks};
use crate::data::noise::Noise;
use crate::data::source::{at_row, streamed_value_range, RowSource};
use crate::data::{check_finite, value_range};
use crate::distributed::{agree, Exchange};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::checkpoint::save_checkpoint;
use crate::model::Autoencoder;
use crate::objective::Penalty;
use crate::optim::Optimizer;
use crate::train::feed::{Feed, RowCheck, Window};
use crate::train::history::{BatchProgress, EpochRecord, History, Restore, StopReason};
use crate::train::shuffle::{Layout, Shuffle};
use crate::train::state::RunState;
use crate::train::step::{fail_step, Position};
use crate::train::Trainer;

/// What the epoch loop allocates once per run and reuses in every epoch.
struct Workspace<T> {
    /// Rows of the training data.
    n: usize,
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
    /// A distributed run's per-step exchange (`None` on one process).
    exchange: Option<Exchange>,
}

impl<T: Float> Workspace<T> {
    /// Copies rows `rows` of `from` into rows `at..` of `target`, spread over the threads
    /// for large batches.
    fn gather(&mut self, from: ArrayView2<T>, rows: &[usize], at: usize) {
        let m = rows.len();
        let elements = m * self.target.ncols();
        let blocks = row_blocks_mut(self.target.slice_mut(s![at..at + m, ..]));
        for_each_block(
            elements,
            zip_blocks(blocks, slice_blocks(rows)),
            |(mut dst, rows)| {
                for (r, &i) in rows.iter().enumerate() {
                    dst.row_mut(r).assign(&from.row(i));
                }
                0.0
            },
        );
    }

    /// When denoising, writes the corrupted copy of the batch's `m` rows into `noisy`,
    /// drawn from `rng`.
    fn corrupt(&mut self, m: usize, noise: Option<Noise>, rng: &mut ChaCha8Rng) {
        if let Some(noise) = noise {
            let target = self.target.slice(s![..m, ..]);
            noise.apply(target, self.noisy.slice_mut(s![..m, ..]), self.range, rng);
        }
    }
}

/// Ends the reader thread when dropped, however the run ends.
struct Quit<'a, T: Float>(&'a Feed<T>);

impl<T: Float> Drop for Quit<'_, T> {
    fn drop(&mut self) {
        self.0.quit();
    }
}

/// Where an epoch's batches come from: straight from an array in memory (row shuffle),
/// or from the read-ahead thread's windows.
#[derive(Clone, Copy)]
enum Rows<'a, T> {
    Memory(ArrayView2<'a, T>),
    Feed(&'a Feed<T>),
}

impl<O> Trainer<O> {
    /// The one training loop, from the start or from `resumed`.
    pub(super) fn run<T: Float, S: RowSource<T> + ?Sized>(
        &mut self,
        model: &mut Autoencoder<T>,
        train: &S,
        valid: Option<ArrayView2<T>>,
        resumed: Option<RunState<T>>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        let setup = (|| {
            let shuffle = self.validate(model, train, valid)?;
            let work = self.workspace(model, train)?;
            let state = self.start(resumed, train, shuffle)?;
            Ok((shuffle, work, state))
        })();
        // In a distributed run, every rank starts or none does.
        let (shuffle, mut work, state) = match self.group() {
            Some(comm) => agree(&**comm, setup)?,
            None => setup?,
        };
        if let (Shuffle::Rows, Some(array)) = (shuffle, train.as_array()) {
            return self.run_epochs(model, Rows::Memory(array), valid, &mut work, state);
        }
        // Rows read piece by piece: a reader thread fills windows while the step computes.
        let layout = Layout::new(shuffle, train.n_rows(), work.batch_size);
        let feed = Feed::new(layout, train.width())?;
        let loss = self.loss;
        let in_memory = train.as_array().is_some(); // checked as a whole already
        let check = move |rows: ArrayView2<T>, first: usize| -> Result<()> {
            if in_memory {
                return Ok(());
            }
            check_finite(rows, "training data")
                .map_err(|e| at_row(e, first))
                .and_then(|()| loss.validate_targets(rows, "training data"))
        };
        let check: &RowCheck<'_, T> = &check;
        std::thread::scope(|scope| {
            let feed = &feed;
            scope.spawn(move || feed.read(train, check));
            let _quit = Quit(feed);
            feed.wait_ready();
            self.run_epochs(model, Rows::Feed(feed), valid, &mut work, state)
        })
    }

    /// Runs the epochs from `state` on, with checkpoints.
    fn run_epochs<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        rows: Rows<'_, T>,
        valid: Option<ArrayView2<T>>,
        work: &mut Workspace<T>,
        mut state: RunState<T>,
    ) -> Result<History>
    where
        O: Optimizer<T>,
    {
        while state.epoch < self.epochs {
            let stop = self.epoch(model, rows, valid, work, &mut state)?;
            self.checkpoint_if_due(model, &state, stop)?;
            if stop.is_some() {
                break;
            }
        }
        Ok(state.history)
    }

    /// The buffers of a run on `train` `(n, n_in)`.
    ///
    /// # Errors
    /// As `train`'s reads, when salt-and-pepper noise needs the range of data that are not
    /// in memory (one pass over them).
    fn workspace<T: Float, S: RowSource<T> + ?Sized>(
        &self,
        model: &Autoencoder<T>,
        train: &S,
    ) -> Result<Workspace<T>> {
        let (n, n_in) = (train.n_rows(), train.width());
        let batch_size = self.batch_size.min(n);
        // Only salt-and-pepper noise uses the range of the data.
        let range = match (self.noise, train.as_array()) {
            (Some(Noise::SaltAndPepper { .. }), Some(array)) => value_range(array),
            (Some(Noise::SaltAndPepper { .. }), None) => {
                // One pass in chunks of about 2^20 values.
                let rows = (1 << 20) / n_in.max(1);
                let mut chunk = Array2::<T>::zeros((rows.clamp(1, n), n_in));
                streamed_value_range(train, chunk.view_mut())?
            }
            _ => (T::zero(), T::zero()),
        };
        let exchange = match self.group() {
            Some(comm) => Some(Exchange::new::<T>(
                Arc::clone(comm),
                model.n_params(),
                1 + self.penalties.len(),
                model.layers().iter().map(|l| l.n_out()).max().unwrap_or(0),
            )?),
            None => None,
        };
        Ok(Workspace {
            n,
            batch_size,
            n_batches: n.div_ceil(batch_size),
            target: Array2::<T>::zeros((batch_size, n_in)),
            noisy: Array2::<T>::zeros(if self.noise.is_some() {
                (batch_size, n_in)
            } else {
                (0, n_in)
            }),
            range,
            sum_recon: 0.0,
            sum_penalties: vec![0.0; self.penalties.len()],
            snapshot: model.clone(),
            penalties: self.penalties.clone(),
            exchange,
        })
    }

    /// The state the run starts from: `resumed`, or epoch 0 with the generator seeded from
    /// the trainer's seed and the rows in order. It records this trainer's settings, which
    /// the run's checkpoints save.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `resumed` comes from a run on another number of rows.
    fn start<T: Float, S: RowSource<T> + ?Sized>(
        &self,
        resumed: Option<RunState<T>>,
        train: &S,
        shuffle: Shuffle,
    ) -> Result<RunState<T>> {
        let n = train.n_rows();
        let units = Layout::new(shuffle, n, self.batch_size.min(n)).n_units();
        let mut state = resumed.unwrap_or_else(|| RunState {
            settings: None,
            epoch: 0,
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            order: (0..units).collect(),
            history: History {
                epochs: Vec::new(),
                penalty_names: self.penalty_names(),
                best_epoch: None,
                stop: StopReason::Completed,
            },
            best: None,
            since_best: 0,
        });
        state.settings = Some(self.settings(shuffle));
        state.history.stop = StopReason::Completed;
        if state.order.len() != units {
            let what = match shuffle {
                Shuffle::Rows => format!("{} rows", state.order.len()),
                _ => format!("{} blocks of rows", state.order.len()),
            };
            return Err(Error::ShapeMismatch {
                context: "resumed training data",
                expected: format!("{what}, as in the checkpointed run"),
                found: format!("({n}, {}), {units} of them", train.width()),
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
        train: Rows<'_, T>,
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
        let read_wait_seconds = match train {
            Rows::Feed(feed) => feed.waited(),
            Rows::Memory(_) => 0.0,
        };
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
        let n = work.n;
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
            read_wait_seconds,
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
        train: Rows<'_, T>,
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
        let mut window: Option<Window<T>> = None;
        if let Rows::Feed(feed) = train {
            let seed = if feed.mixes() {
                state.rng.next_u64()
            } else {
                0
            };
            feed.start_epoch(&mut state.order, seed);
        }
        work.sum_recon = 0.0;
        work.sum_penalties.fill(0.0);
        for batch in 0..work.n_batches {
            let first = batch * work.batch_size;
            let m = work.batch_size.min(work.n - first);
            // Rows `keep` of the batch are gathered into `target`; this rank trains on
            // rows `mine` of `target`. One process: all of them. A distributed rank: its
            // part, or, when denoising, every row, so that the noise draws (and the
            // generator's state) are those of one process.
            let (keep, mine) = match work.exchange.as_mut() {
                None => (0..m, 0..m),
                Some(ex) => {
                    let part = ex.batch(m);
                    match self.noise {
                        Some(_) => (0..m, part),
                        None => (part.clone(), 0..part.len()),
                    }
                }
            };
            match train {
                Rows::Memory(x) => {
                    work.gather(x, &state.order[first + keep.start..first + keep.end], 0)
                }
                Rows::Feed(feed) => {
                    let loaded = feed.next_rows(&mut window, m, |from, rows, at| {
                        let (lo, hi) = (keep.start.max(at), keep.end.min(at + rows.len()));
                        if lo < hi {
                            work.gather(from, &rows[lo - at..hi - at], lo - keep.start);
                        }
                    });
                    if let Err(e) = loaded {
                        feed.end_epoch(&mut window, &mut state.order);
                        return Err(match work.exchange.as_mut() {
                            // Every rank is in this step's exchanges: fail them all.
                            Some(ex) => fail_step(model, &mut self.terms, &work.penalties, ex, e),
                            None => e,
                        });
                    }
                }
            }
            work.corrupt(keep.len(), self.noise, &mut state.rng);
            let target = work.target.slice(s![mine.clone(), ..]);
            let input = match self.noise {
                Some(_) => work.noisy.slice(s![mine, ..]),
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
                work.exchange.as_mut(),
            ) {
                if !model.params_are_finite() {
                    model.copy_params_from(&work.snapshot);
                }
                if let Rows::Feed(feed) = train {
                    feed.end_epoch(&mut window, &mut state.order);
                }
                return Err(e);
            }
            self.tally(work, epoch, batch, m, start);
        }
        if let Rows::Feed(feed) = train {
            feed.end_epoch(&mut window, &mut state.order);
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
            if last || state.epoch.is_multiple_of(c.every) {
                let Some(comm) = self.group() else {
                    return save_checkpoint(&c.path, model, &self.optimizer.state(), state);
                };
                // Rank 0 writes; every rank learns whether it could.
                let saved = match comm.rank() {
                    0 => save_checkpoint(&c.path, model, &self.optimizer.state(), state),
                    _ => Ok(()),
                };
                agree(&**comm, saved)?;
            }
        }
        Ok(())
    }
}
