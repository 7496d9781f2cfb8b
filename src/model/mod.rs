//! `Autoencoder`: an encoder stack and a decoder stack of dense layers, and its builder.

use ndarray::{s, Array2, ArrayView2, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::{check_finite, check_width};
use crate::objective::penalty::Penalty;
use crate::{Activation, Dense, Error, Float, Init, Loss, Result};

/// An autoencoder: encoder `z = f(x)` (one or more dense layers ending in the code layer)
/// and decoder `x^ = g(z)` (dense layers ending in an output layer of the input's width).
///
/// Data are row-major: `x` is `(batch, n_in)`, codes `(batch, n_latent)`.
///
/// ```
/// use autoencoder::{Activation, Autoencoder};
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// use rand_chacha::ChaCha8Rng;
/// # fn main() -> autoencoder::Result<()> {
/// let mut rng = ChaCha8Rng::seed_from_u64(7);
/// let ae = Autoencoder::<f64>::builder(6)
///     .hidden(4, Activation::Tanh)
///     .latent(2, Activation::Identity)
///     .output(Activation::Sigmoid)
///     .build(&mut rng)?;
/// assert_eq!(ae.sizes(), vec![6, 4, 2, 4, 6]); // the decoder mirrors the encoder
/// let x = Array2::from_elem((3, 6), 0.5);
/// let codes = ae.encode(x.view())?;
/// assert_eq!(codes.dim(), (3, 2));
/// assert_eq!(ae.decode(codes.view())?, ae.reconstruct(x.view())?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Autoencoder<T> {
    layers: Vec<Dense<T>>,
    n_encoder: usize, // layers[..n_encoder] is the encoder; the code is layers[n_encoder - 1]'s output
    latent: Latent,
    tying: Tying,
    #[serde(skip)]
    ws: Workspace<T>,
}

/// What the code layer outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Latent {
    /// The code is the code layer's output (a plain autoencoder).
    Deterministic,
    /// Variational autoencoder (Kingma & Welling 2014): the code layer outputs `2k` values,
    /// a mean `mu` (columns `..k`) and a log-variance `log sigma^2` (columns `k..`); in
    /// training the decoder receives `z = mu + sigma * eps`, `eps ~ N(0, I)` drawn from the
    /// trainer's seeded generator (the reparameterization trick), and at inference `z = mu`.
    /// Pair it with [`Penalty::gaussian_kl`].
    Gaussian,
}

/// Whether decoder layers share weights with their mirrored encoder layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tying {
    /// Every layer has its own weights.
    Untied,
    /// Decoder layer `i` (counted from the code) uses the transpose of encoder layer
    /// `n_encoder - 1 - i`'s weights, with its own bias. Gradients from both uses are summed
    /// into the one shared matrix, so the weight parameters halve.
    Tied,
}

/// Per-batch buffers, allocated once per batch size (llm.c's activations): for layer `l`,
/// `z[l]`, `a[l]` and `d[l]` are `(rows, n_out_l)`; `d[l]` holds `dL/da_l`, then `dL/dz_l`.
/// For a Gaussian latent, `eps`, `sample` and `d_sample` are `(rows, k)`: the noise, the
/// decoder's input `z = mu + sigma eps`, and `dL/dz`.
#[derive(Debug, Clone, Default)]
struct Workspace<T> {
    rows: usize,
    z: Vec<Array2<T>>,
    a: Vec<Array2<T>>,
    d: Vec<Array2<T>>,
    eps: Array2<T>,
    sample: Array2<T>,
    d_sample: Array2<T>,
}

/// The value of the training objective on one batch: reconstruction loss plus each
/// penalty's weighted value (already multiplied by its `lambda` or `beta`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossTerms {
    /// The reconstruction loss.
    pub reconstruction: f64,
    /// One value per penalty, in the order the penalties were given.
    pub penalties: Vec<f64>,
}

impl LossTerms {
    /// `reconstruction + sum of penalties`.
    pub fn total(&self) -> f64 {
        self.reconstruction + self.penalties.iter().sum::<f64>()
    }
}

impl<T: Float> Autoencoder<T> {
    /// Starts a builder for inputs of width `n_in`.
    pub fn builder(n_in: usize) -> AutoencoderBuilder<T> {
        AutoencoderBuilder::new(n_in)
    }

    /// An autoencoder from explicit layers (deterministic code, untied weights).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if either stack is empty, consecutive layers do not chain
    /// (`n_out` of one = `n_in` of the next), or the decoder's output width differs from the
    /// encoder's input width.
    pub fn from_layers(encoder: Vec<Dense<T>>, decoder: Vec<Dense<T>>) -> Result<Self> {
        Self::assemble(encoder, decoder, Latent::Deterministic, Tying::Untied)
    }

