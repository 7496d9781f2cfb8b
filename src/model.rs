//! `Autoencoder`: an encoder stack and a decoder stack of dense layers, and its builder.

use ndarray::{s, Array2, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::{check_finite, check_width};
use crate::penalty::Penalty;
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
    #[serde(skip)]
    ws: Workspace<T>,
}

/// Per-batch buffers, allocated once per batch size (llm.c's activations): for layer `l`,
/// `z[l]`, `a[l]` and `d[l]` are `(rows, n_out_l)`; `d[l]` holds `dL/da_l`, then `dL/dz_l`.
#[derive(Debug, Clone, Default)]
struct Workspace<T> {
    rows: usize,
    z: Vec<Array2<T>>,
    a: Vec<Array2<T>>,
    d: Vec<Array2<T>>,
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

    /// An autoencoder from explicit layers.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if either stack is empty, consecutive layers do not chain
    /// (`n_out` of one = `n_in` of the next), or the decoder's output width differs from the
    /// encoder's input width.
    pub fn from_layers(encoder: Vec<Dense<T>>, decoder: Vec<Dense<T>>) -> Result<Self> {
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
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[0].n_out() != pair[1].n_in() {
                return Err(Error::ShapeMismatch {
                    context: "Autoencoder::from_layers",
                    expected: format!(
                        "layer {} with n_in = {} (layer {i}'s n_out)",
                        i + 1,
                        pair[0].n_out()
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
        for layer in &mut layers {
            layer.ensure_grads();
        }
        Ok(Autoencoder {
            layers,
            n_encoder,
            ws: Workspace::default(),
        })
    }

    /// Input (and output) width.
    pub fn n_in(&self) -> usize {
        self.layers[0].n_in()
    }

    /// Width of the code `z`.
    pub fn n_latent(&self) -> usize {
        self.layers[self.n_encoder - 1].n_out()
    }

    /// Total number of parameters (weights and biases).
    pub fn n_params(&self) -> usize {
        self.layers.iter().map(Dense::n_params).sum()
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

    /// The code `z = f(x)` for each row of `x` `(batch, n_in)`: `(batch, n_latent)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not have `n_in` columns;
    /// [`Error::NonFiniteData`] if it holds NaN or infinity.
    pub fn encode(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(x, self.n_in(), "encode input")?;
        check_finite(x, "encode input")?;
        Ok(run(&self.layers[..self.n_encoder], x))
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

    /// `g(f(x))`, `(batch, n_in)`; equal to `decode(encode(x))`.
    ///
    /// # Errors
    /// As [`Autoencoder::encode`].
    pub fn reconstruct(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_width(x, self.n_in(), "reconstruct input")?;
        check_finite(x, "reconstruct input")?;
        Ok(run(&self.layers, x))
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
        self.check_data(input, "evaluation input")?;
        self.check_data(target, "evaluation target")?;
        if input.nrows() != target.nrows() {
            return Err(Error::ShapeMismatch {
                context: "evaluate target",
                expected: format!("{} rows, as the input", input.nrows()),
                found: format!("{:?}", target.dim()),
            });
        }
        loss.validate(self.output_activation())?;
        loss.validate_targets(target, "evaluation targets")?;
        Ok(self.evaluate_checked(input, target, loss, 1024))
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
            self.forward_batch(input.slice(s![start..end, ..]));
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
    pub(crate) fn forward_batch(&mut self, input: ArrayView2<T>) {
        let rows = input.nrows();
        self.ws.prepare(rows, &self.layers);
        let ws = &mut self.ws;
        for (l, layer) in self.layers.iter().enumerate() {
            let (a_prev, a_rest) = ws.a.split_at_mut(l);
            let x = if l == 0 {
                input
            } else {
                a_prev[l - 1].slice(s![..rows, ..])
            };
            layer.forward(
                x,
                ws.z[l].slice_mut(s![..rows, ..]),
                a_rest[0].slice_mut(s![..rows, ..]),
            );
        }
    }

    /// One batch of the training objective: forward `input` `(rows, n_in)`, compare with
    /// `target` `(rows, n_in)`, and leave in every layer the gradient of
    /// `reconstruction + sum of penalties` with respect to its parameters (zeroed first).
    /// `terms` receives the value of each part; its buffers are reused.
    ///
    /// Inputs are assumed checked (the trainer and the gradient checker check once per call).
    pub(crate) fn loss_and_gradient(
        &mut self,
        input: ArrayView2<T>,
        target: ArrayView2<T>,
        loss: Loss,
        penalties: &[Penalty],
        terms: &mut LossTerms,
    ) {
        let rows = input.nrows();
        self.forward_batch(input);
        for layer in &mut self.layers {
            layer.zero_grad();
        }
        terms.penalties.clear();
        terms.penalties.resize(penalties.len(), 0.0);

        let last = self.layers.len() - 1;
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
            let x = ws.a[l - 1].slice(s![..rows, ..]);
            let mut d_prev = d_below[l - 1].slice_mut(s![..rows, ..]); // dL/da_{l-1}
            layers_here[0].backward(x, d_z, Some(d_prev.view_mut()));
            let below = &mut layers_below[l - 1];
            let z_prev = ws.z[l - 1].slice(s![..rows, ..]);
            for (value, penalty) in terms.penalties.iter_mut().zip(penalties) {
                if penalty.activity_layer(self.n_encoder) == Some(l - 1) {
                    *value += penalty.activity_value_and_grad(below, z_prev, x, d_prev.view_mut());
                }
            }
            below.activation().backward(z_prev, x, d_prev); // dL/dz_{l-1}
        }
        for (value, penalty) in terms.penalties.iter_mut().zip(penalties) {
            *value += penalty.weight_value_and_grad(&mut self.layers);
        }
    }

    /// Visits every parameter tensor with its gradient, as flat slices, in a fixed order
    /// (layer by layer, weights then bias): `f(index, param, grad, kind)`.
    pub(crate) fn visit_params(
        &mut self,
        mut f: impl FnMut(usize, &mut [T], &[T], crate::layer::ParamKind),
    ) {
        let mut index = 0;
        for layer in &mut self.layers {
            for (param, grad, kind) in layer.params_and_grads() {
                f(index, param, grad, kind);
                index += 1;
            }
        }
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
    fn prepare(&mut self, rows: usize, layers: &[Dense<T>]) {
        let fits = self.rows >= rows
            && self.a.len() == layers.len()
            && self
                .a
                .iter()
                .zip(layers)
                .all(|(a, l)| a.ncols() == l.n_out());
        if fits {
            return;
        }
        let alloc = || {
            layers
                .iter()
                .map(|l| Array2::zeros((rows, l.n_out())))
                .collect::<Vec<_>>()
        };
        *self = Workspace {
            rows,
            z: alloc(),
            a: alloc(),
            d: alloc(),
        };
    }
}

/// Builder for [`Autoencoder`]; see [`Autoencoder::builder`].
///
/// | method | default | meaning |
/// | --- | --- | --- |
/// | `hidden(n, s)` | none | appends an encoder hidden layer of `n` units (call once per layer) |
/// | `latent(n, s)` | required | the code layer |
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
        let mut n_prev = self.n_in;
        let mut make = |spec: &[(usize, Activation)]| -> Vec<Dense<T>> {
            spec.iter()
                .map(|&(n, activation)| {
                    let init = self.init.unwrap_or_else(|| Init::default_for(activation));
                    let layer = Dense::random(n_prev, n, activation, init, rng);
                    n_prev = n;
                    layer
                })
                .collect()
        };
        let encoder = make(&encoder_spec);
        let decoder = make(&decoder_spec);
        Autoencoder::from_layers(encoder, decoder)
    }
}
