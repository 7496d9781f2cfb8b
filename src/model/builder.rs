//! Building a model: the builder, assembly from explicit layers (with every structural
//! check, through [`Architecture::validate`]) and stacking trained stages.

use rand::Rng;

use crate::activation::Activation;
use crate::architecture::{Architecture, Latent, Tying};
use crate::budget::check_elements;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::init::Init;
use crate::layers::{Dense, Layer};
use crate::model::{Autoencoder, Workspace};

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
    pub fn from_layers<L: Into<Layer<T>>>(encoder: Vec<L>, decoder: Vec<L>) -> Result<Self> {
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
    pub fn assemble<L: Into<Layer<T>>>(
        encoder: Vec<L>,
        decoder: Vec<L>,
        latent: Latent,
        tying: Tying,
    ) -> Result<Self> {
        let n_encoder = encoder.len();
        let mut layers: Vec<Layer<T>> = encoder.into_iter().map(Into::into).collect();
        layers.extend(decoder.into_iter().map(Into::into));
        let arch = Architecture {
            n_in: layers.first().map_or(0, Layer::n_in),
            n_encoder,
            latent,
            tying,
            layers: layers.iter().map(Layer::spec).collect(),
        };
        arch.validate()?;
        for (l, layer) in layers.iter().enumerate().skip(1) {
            let n_prev = arch.input_width(l);
            if layer.n_in() != n_prev {
                return Err(Error::ShapeMismatch {
                    context: "Autoencoder::from_layers",
                    expected: format!(
                        "layer {l} with n_in = {n_prev} (the width layer {} passes on)",
                        l - 1
                    ),
                    found: format!("n_in = {}", layer.n_in()),
                });
            }
        }
        for layer in &mut layers {
            if let Some(dense) = layer.as_dense_mut() {
                dense.ensure_grads();
            }
        }
        let mut model = Autoencoder {
            layers,
            arch,
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
            if stage.latent() != Latent::Deterministic {
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
        let tying = if stages.iter().all(|s| s.tying() == Tying::Tied) {
            Tying::Tied
        } else {
            Tying::Untied
        };
        Self::assemble(encoder, decoder, Latent::Deterministic, tying)
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
        // A width of 2k that does not fit is refused by `build` (usize::MAX fails the budget).
        self.latent = Some((k.saturating_mul(2), Activation::Identity));
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
            activation.validate_for::<T>()?;
        }
        // Every size is checked before the first weight is drawn.
        let code_width = if self.gaussian {
            latent.0 / 2
        } else {
            latent.0
        };
        for (spec, mut n_prev) in [(&encoder_spec, self.n_in), (&decoder_spec, code_width)] {
            for &(n, _) in spec.iter() {
                check_elements::<T>("layer weights", &[n_prev, n])?;
                n_prev = n;
            }
        }
        let mut make = |spec: &[(usize, Activation)], mut n_prev: usize| -> Result<Vec<Dense<T>>> {
            spec.iter()
                .map(|&(n, activation)| {
                    let init = self.init.unwrap_or_else(|| Init::default_for(activation));
                    let layer = Dense::random(n_prev, n, activation, init, rng);
                    n_prev = n;
                    layer
                })
                .collect()
        };
        let encoder = make(&encoder_spec, self.n_in)?;
        let latent = match self.gaussian {
            true => Latent::Gaussian,
            false => Latent::Deterministic,
        };
        let decoder = make(&decoder_spec, code_width)?;
        Autoencoder::assemble(encoder, decoder, latent, self.tying)
    }
}