    /// An autoencoder from explicit layers with the given latent kind and tying. For
    /// [`Latent::Gaussian`] the code layer has `2k` outputs and the decoder `k` inputs; for
    /// [`Tying::Tied`] each decoder layer's weights are overwritten by the transpose of its
    /// mirrored encoder layer's, so their shapes must mirror.
    ///
    /// # Errors
    /// As [`Autoencoder::from_layers`]; [`Error::InvalidConfig`] for a Gaussian code layer
    /// that is not an identity layer of even width, or tied layers that do not mirror.
    pub fn assemble(
        encoder: Vec<Dense<T>>,
        decoder: Vec<Dense<T>>,
        latent: Latent,
        tying: Tying,
    ) -> Result<Self> {
        let n_encoder = encoder.len();
        let mut layers = encoder;
        layers.extend(decoder);
        if n_encoder == 0 || layers.len() == n_encoder {
            return Err(Error::ShapeMismatch {
                context: "Autoencoder::from_layers",
                expected: "at least one encoder and one decoder layer".into(),
                found: format!(
                    "{} encoder and {} decoder layers",
                    n_encoder,
                    layers.len() - n_encoder
                ),
            });
        }
        let code = &layers[n_encoder - 1];
        if latent == Latent::Gaussian
            && (code.n_out() % 2 != 0 || code.activation() != Activation::Identity)
        {
            return Err(Error::InvalidConfig(format!(
                "a Gaussian latent needs an identity code layer of even width 2k (mean and log-variance), \
                 found width {} with {:?}",
                code.n_out(),
                code.activation()
            )));
        }
        for (i, pair) in layers.windows(2).enumerate() {
            let n_out = if i + 1 == n_encoder && latent == Latent::Gaussian {
                pair[0].n_out() / 2
            } else {
                pair[0].n_out()
            };
            if n_out != pair[1].n_in() {
                return Err(Error::ShapeMismatch {
                    context: "Autoencoder::from_layers",
                    expected: format!(
                        "layer {} with n_in = {n_out} (the width layer {i} passes on)",
                        i + 1
                    ),
                    found: format!("n_in = {}", pair[1].n_in()),
                });
            }
        }
        let (n_in, n_out) = (layers[0].n_in(), layers[layers.len() - 1].n_out());
        if n_in != n_out {
            return Err(Error::ShapeMismatch {
                context: "Autoencoder::from_layers",
                expected: format!("decoder output width = input width {n_in}"),
                found: format!("{n_out}"),
            });
        }
        if tying == Tying::Tied {
            if latent == Latent::Gaussian || layers.len() != 2 * n_encoder {
                return Err(Error::InvalidConfig(
                    "tied weights need a deterministic code and a decoder that mirrors the encoder layer for layer".into(),
                ));
            }
            for i in 0..n_encoder {
                let (enc, dec) = (&layers[i], &layers[layers.len() - 1 - i]);
                if (enc.n_in(), enc.n_out()) != (dec.n_out(), dec.n_in()) {
                    return Err(Error::InvalidConfig(format!(
                        "tied weights: decoder layer {} is {}x{}, not the transpose of encoder layer {i} ({}x{})",
                        layers.len() - 1 - i,
                        dec.n_in(),
                        dec.n_out(),
                        enc.n_in(),
                        enc.n_out()
                    )));
                }
            }
        }
        for layer in &mut layers {
            layer.ensure_grads();
        }
        let mut model = Autoencoder {
            layers,
            n_encoder,
            latent,
            tying,
            ws: Workspace::default(),
        };
        model.sync_tied();
        Ok(model)
    }

