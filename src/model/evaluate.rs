//! Losses and objectives on whole data sets (in chunks, through the training buffers), the
//! encoder's Jacobian norm, and the checks every entry point makes on its data and objective.

use ndarray::{s, Array1, Array2, ArrayView2};
use rand_chacha::ChaCha8Rng;

use crate::budget::check_elements;
use crate::data::check_rows;
use crate::data::source::{at_row, check_shape, RowSource};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::backprop::forward;
use crate::model::{Autoencoder, Workspace};
use crate::objective::loss::Loss;
use crate::objective::{self, LossTerms, Penalty};

/// Rows per chunk of the read-only evaluations: the workspace they allocate per call holds
/// this many rows at each layer.
const CHUNK: usize = 1024;

impl<T: Float> Autoencoder<T> {
    /// The reconstruction loss of `g(f(input))` against `target` (both `(n, n_in)`),
    /// averaged over all `n` rows exactly as [`Loss`] defines it, computed in chunks of
    /// 1024 rows (binary cross-entropy from logits). Pass the same array twice for a plain
    /// autoencoder.
    ///
    /// Takes `&self`: each call works in buffers of its own (one chunk's activations), so
    /// several threads can evaluate one model at once.
    ///
    /// ```
    /// use autoencoder::{Activation, Autoencoder, Loss};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let ae = Autoencoder::<f32>::builder(4)
    ///     .latent(2, Activation::Tanh)
    ///     .output(Activation::Sigmoid)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
    /// let x = Array2::from_elem((10, 4), 0.5f32);
    /// let mse = ae.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?;
    /// let per_row = ae.reconstruction_errors(x.view(), Loss::MeanSquaredError)?;
    /// assert!((per_row.mean().unwrap() - mse).abs() < 1e-12);
    /// # Ok(()) }
    /// ```
    ///
    /// Both are [`RowSource`]s: arrays in memory, or sources read piece by piece (a `.npy`
    /// file larger than memory, [`crate::data::NpyRows`]), which are read in chunks of
    /// 1024 rows into two buffers and checked as they are read; the chunks' mean losses are
    /// then weighted by their rows, which equals the in-memory result to rounding.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::EmptyData`], [`Error::NonFiniteData`] for bad data;
    /// [`Error::InvalidConfig`] if the loss does not suit the model or the targets; a
    /// source's error if a read fails.
    pub fn evaluate(
        &self,
        input: impl RowSource<T>,
        target: impl RowSource<T>,
        loss: Loss,
    ) -> Result<f64> {
        self.check_objective(loss, &[])?;
        let (Some(input), Some(target)) = (input.as_array(), target.as_array()) else {
            return self.evaluate_streamed(&input, &target, loss);
        };
        self.check_pair(input, target, loss, "evaluation")?;
        self.check_batch_size("evaluation buffers", input.nrows().min(CHUNK))?;
        let mut ws = Workspace::default();
        Ok(evaluate_in(self, &mut ws, input, target, loss, CHUNK))
    }

    /// Each row's reconstruction error alone: entry `i` is `loss` of `g(f(x_i))` against
    /// `x_i`, the value [`Loss`] defines for a batch of that one row (for
    /// [`Loss::MeanSquaredError`], `1/n_in sum_j (x_ij - x^_ij)^2`; for
    /// [`Loss::SumSquaredError`], the sum). `x` is `(n, n_in)`, the result `(n)`, in `f64`;
    /// its mean is [`Autoencoder::evaluate`]'s value (up to rounding). The anomaly score of
    /// a row: large where the model reconstructs badly. For a VAE, decodes the mean `mu`.
    ///
    /// Takes `&self` and works in buffers of its own, like [`Autoencoder::evaluate`].
    ///
    /// ```
    /// use autoencoder::{Activation, Autoencoder, Loss};
    /// use ndarray::array;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let ae = Autoencoder::<f64>::builder(2)
    ///     .latent(1, Activation::Identity)
    ///     .output(Activation::Identity)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
    /// let x = array![[0.1, 0.2], [5.0, -3.0]];
    /// let errors = ae.reconstruction_errors(x.view(), Loss::SumSquaredError)?;
    /// let recon = ae.reconstruct(x.view())?;
    /// let by_hand = (&x - &recon).mapv(|d| d * d).sum_axis(ndarray::Axis(1));
    /// assert!((errors[1] - by_hand[1]).abs() < 1e-12);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Autoencoder::evaluate`].
    pub fn reconstruction_errors(&self, x: ArrayView2<T>, loss: Loss) -> Result<Array1<f64>> {
        self.check_objective(loss, &[])?;
        self.check_pair(x, x, loss, "reconstruction_errors input")?;
        self.check_batch_size("evaluation buffers", x.nrows().min(CHUNK))?;
        let mut ws = Workspace::default();
        let mut errors = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(CHUNK) {
            let end = (start + CHUNK).min(x.nrows());
            let chunk = x.slice(s![start..end, ..]);
            forward(&self.layers, &self.arch, &mut ws, chunk, None);
            let (z, a) = ws.output(end - start);
            for i in 0..end - start {
                let row = s![i..i + 1, ..];
                errors.push(loss.value(z.slice(row), a.slice(row), chunk.slice(row)));
            }
        }
        Ok(Array1::from(errors))
    }

