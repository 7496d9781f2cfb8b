//! `Autoencoder`: a sequence of layers split into an encoder and a decoder, with its
//! [`Architecture`]. One file per job:
//!
//! | file | job |
//! | --- | --- |
//! | `mod.rs` | the struct and its accessors |
//! | `inference.rs` | `encode`, `decode`, `reconstruct`, sampling and interpolation |
//! | `builder.rs` | the builder, assembly from layers (with the checks) and stacking |
//! | `backprop.rs` | the workspace, the forward pass and the backward pass of one batch |
//! | `runs.rs` | image layers a few images at a time through several layers, and the whole step |
//! | `latent.rs` | the Gaussian latent: reparameterization forward and backward, its KL |
//! | `tying.rs` | tied weights: the sync after an update and the gradient fold |
//! | `params.rs` | the one list of parameters (`visit_params`) and what uses it |
//! | `sequence.rs` | the layer-sequence builder for convolutional models |
//! | `evaluate.rs` | losses and objectives on data sets, the Jacobian norm, input checks |

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{Architecture, Latent, Tying};
use crate::error::{Error, Result};
use crate::layers::Layer;

mod backprop;
mod builder;
mod evaluate;
mod inference;
pub(crate) mod latent;
mod params;
mod runs;
mod sequence;
mod tying;

pub(crate) use backprop::Workspace;
pub use builder::AutoencoderBuilder;
pub use sequence::SequenceBuilder;

/// An autoencoder: encoder `z = f(x)` (one or more layers ending in the code layer) and
/// decoder `x^ = g(z)` (layers ending in an output layer of the input's width).
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
///
/// With serde, a model serializes as its layers and its [`Architecture`]; deserializing goes
/// through the same assembly and checks as [`Autoencoder::assemble`] (and each layer through
/// its constructor's), so a deserialized model is valid and trains.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    try_from = "ModelData<T>",
    bound(deserialize = "T: crate::float::Float")
)]
pub struct Autoencoder<T> {
    layers: Vec<Layer<T>>,
    arch: Architecture, // the layers' description; layers[..arch.n_encoder] is the encoder
    #[serde(skip)]
    ws: Workspace<T>,
}

/// An [`Autoencoder`] as serde reads it, before assembly checks it.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: crate::float::Float"))]
struct ModelData<T> {
    layers: Vec<Layer<T>>,
    arch: Architecture,
}

impl<T: crate::float::Float> TryFrom<ModelData<T>> for Autoencoder<T> {
    type Error = Error;

    fn try_from(data: ModelData<T>) -> Result<Self> {
        let ModelData { mut layers, arch } = data;
        if arch.n_encoder > layers.len() {
            return Err(Error::InvalidConfig(format!(
                "a serialized model with {} layers cannot have {} encoder layers",
                layers.len(),
                arch.n_encoder
            )));
        }
        let given: Vec<Layer<T>> = layers.clone();
        let decoder = layers.split_off(arch.n_encoder);
        let model = Autoencoder::assemble(layers, decoder, arch.latent, arch.tying)?;
        if model.arch != arch {
            return Err(Error::InvalidConfig(format!(
                "a serialized model's architecture {arch:?} does not describe its layers ({:?})",
                model.arch
            )));
        }
        // Tied decoder weights are derived from the encoder's: they must agree.
        let same = model.layers.iter().zip(&given).all(|(built, given)| {
            built
                .weights()
                .iter()
                .zip(given.weights())
                .all(|(a, b)| a.as_f64().to_bits() == b.as_f64().to_bits())
        });
        if !same {
            return Err(Error::InvalidConfig(
                "a serialized tied model's decoder weights are not the transposes of its encoder's"
                    .into(),
            ));
        }
        Ok(model)
    }
}

impl<T: crate::float::Float> Autoencoder<T> {
    /// Input (and output) width.
    pub fn n_in(&self) -> usize {
        self.arch.n_in
    }

    /// Width of the code `z`.
    pub fn n_latent(&self) -> usize {
        self.arch.n_latent()
    }

    /// What the code layer outputs.
    pub fn latent(&self) -> Latent {
        self.arch.latent
    }

    /// Whether decoder weights are tied to the encoder's.
    pub fn tying(&self) -> Tying {
        self.arch.tying
    }

    /// The model's shape as plain data: what penalties are validated against and what files
    /// store.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The widths from input to output, e.g. `[784, 128, 32, 128, 784]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.n_in())
            .chain(self.arch.layers.iter().map(|l| l.n_out))
            .collect()
    }

    /// All layers, encoder first; the code is the output of layer [`Autoencoder::code_layer`].
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    /// The encoder's layers.
    pub fn encoder(&self) -> &[Layer<T>] {
        &self.layers[..self.arch.n_encoder]
    }

    /// The decoder's layers.
    pub fn decoder(&self) -> &[Layer<T>] {
        &self.layers[self.arch.n_encoder..]
    }

    /// Index in [`Autoencoder::layers`] of the code (latent) layer.
    pub fn code_layer(&self) -> usize {
        self.arch.code_layer()
    }

    /// A copy of the parameters with an empty workspace, for read-only calls that run the
    /// training step's code (its gradients are discarded).
    pub(crate) fn scratch_copy(&self) -> Autoencoder<T> {
        Autoencoder {
            layers: self.layers.clone(),
            arch: self.arch.clone(),
            ws: Workspace::default(),
        }
    }

    /// The output layer's activation.
    pub fn output_activation(&self) -> Activation {
        self.layers[self.layers.len() - 1].activation()
    }
}