    /// Assembles a deep autoencoder from stages trained one after another (greedy
    /// layer-wise pretraining, as in stacked autoencoders): stage `i + 1` must take stage
    /// `i`'s code as its input. The result's encoder is every stage's encoder in order, its
    /// decoder every stage's decoder in reverse order, so before any fine-tuning it computes
    /// exactly `g_1(... g_n(f_n(... f_1(x))))`.
    ///
    /// ```
    /// use autoencoder::{Activation, Autoencoder};
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    /// let first = Autoencoder::<f64>::builder(8).latent(4, Activation::Sigmoid).build(&mut rng)?;
    /// let second = Autoencoder::<f64>::builder(4).latent(2, Activation::Sigmoid).build(&mut rng)?;
    /// let deep = Autoencoder::stack(&[first, second])?;
    /// assert_eq!(deep.sizes(), vec![8, 4, 2, 4, 8]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::EmptyData`] for no stages; [`Error::ShapeMismatch`] if a stage's input width
    /// differs from the previous stage's code width; [`Error::InvalidConfig`] for a stage
    /// with a Gaussian latent.
    pub fn stack(stages: &[Autoencoder<T>]) -> Result<Self> {
        if stages.is_empty() {
            return Err(Error::EmptyData {
                context: "Autoencoder::stack stages",
                rows: 0,
                cols: 0,
            });
        }
        let mut encoder = Vec::new();
        let mut decoder = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            if stage.latent != Latent::Deterministic {
                return Err(Error::InvalidConfig(format!(
                    "stage {i} has a Gaussian latent; stacking needs plain stages"
                )));
            }
            if i > 0 && stage.n_in() != stages[i - 1].n_latent() {
                return Err(Error::ShapeMismatch {
                    context: "Autoencoder::stack",
                    expected: format!(
                        "stage {i} with input width {} (stage {}'s code)",
                        stages[i - 1].n_latent(),
                        i - 1
                    ),
                    found: format!("{}", stage.n_in()),
                });
            }
            encoder.extend(stage.encoder().iter().cloned());
        }
        for stage in stages.iter().rev() {
            decoder.extend(stage.decoder().iter().cloned());
        }
        let tying = if stages.iter().all(|s| s.tying == Tying::Tied) {
            Tying::Tied
        } else {
            Tying::Untied
        };
        Self::assemble(encoder, decoder, Latent::Deterministic, tying)
    }

    /// Input (and output) width.
    pub fn n_in(&self) -> usize {
        self.layers[0].n_in()
    }

    /// Width of the code `z`.
    pub fn n_latent(&self) -> usize {
        self.layers[self.n_encoder].n_in()
    }

    /// What the code layer outputs.
    pub fn latent(&self) -> Latent {
        self.latent
    }

    /// Whether decoder weights are tied to the encoder's.
    pub fn tying(&self) -> Tying {
        self.tying
    }

    /// Number of trainable parameters (weights and biases; a tied matrix counts once).
    pub fn n_params(&self) -> usize {
        (0..self.layers.len())
            .map(|l| {
                if self.tied_to(l).is_some() {
                    self.layers[l].bias().len()
                } else {
                    self.layers[l].n_params()
                }
            })
            .sum()
    }

    /// For a tied decoder layer `l`, the encoder layer whose weights it uses (transposed).
    pub(crate) fn tied_to(&self, l: usize) -> Option<usize> {
        (self.tying == Tying::Tied && l >= self.n_encoder).then(|| self.layers.len() - 1 - l)
    }

    /// Rewrites each tied decoder layer's weights as the transpose of its encoder layer's.
    pub(crate) fn sync_tied(&mut self) {
        for l in self.n_encoder..self.layers.len() {
            if let Some(e) = self.tied_to(l) {
                let (enc, dec) = self.layers.split_at_mut(l);
                dec[0].weights_mut().assign(&enc[e].weights().t());
            }
        }
    }

    /// The widths from input to output, e.g. `[784, 128, 32, 128, 784]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.n_in())
            .chain(self.layers.iter().map(Dense::n_out))
            .collect()
    }

    /// All layers, encoder first; the code is the output of layer [`Autoencoder::code_layer`].
    pub fn layers(&self) -> &[Dense<T>] {
        &self.layers
    }

    /// The encoder's layers.
    pub fn encoder(&self) -> &[Dense<T>] {
        &self.layers[..self.n_encoder]
    }

    /// The decoder's layers.
    pub fn decoder(&self) -> &[Dense<T>] {
        &self.layers[self.n_encoder..]
    }

    /// Index in [`Autoencoder::layers`] of the code (latent) layer.
    pub fn code_layer(&self) -> usize {
        self.n_encoder - 1
    }

    /// The code `z = f(x)` for each row of `x` `(batch, n_in)`: `(batch, n_latent)`. For a
    /// Gaussian latent, the mean `mu`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have `n_in` columns;
    /// [`Error::NonFiniteData`] if it holds NaN or infinity.
    pub fn encode(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(x, self.n_in(), "encode input")?;
        check_finite(x, "encode input")?;
        let code = run(&self.layers[..self.n_encoder], x);
        Ok(match self.latent {
            Latent::Deterministic => code,
            Latent::Gaussian => code.slice(s![.., ..self.n_latent()]).to_owned(),
        })
    }

    /// For a Gaussian latent, the mean `mu` and log-variance `log sigma^2` of `q(z | x)` for
    /// each row of `x`, each `(batch, k)`.
    ///
    /// # Errors
    /// As [`Autoencoder::encode`]; [`Error::InvalidConfig`] for a deterministic latent.
    pub fn encode_distribution(&self, x: ArrayView2<T>) -> Result<(Array2<T>, Array2<T>)> {
        if self.latent != Latent::Gaussian {
            return Err(Error::InvalidConfig(
                "encode_distribution needs a Gaussian latent (a VAE)".into(),
            ));
        }
        check_width(x, self.n_in(), "encode input")?;
        check_finite(x, "encode input")?;
        let code = run(&self.layers[..self.n_encoder], x);
        let k = self.n_latent();
        Ok((
            code.slice(s![.., ..k]).to_owned(),
            code.slice(s![.., k..]).to_owned(),
        ))
    }

    /// Decodes `n` draws `z ~ N(0, I)` from `rng`: `(n, n_in)`. Meaningful for a trained
    /// VAE, whose prior is `N(0, I)`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a deterministic latent (its codes have no prior).
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Result<Array2<T>> {
        if self.latent != Latent::Gaussian {
            return Err(Error::InvalidConfig(
                "sample needs a Gaussian latent (a VAE)".into(),
            ));
        }
        let z = Array2::from_shape_simple_fn((n, self.n_latent()), || {
            T::cast(StandardNormal.sample(rng))
        });
        Ok(run(&self.layers[self.n_encoder..], z.view()))
    }

    /// Decodes `steps` codes evenly spaced on the line from `f(a)` to `f(b)` (both ends
    /// included), for two inputs `a`, `b` of width `n_in`: `(steps, n_in)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for inputs of the wrong width; [`Error::NonFiniteData`];
    /// [`Error::InvalidHyperparameter`] for `steps < 2`.
    pub fn interpolate(
        &self,
        a: ndarray::ArrayView1<T>,
        b: ndarray::ArrayView1<T>,
        steps: usize,
    ) -> Result<Array2<T>> {
        if steps < 2 {
            return Err(Error::hyper("steps", steps, "at least 2"));
        }
        let ends = ndarray::stack(ndarray::Axis(0), &[a, b]).map_err(|_| Error::ShapeMismatch {
            context: "interpolate inputs",
            expected: format!("two rows of width {}", self.n_in()),
            found: format!("{} and {}", a.len(), b.len()),
        })?;
        let codes = self.encode(ends.view())?;
        let z = Array2::from_shape_fn((steps, self.n_latent()), |(i, j)| {
            let t = T::cast(i as f64 / (steps - 1) as f64);
            codes[[0, j]] + t * (codes[[1, j]] - codes[[0, j]])
        });
        self.decode(z.view())
    }

    /// The reconstruction `x^ = g(z)` for each row of `codes` `(batch, n_latent)`:
    /// `(batch, n_in)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `codes` does not have `n_latent` columns;
    /// [`Error::NonFiniteData`] if it holds NaN or infinity.
    pub fn decode(&self, codes: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(codes, self.n_latent(), "decode input")?;
        check_finite(codes, "decode input")?;
        Ok(run(&self.layers[self.n_encoder..], codes))
    }

    /// `g(f(x))`, `(batch, n_in)`; equal to `decode(encode(x))` (for a VAE, decodes `mu`).
    ///
    /// # Errors
    /// As [`Autoencoder::encode`].
    pub fn reconstruct(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(x, self.n_in(), "reconstruct input")?;
        check_finite(x, "reconstruct input")?;
        let codes = self.encode(x)?;
        Ok(run(&self.layers[self.n_encoder..], codes.view()))
    }

    /// The reconstruction loss of `g(f(input))` against `target` (both `(n, n_in)`),
    /// averaged over all `n` rows exactly as [`Loss`] defines it, computed in chunks of
    /// `batch_size` rows through the training buffers (binary cross-entropy from logits).
    /// Pass the same array twice for a plain autoencoder.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`], [`Error::EmptyData`], [`Error::NonFiniteData`] for bad data;
    /// [`Error::InvalidConfig`] if the loss does not suit the model or the targets.
    pub fn evaluate(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
    ) -> Result<f64> {
        self.check_objective(input, target, loss, &[], "evaluation")?;
        Ok(self.evaluate_checked(input, target, loss, 1024))
    }

    /// The whole training objective on a data set: reconstruction `loss` of `g(f(input))`
    /// against `target` and each penalty, as [`crate::Trainer`] computes them, averaged over
    /// the rows in chunks of 1024 (batch-dependent penalties such as KL sparsity see
    /// chunks as batches). A VAE's noise is drawn from a generator seeded with `seed`, so
    /// with [`Loss::BinaryCrossEntropySum`] and [`Penalty::gaussian_kl`]`(1.0)` the total is
    /// a one-sample estimate of the negative ELBO per example, in nats.
    ///
    /// ```
    /// use autoencoder::{Activation, Autoencoder, Loss, Penalty};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let mut vae = Autoencoder::<f64>::builder(6)
    ///     .gaussian_latent(2)
    ///     .output(Activation::Sigmoid)
    ///     .build(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
    /// let x = Array2::from_elem((10, 6), 1.0);
    /// let terms = vae.objective(x.view(), x.view(), Loss::BinaryCrossEntropySum, &[Penalty::gaussian_kl(1.0)?], 0)?;
    /// let negative_elbo = terms.total();
    /// assert!(negative_elbo > terms.reconstruction);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Autoencoder::evaluate`]; [`Error::InvalidConfig`] or
    /// [`Error::InvalidHyperparameter`] for penalties that do not suit the model.
    pub fn objective(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        seed: u64,
    ) -> Result<LossTerms> {
        self.check_objective(input, target, loss, penalties, "objective")?;
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let (n, chunk) = (input.nrows(), 1024);
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
            self.loss_and_gradient(x, t, loss, penalties, &mut terms, &mut rng);
            sum.reconstruction += terms.reconstruction * rows;
            for (s, p) in sum.penalties.iter_mut().zip(&terms.penalties) {
                *s += p * rows;
            }
        }
        sum.reconstruction /= n as f64;
        sum.penalties.iter_mut().for_each(|p| *p /= n as f64);
        Ok(sum)
    }

    /// [`Autoencoder::evaluate`] on checked data, in chunks of `chunk` rows.
    pub(crate) fn evaluate_checked(
        &mut self,
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
            self.forward_batch(input.slice(s![start..end, ..]), None);
            let last = self.layers.len() - 1;
            let z = self.ws.z[last].slice(s![..rows, ..]);
            let a = self.ws.a[last].slice(s![..rows, ..]);
            total += loss.value(z, a, target.slice(s![start..end, ..])) * rows as f64;
        }
        total / input.nrows() as f64
    }

    /// The mean over the rows of `x` `(n, n_in)` of `||J_f(x)||_F^2`, the squared Frobenius
    /// norm of the Jacobian of the code `z = f(x)` with respect to the input, through every
    /// encoder layer: `J = W_1 diag(s_1') W_2 diag(s_2') ... W_k diag(s_k')` (`W_l` as
    /// `(n_in_l, n_out_l)`), so `J` is `(n_in, n_latent)` per row.
    ///
    /// This is what the contractive penalty keeps small (for a one-layer encoder, exactly
    /// the quantity [`Penalty::Contractive`] computes). Costs `n_in * sum of layer sizes *
    /// n_latent` per row: for evaluation, not for the training loop.
    ///
    /// # Errors
    /// [`Error::EmptyData`], [`Error::ShapeMismatch`] or [`Error::NonFiniteData`] for bad `x`.
    pub fn jacobian_norm(&self, x: ArrayView2<T>) -> Result<f64> {
        self.check_data(x, "jacobian_norm input")?;
        let mut total = 0.0;
        for row in x.rows() {
            let mut input = row.insert_axis(ndarray::Axis(0)).to_owned(); // (1, n)
            let mut jac = Array2::<T>::eye(self.n_in()); // (n_in, n_cur)
            for layer in self.encoder() {
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

    /// Checks an input/target pair, the loss and the penalties before computing an objective
    /// outside the trainer; `what` names the caller in errors (e.g. `"evaluation"`).
    pub(crate) fn check_objective(
        &self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        what: &'static str,
    ) -> Result<()> {
        self.check_data(input, what)?;
        self.check_data(target, what)?;
        if input.nrows() != target.nrows() {
            return Err(Error::ShapeMismatch {
                context: what,
                expected: format!("a target with {} rows, as the input", input.nrows()),
                found: format!("{:?}", target.dim()),
            });
        }
        loss.validate(self.output_activation())?;
        loss.validate_targets(target, what)?;
        penalties.iter().try_for_each(|p| p.validate(self))
    }

    /// Checks that `x` is non-empty, `n_in` wide and finite.
    pub(crate) fn check_data(&self, x: ArrayView2<T>, context: &'static str) -> Result<()> {
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(Error::EmptyData {
                context,
                rows: x.nrows(),
                cols: x.ncols(),
            });
        }
        check_width(x, self.n_in(), context)?;
        check_finite(x, context)
    }

    /// The output layer's activation.
    pub fn output_activation(&self) -> Activation {
        self.layers[self.layers.len() - 1].activation()
    }

    /// Forward pass of `input` `(rows, n_in)` into the workspace, growing it if needed.
    /// For a Gaussian latent, `rng` draws `eps` (training); without it `eps = 0`, `z = mu`.
    pub(crate) fn forward_batch(&mut self, input: ArrayView2<T>, rng: Option<&mut ChaCha8Rng>) {
        let rows = input.nrows();
        let k = if self.latent == Latent::Gaussian {
            self.n_latent()
        } else {
            0
        };
        self.ws.prepare(rows, &self.layers, k);
        let ws = &mut self.ws;
        let gaussian = self.latent == Latent::Gaussian;
        let mut rng = rng;
        for (l, layer) in self.layers.iter().enumerate() {
            let (a_prev, a_rest) = ws.a.split_at_mut(l);
            let x = if l == 0 {
                input
            } else if gaussian && l == self.n_encoder {
                ws.sample.slice(s![..rows, ..])
            } else {
                a_prev[l - 1].slice(s![..rows, ..])
            };
            layer.forward(
                x,
                ws.z[l].slice_mut(s![..rows, ..]),
                a_rest[0].slice_mut(s![..rows, ..]),
            );
            if gaussian && l + 1 == self.n_encoder {
                // z = mu + exp(logvar / 2) eps, eps ~ N(0, I) (or 0 without a generator).
                let k = ws.sample.ncols();
                let code = a_rest[0].slice(s![..rows, ..]);
                let mut eps = ws.eps.slice_mut(s![..rows, ..]);
                match rng.as_deref_mut() {
                    Some(rng) => eps.mapv_inplace(|_| T::cast(StandardNormal.sample(rng))),
                    None => eps.fill(T::zero()),
                }
                let half = T::cast(0.5);
                Zip::from(ws.sample.slice_mut(s![..rows, ..]))
                    .and(code.slice(s![.., ..k]))
                    .and(code.slice(s![.., k..]))
                    .and(&eps)
                    .for_each(|z, &mu, &logvar, &e| *z = mu + (half * logvar).exp() * e);
            }
        }
    }

    /// One batch of the training objective: forward `input` `(rows, n_in)`, compare with
    /// `target` `(rows, n_in)`, and leave in every layer the gradient of
    /// `reconstruction + sum of penalties` with respect to its parameters (zeroed first;
    /// a tied matrix's gradient sums both uses and sits in its encoder layer).
    /// `terms` receives the value of each part; its buffers are reused. `rng` draws the
    /// VAE's `eps` (a checker passes a generator reseeded the same way each call).
    ///
    /// Inputs are assumed checked (the trainer and the gradient checker check once per call).
    pub(crate) fn loss_and_gradient(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        terms: &mut LossTerms,
        rng: &mut ChaCha8Rng,
    ) {
        let rows = input.nrows();
        self.forward_batch(input, Some(rng));
        for layer in &mut self.layers {
            layer.zero_grad();
        }
        terms.penalties.clear();
        terms.penalties.resize(penalties.len(), 0.0);

        let last = self.layers.len() - 1;
        let gaussian = self.latent == Latent::Gaussian;
        let ws = &mut self.ws;
        terms.reconstruction = loss.value_and_grad(
            ws.z[last].slice(s![..rows, ..]),
            ws.a[last].slice(s![..rows, ..]),
            target,
            self.layers[last].activation(),
            ws.d[last].slice_mut(s![..rows, ..]),
        );
        for l in (0..self.layers.len()).rev() {
            let (d_below, d_here) = ws.d.split_at_mut(l);
            let d_z = d_here[0].slice(s![..rows, ..]);
            let (layers_below, layers_here) = self.layers.split_at_mut(l);
            if l == 0 {
                layers_here[0].backward(input, d_z, None);
                break;
            }
            let a_prev = ws.a[l - 1].slice(s![..rows, ..]);
            let mut d_prev = d_below[l - 1].slice_mut(s![..rows, ..]); // dL/da_{l-1}
            if gaussian && l == self.n_encoder {
                // Through z = mu + exp(logvar / 2) eps:
                // dL/dmu = dL/dz, dL/dlogvar = dL/dz * eps * exp(logvar / 2) / 2.
                let mut d_sample = ws.d_sample.slice_mut(s![..rows, ..]);
                layers_here[0].backward(
                    ws.sample.slice(s![..rows, ..]),
                    d_z,
                    Some(d_sample.view_mut()),
                );
                let k = d_sample.ncols();
                let half = T::cast(0.5);
                d_prev.slice_mut(s![.., ..k]).assign(&d_sample);
                Zip::from(d_prev.slice_mut(s![.., k..]))
                    .and(&d_sample)
                    .and(a_prev.slice(s![.., k..]))
                    .and(ws.eps.slice(s![..rows, ..]))
                    .for_each(|d, &dz, &logvar, &e| *d = dz * e * half * (half * logvar).exp());
            } else {
                layers_here[0].backward(a_prev, d_z, Some(d_prev.view_mut()));
            }
            let below = &mut layers_below[l - 1];
            let z_prev = ws.z[l - 1].slice(s![..rows, ..]);
            for (value, penalty) in terms.penalties.iter_mut().zip(penalties) {
                if penalty.activity_layer(self.n_encoder) == Some(l - 1) {
                    *value +=
                        penalty.activity_value_and_grad(below, z_prev, a_prev, d_prev.view_mut());
                }
            }
            below.activation().backward(z_prev, a_prev, d_prev); // dL/dz_{l-1}
        }
        let n_encoder = self.n_encoder;
        let tied = self.tying == Tying::Tied;
        for (value, penalty) in terms.penalties.iter_mut().zip(penalties) {
            let own = self
                .layers
                .iter_mut()
                .enumerate()
                .filter(|(l, _)| !tied || *l < n_encoder);
            *value += penalty.weight_value_and_grad(own.map(|(_, layer)| layer));
        }
        // Tied: dL/dW_enc += (dL/dW_dec)^T.
        for l in n_encoder..self.layers.len() {
            if let Some(e) = self.tied_to(l) {
                let (enc, dec) = self.layers.split_at_mut(l);
                let (_, _, grad_w, _) = enc[e].params_with_grads_mut();
                *grad_w += &dec[0].grad_weights().t();
            }
        }
    }

    /// Visits every parameter tensor with its gradient, as flat slices, in a fixed order
    /// (layer by layer, weights then bias; a tied decoder's weights are skipped, call
    /// [`Autoencoder::sync_tied`] after changing the encoder's): `f(index, param, grad, kind)`.
    pub(crate) fn visit_params(
        &mut self,
        mut f: impl FnMut(usize, &mut [T], &[T], crate::layers::ParamKind),
    ) {
        let mut index = 0;
        for l in 0..self.layers.len() {
            let tied = self.tied_to(l).is_some();
            for (param, grad, kind) in self.layers[l].params_and_grads() {
                if tied && kind == crate::layers::ParamKind::Weight {
                    continue; // shared with the encoder, updated there
                }
                f(index, param, grad, kind);
                index += 1;
            }
        }
    }

    /// `(layer, kind)` of each parameter tensor, in [`Autoencoder::visit_params`] order.
    pub(crate) fn param_layout(&self) -> Vec<(usize, crate::layers::ParamKind)> {
        use crate::layers::ParamKind;
        (0..self.layers.len())
            .flat_map(|l| {
                let weight = self.tied_to(l).is_none().then_some((l, ParamKind::Weight));
                weight
                    .into_iter()
                    .chain(std::iter::once((l, ParamKind::Bias)))
            })
            .collect()
    }

    /// Adds `delta` to element `element` of parameter tensor `index` (in
    /// [`Autoencoder::visit_params`] order), keeping tied copies in step.
    pub(crate) fn nudge(&mut self, index: usize, element: usize, delta: T) {
        self.visit_params(|i, param, _, _| {
            if i == index {
                param[element] += delta;
            }
        });
        self.sync_tied();
    }

    /// Mutable layers, for the crate's optimizers, penalties and checkers (shapes must not change).
    pub(crate) fn layers_mut(&mut self) -> &mut [Dense<T>] {
        &mut self.layers
    }

    /// Copies all parameters from `other`, which must have the same architecture.
    pub(crate) fn copy_params_from(&mut self, other: &Autoencoder<T>) {
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            mine.weights_mut().assign(&theirs.weights());
            mine.bias_mut().assign(&theirs.bias());
        }
    }

    /// Whether every parameter is finite.
    pub(crate) fn params_are_finite(&self) -> bool {
        self.layers.iter().all(|l| {
            l.weights().iter().all(|w| w.is_finite()) && l.bias().iter().all(|b| b.is_finite())
        })
    }
}