    /// [`Autoencoder::evaluate`] on sources not (both) in memory: chunks of 1024 rows read
    /// into two buffers, each checked, then scored as arrays.
    fn evaluate_streamed<S: RowSource<T> + ?Sized, U: RowSource<T> + ?Sized>(
        &self,
        input: &S,
        target: &U,
        loss: Loss,
    ) -> Result<f64> {
        check_shape(input, Some(self.n_in()), "evaluation")?;
        check_shape(target, Some(self.n_in()), "evaluation")?;
        let n = input.n_rows();
        if target.n_rows() != n {
            return Err(Error::ShapeMismatch {
                context: "evaluation",
                expected: format!("a target with {n} rows, as the input"),
                found: format!("({}, {})", target.n_rows(), target.width()),
            });
        }
        let chunk = n.min(1024);
        self.check_batch_size("evaluation buffers", chunk)?;
        check_elements::<T>("evaluation chunks", &[2, chunk, self.n_in()])?;
        let mut x = Array2::<T>::zeros((chunk, self.n_in()));
        let mut t = Array2::<T>::zeros((chunk, self.n_in()));
        let mut ws = Workspace::default();
        let mut total = 0.0;
        for start in (0..n).step_by(chunk) {
            let rows = chunk.min(n - start);
            let (mut xs, mut ts) = (x.slice_mut(s![..rows, ..]), t.slice_mut(s![..rows, ..]));
            input.read_rows(start, xs.view_mut())?;
            target.read_rows(start, ts.view_mut())?;
            let (xs, ts) = (xs.view(), ts.view());
            self.check_pair(xs, ts, loss, "evaluation")
                .map_err(|e| at_row(e, start))?;
            total += evaluate_in(self, &mut ws, xs, ts, loss, chunk) * rows as f64;
        }
        Ok(total / n as f64)
    }

