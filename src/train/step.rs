//! The training step shared by `Trainer::step` and the epoch loop: the gradient, the
//! divergence checks, gradient clipping, one optimizer update.

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::compute::{lane_sum_slice, simd_dispatch};
use crate::distributed::{agree, Exchange};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::Autoencoder;
use crate::objective::activity::BatchSums;
use crate::objective::{LossTerms, Penalty};
use crate::optim::Optimizer;
use crate::train::Trainer;

/// Where a step runs: its learning rate, and the epoch and batch that errors report.
#[derive(Debug, Clone, Copy)]
pub(super) struct Position {
    pub(super) lr: f64,
    pub(super) epoch: usize,
    pub(super) batch: usize,
}

impl<O> Trainer<O> {
    /// The body of [`Trainer::step`], on checked inputs: one step at the optimizer's base
    /// learning rate with every penalty at full weight, drawing from the generator of
    /// `step` (seeded from the trainer's seed at the first call). Returns the objective on
    /// the batch, before the update.
    pub(super) fn step_at_base_lr<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
    ) -> Result<f64>
    where
        O: Optimizer<T>,
    {
        let mut rng = self
            .step_rng
            .take()
            .unwrap_or_else(|| ChaCha8Rng::seed_from_u64(self.seed));
        let at = Position {
            lr: self.optimizer.lr(),
            epoch: 0,
            batch: 0,
        };
        let result = self.step_checked(model, input, target, None, &mut rng, at, None);
        self.step_rng = Some(rng);
        result.map(|()| self.terms.total())
    }

    /// The training step shared by [`Trainer::step`] and [`Trainer::fit`], on checked
    /// inputs: gradient of the objective (`penalties` as they apply now, or the given ones
    /// if `None`), divergence checks, clipping, one optimizer update at rate `at.lr`, tied
    /// weights re-synced. Leaves the loss terms in `self.terms`. Allocates nothing once the
    /// model's workspace and the optimizer's state exist for this batch size.
    ///
    /// With `exchange` (a distributed run), `input` and `target` are this rank's part of
    /// the batch; the gradient and loss terms are summed across ranks before the checks.
    #[allow(clippy::too_many_arguments)] // the step's inputs, each used once
    pub(super) fn step_checked<T: Float>(
        &mut self,
        model: &mut Autoencoder<T>,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        penalties: Option<&[Penalty]>,
        rng: &mut ChaCha8Rng,
        at: Position,
        exchange: Option<&mut Exchange>,
    ) -> Result<()>
    where
        O: Optimizer<T>,
    {
        let penalties = penalties.unwrap_or(&self.penalties);
        match exchange {
            None => {
                model.loss_and_gradient(input, target, self.loss, penalties, &mut self.terms, rng)
            }
            Some(ex) => {
                // The draws of the rows before this rank's part, then its own, then those
                // after it: the generator goes as in one process.
                let (rows, part) = ex.part();
                model.skip_draws(part.start, rng);
                if input.nrows() > 0 {
                    let terms = &mut self.terms;
                    let global = Some(&mut *ex as &mut dyn BatchSums);
                    model.data_gradient(input, target, self.loss, penalties, terms, rng, global);
                    model.fold_tied_grads();
                } else {
                    model.idle_batch_sums(penalties, ex);
                    model.zero_grads();
                    self.terms.reset(penalties.len());
                }
                model.skip_draws(rows - part.end, rng);
                sum_across_ranks(model, &mut self.terms, ex, Ok(()))?;
                model.add_weight_penalties(penalties, &mut self.terms.penalties);
            }
        }
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
}

/// A distributed step on a rank that failed before its gradient (`error`): it makes the
/// step's exchanges with its status set, so that every rank stops with the same error,
/// which it returns.
pub(super) fn fail_step<T: Float>(
    model: &mut Autoencoder<T>,
    terms: &mut LossTerms,
    penalties: &[Penalty],
    ex: &mut Exchange,
    error: Error,
) -> Error {
    model.idle_batch_sums(penalties, ex);
    match sum_across_ranks(model, terms, ex, Err(error)) {
        Err(e) => e,
        Ok(()) => unreachable!("a failed rank fails the exchange"),
    }
}

/// The distributed part of a step: sends this rank's gradient and loss terms, weighted by
/// its share of the batch, with its status (`local`), and replaces them with the
/// rank-order sums over every rank. If `local` or any rank failed, every rank returns the
/// same error ([`crate::distributed`]) and the gradients are left as they were.
pub(super) fn sum_across_ranks<T: Float>(
    model: &mut Autoencoder<T>,
    terms: &mut LossTerms,
    ex: &mut Exchange,
    local: Result<()>,
) -> Result<()> {
    ex.begin(local.is_err(), terms.reconstruction, &terms.penalties);
    if local.is_ok() {
        model.visit_params(|_, _, grad, _| ex.put(grad));
    }
    if ex.gather(1 + terms.penalties.len()) {
        return agree(ex.comm(), local);
    }
    ex.terms(&mut terms.reconstruction, &mut terms.penalties);
    model.visit_params(|_, _, grad, _| ex.take(grad));
    Ok(())
}

/// Global L2 norm of all parameter gradients.
fn grad_norm<T: Float>(model: &mut Autoencoder<T>) -> f64 {
    let mut sum = 0.0;
    model.visit_params(|_, _, grad, _| sum += sum_squares_wide(grad).as_f64());
    sum.sqrt()
}

simd_dispatch! {
    /// [`sum_squares`], for AVX-512F or AVX2 when available.
    fn sum_squares_wide / sum_squares<T>(x: &[T]) -> T
    where T: Float
}

/// `sum x^2`, in the compute module's fixed-order lanes (vectorizes, and the result does
/// not depend on the instruction set).
#[inline(always)]
fn sum_squares<T: Float>(x: &[T]) -> T {
    lane_sum_slice(x, |g| g * g)
}

/// Multiplies every gradient by `factor`.
fn scale_grads<T: Float>(model: &mut Autoencoder<T>, factor: T) {
    model.visit_params(|_, _, grad, _| grad.iter_mut().for_each(|g| *g *= factor));
}