/// Inference through a stack of layers (allocates one output per layer).
fn run<T: Float>(layers: &[Dense<T>], x: ArrayView2<T>) -> Array2<T> {
    let mut out = x.to_owned();
    for layer in layers {
        let mut z = Array2::zeros((out.nrows(), layer.n_out()));
        let mut a = Array2::zeros((out.nrows(), layer.n_out()));
        layer.forward(out.view(), z.view_mut(), a.view_mut());
        out = a;
    }
    out
}

impl<T: Float> Workspace<T> {
    /// Makes room for `rows` rows; reallocates only when the capacity is too small or the
    /// layers changed.
    /// `k` is the width of a Gaussian latent's sample (0 for a deterministic code).
    fn prepare(&mut self, rows: usize, layers: &[Dense<T>], k: usize) {
        let fits = self.rows >= rows
            && self.a.len() == layers.len()
            && self
                .a
                .iter()
                .zip(layers)
                .all(|(a, l)| a.ncols() == l.n_out())
            && self.eps.ncols() == k;
        if fits {
            return;
        }
        let alloc = || {
            layers
                .iter()
                .map(|l| Array2::zeros((rows, l.n_out())))
                .collect::<Vec<_>>()
        };
        let sample = || Array2::zeros((rows, k));
        *self = Workspace {
            rows,
            z: alloc(),
            a: alloc(),
            d: alloc(),
            eps: sample(),
            sample: sample(),
            d_sample: sample(),
        };
    }
}