    /// The whole training objective on a data set: reconstruction `loss` of `g(f(input))`
    /// against `target` and each penalty, as [`crate::Trainer`] computes them, averaged over
    /// the rows in chunks of 1024 (batch-dependent penalties such as KL sparsity see
    /// chunks as batches). A VAE's noise is drawn from a generator seeded with `seed`, so
    /// with [`Loss::BinaryCrossEntropySum`] and [`Penalty::gaussian_kl`]`(1.0)` the total is
    /// a one-sample estimate of the negative ELBO per example, in nats.
    ///
    /// Takes `&self`: the computation runs the training step's own code (so the values are
    /// the trainer's, bit for bit) on a private copy of the parameters, whose gradients are
    /// discarded; several threads can call it on one model at once.
    ///
    /// ```
    /// use autoencoder::{Activation, Autoencoder, Loss, Penalty};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let vae = Autoencoder::<f64>::builder(6)
    ///     .gaussian_latent(2)
    ///     .output(Activation::Sigmoid)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
    /// let x = Array2::from_elem((10, 6), 1.0);
    /// let kl = Penalty::gaussian_kl(1.0)?.into();
    /// let terms = vae.objective(x.view(), x.view(), Loss::BinaryCrossEntropySum, &[kl], 0)?;
    /// let negative_elbo = terms.total();
    /// assert!(negative_elbo > terms.reconstruction);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Autoencoder::evaluate`]; [`Error::InvalidConfig`] or
    /// [`Error::InvalidHyperparameter`] for penalties that do not suit the model.
    pub fn objective(
        &self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        seed: u64,
    ) -> Result<LossTerms> {
        self.check_objective(loss, penalties)?;
        self.check_pair(input, target, loss, "objective")?;
        self.check_batch_size("objective buffers", input.nrows().min(CHUNK))?;
        let mut scratch = self.scratch_copy();
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let (n, chunk) = (input.nrows(), CHUNK);
        let mut terms = LossTerms::default();
        let mut sum = LossTerms {
            reconstruction: 0.0,
            penalties: vec![0.0; penalties.len()],
        };
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            let rows = (end - start) as f64;
            let (x, t) = (
                input.slice(s![start..end, ..]),
                target.slice(s![start..end, ..]),
            );
            scratch.loss_and_gradient(x, t, loss, penalties, &mut terms, &mut rng);
            sum.reconstruction += terms.reconstruction * rows;
            for (s, p) in sum.penalties.iter_mut().zip(&terms.penalties) {
                *s += p * rows;
            }
        }
        sum.reconstruction /= n as f64;
        sum.penalties.iter_mut().for_each(|p| *p /= n as f64);
        Ok(sum)
    }

    /// [`Autoencoder::evaluate`] on checked data, in chunks of `chunk` rows, in the model's
    /// own workspace: the trainer's validation pass, which allocates nothing once the
    /// workspace has grown to `chunk` rows.
    pub(crate) fn evaluate_checked(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        chunk: usize,
    ) -> f64 {
        let mut ws = std::mem::take(&mut self.ws);
        let value = evaluate_in(self, &mut ws, input, target, loss, chunk);
        self.ws = ws;
        value
    }

    /// The mean over the rows of `x` `(n, n_in)` of `||J_f(x)||_F^2`, the squared Frobenius
    /// norm of the Jacobian of the code `z = f(x)` with respect to the input, through every
    /// encoder layer: `J = W_1 diag(s_1') W_2 diag(s_2') ... W_k diag(s_k')` (`W_l` as
    /// `(n_in_l, n_out_l)`), so `J` is `(n_in, n_latent)` per row.
    ///
    /// This is what the contractive penalty keeps small (for a one-layer encoder, exactly
    /// the quantity [`Penalty::contractive`] computes). Costs `n_in * sum of layer sizes *
    /// n_latent` per row: for evaluation, not for the training loop.
    ///
    /// # Errors
    /// [`Error::EmptyData`], [`Error::ShapeMismatch`] or [`Error::NonFiniteData`] for bad
    /// `x`; [`Error::InvalidConfig`] if an encoder layer is not dense.
    pub fn jacobian_norm(&self, x: ArrayView2<T>) -> Result<f64> {
        self.check_data(x, "jacobian_norm input")?;
        let widest = self
            .arch
            .layers
            .iter()
            .map(|l| l.n_out)
            .fold(self.n_in(), usize::max);
        check_elements::<T>("jacobian_norm Jacobian", &[self.n_in(), widest])?;
        let mut encoder = Vec::with_capacity(self.encoder().len());
        for (l, layer) in self.encoder().iter().enumerate() {
            encoder.push(layer.as_dense().ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "jacobian_norm needs dense encoder layers; layer {l} is not"
                ))
            })?);
        }
        let mut total = 0.0;
        for row in x.rows() {
            let mut input = row.insert_axis(ndarray::Axis(0)).to_owned(); // (1, n)
            let mut jac = Array2::<T>::eye(self.n_in()); // (n_in, n_cur)
            for layer in &encoder {
                let z = input.dot(&layer.weights()) + layer.bias();
                let a = layer.activation().apply(z.view());
                let mut scaled = jac.dot(&layer.weights()); // (n_in, n_out)
                for (mut col, (&z, &a)) in
                    scaled.columns_mut().into_iter().zip(z.iter().zip(a.iter()))
                {
                    col *= layer.activation().derivative(z, a);
                }
                jac = scaled;
                input = a;
            }
            total += jac.iter().fold(0.0, |s, &v| s + v.as_f64() * v.as_f64());
        }
        Ok(total / x.nrows() as f64)
    }

    /// The one check of an objective's settings on this model: the loss suits the output
    /// layer and every penalty suits the architecture. Allocates nothing.
    pub(crate) fn check_objective(&self, loss: Loss, penalties: &[Penalty]) -> Result<()> {
        objective::validate(&self.arch, loss, penalties)
    }

    /// Checks an input/target pair for an objective: both non-empty, `n_in` wide and finite,
    /// as many rows, and targets the loss accepts; `what` names the data in errors.
    pub(crate) fn check_pair(
        &self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        what: &'static str,
    ) -> Result<()> {
        self.check_data(input, what)?;
        self.check_targets(target, loss, what)?;
        if input.nrows() != target.nrows() {
            return Err(Error::ShapeMismatch {
                context: what,
                expected: format!("a target with {} rows, as the input", input.nrows()),
                found: format!("{:?}", target.dim()),
            });
        }
        Ok(())
    }

    /// Checks data used as targets: as [`Autoencoder::check_data`], and in the loss's range.
    pub(crate) fn check_targets(
        &self,
        x: ArrayView2<T>,
        loss: Loss,
        what: &'static str,
    ) -> Result<()> {
        self.check_data(x, what)?;
        loss.validate_targets(x, what)
    }

    /// Checks that `x` is non-empty, `n_in` wide and finite.
    pub(crate) fn check_data(&self, x: ArrayView2<T>, context: &'static str) -> Result<()> {
        check_rows(x, Some(self.n_in()), context)
    }
}

/// The mean loss of `model` on checked data, in chunks of `chunk` rows, through `ws`.
fn evaluate_in<T: Float>(
    model: &Autoencoder<T>,
    ws: &mut Workspace<T>,
    input: ArrayView2<T>,
    target: ArrayView2<T>,
    loss: Loss,
    chunk: usize,
) -> f64 {
    let chunk = chunk.min(input.nrows()).max(1);
    let mut total = 0.0;
    for start in (0..input.nrows()).step_by(chunk) {
        let end = (start + chunk).min(input.nrows());
        let rows = end - start;
        forward(
            &model.layers,
            &model.arch,
            ws,
            input.slice(s![start..end, ..]),
            None,
        );
        let (z, a) = ws.output(rows);
        total += loss.value(z, a, target.slice(s![start..end, ..])) * rows as f64;
    }
    total / input.nrows() as f64
}