/// Builder for [`Autoencoder`]; see [`Autoencoder::builder`].
///
/// | method | default | meaning |
/// | --- | --- | --- |
/// | `hidden(n, s)` | none | appends an encoder hidden layer of `n` units (call once per layer) |
/// | `latent(n, s)` | required (or `gaussian_latent`) | the code layer |
/// | `gaussian_latent(k)` | off | a VAE with `k` latent units, see [`Latent::Gaussian`] |
/// | `tying(t)` | [`Tying::Untied`] | decoder weights tied to the encoder's, see [`Tying::Tied`] |
/// | `decoder_hidden(&[(n, s)])` | mirror of the encoder's hidden layers | explicit decoder hidden layers |
/// | `output(s)` | [`Activation::Identity`] | the output layer's activation (use sigmoid for data in `[0, 1]`) |
/// | `init(i)` | [`Init::default_for`] each layer's activation | weight initializer for every layer |
#[derive(Debug, Clone)]
pub struct AutoencoderBuilder<T> {
    n_in: usize,
    hidden: Vec<(usize, Activation)>,
    latent: Option<(usize, Activation)>,
    decoder: Option<Vec<(usize, Activation)>>,
    output: Activation,
    init: Option<Init>,
    gaussian: bool,
    tying: Tying,
    element: std::marker::PhantomData<T>,
}

impl<T: Float> AutoencoderBuilder<T> {
    fn new(n_in: usize) -> Self {
        AutoencoderBuilder {
            n_in,
            hidden: Vec::new(),
            latent: None,
            decoder: None,
            output: Activation::Identity,
            init: None,
            gaussian: false,
            tying: Tying::Untied,
            element: std::marker::PhantomData,
        }
    }

    /// Appends an encoder hidden layer of `n` units with activation `activation`.
    pub fn hidden(mut self, n: usize, activation: Activation) -> Self {
        self.hidden.push((n, activation));
        self
    }

    /// Sets the code (latent) layer: `n` units with activation `activation`.
    pub fn latent(mut self, n: usize, activation: Activation) -> Self {
        self.latent = Some((n, activation));
        self.gaussian = false;
        self
    }

    /// Makes a variational autoencoder: the code layer becomes an identity layer of `2k`
    /// units (mean and log-variance of `q(z | x)`) and the decoder takes `k` inputs; see
    /// [`Latent::Gaussian`]. Replaces any [`AutoencoderBuilder::latent`].
    pub fn gaussian_latent(mut self, k: usize) -> Self {
        self.latent = Some((2 * k, Activation::Identity));
        self.gaussian = true;
        self
    }

    /// Ties (or unties) each decoder layer's weights to the transpose of its mirrored
    /// encoder layer's; see [`Tying::Tied`]. Needs the default mirrored decoder.
    pub fn tying(mut self, tying: Tying) -> Self {
        self.tying = tying;
        self
    }

    /// Sets the decoder's hidden layers explicitly, from the code towards the output
    /// (an empty slice gives a decoder of the output layer alone). By default they mirror
    /// the encoder's hidden layers, in reverse order with the same activations.
    pub fn decoder_hidden(mut self, layers: &[(usize, Activation)]) -> Self {
        self.decoder = Some(layers.to_vec());
        self
    }

    /// Sets the output layer's activation.
    pub fn output(mut self, activation: Activation) -> Self {
        self.output = activation;
        self
    }

    /// Uses `init` for every layer instead of the per-activation default.
    pub fn init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// Draws the weights from `rng` and builds the model. The same seed gives the same
    /// weights, bit for bit.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] for a width of 0, a missing latent layer or an
    /// activation parameter out of range.
    pub fn build<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Autoencoder<T>> {
        let Some(latent) = self.latent else {
            return Err(Error::InvalidConfig(
                "the builder needs a code layer: call .latent(n, activation)".into(),
            ));
        };
        let mut encoder_spec = self.hidden.clone();
        encoder_spec.push(latent);
        let mut decoder_spec = match &self.decoder {
            Some(d) => d.clone(),
            None => self.hidden.iter().rev().copied().collect(),
        };
        decoder_spec.push((self.n_in, self.output));
        if self.n_in == 0 {
            return Err(Error::hyper("n_in", 0, "at least 1 input"));
        }
        for &(n, activation) in encoder_spec.iter().chain(&decoder_spec) {
            if n == 0 {
                return Err(Error::hyper("layer width", 0, "at least 1 unit"));
            }
            activation.validate()?;
        }
        let mut make = |spec: &[(usize, Activation)], mut n_prev: usize| -> Vec<Dense<T>> {
            spec.iter()
                .map(|&(n, activation)| {
                    let init = self.init.unwrap_or_else(|| Init::default_for(activation));
                    let layer = Dense::random(n_prev, n, activation, init, rng);
                    n_prev = n;
                    layer
                })
                .collect()
        };
        let encoder = make(&encoder_spec, self.n_in);
        let (latent, code_width) = match self.gaussian {
            true => (Latent::Gaussian, latent.0 / 2),
            false => (Latent::Deterministic, latent.0),
        };
        let decoder = make(&decoder_spec, code_width);
        Autoencoder::assemble(encoder, decoder, latent, self.tying)
    }
}
