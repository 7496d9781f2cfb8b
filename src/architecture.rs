//! `Architecture`: what a model looks like, as plain data (widths, activations, layer kinds,
//! where the code sits, latent kind, tying), with the one set of structural checks.
//!
//! The model builds one from its layers; the model file stores it (the metadata key
//! `architecture`); penalties and losses are validated against it, not against the model,
//! so they depend on this description alone.

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{Error, Result};

/// What the code layer outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Latent {
    /// The code is the code layer's output (a plain autoencoder).
    Deterministic,
    /// Variational autoencoder (Kingma & Welling 2014): the code layer outputs `2k` values,
    /// a mean `mu` (columns `..k`) and a log-variance `log sigma^2` (columns `k..`); in
    /// training the decoder receives `z = mu + sigma * eps`, `eps ~ N(0, I)` drawn from the
    /// trainer's seeded generator (the reparameterization trick), and at inference `z = mu`.
    /// Pair it with [`crate::Penalty::gaussian_kl`].
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

/// The kind of a layer, as written in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LayerKindName {
    /// A fully connected layer, [`crate::Dense`].
    #[default]
    Dense,
}

/// One layer of an [`Architecture`]: its kind, output width and activation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LayerSpec {
    /// Width of the layer's output row.
    pub n_out: usize,
    /// The layer's activation.
    pub activation: Activation,
    /// The layer's kind (files written before kinds existed hold dense layers only).
    #[serde(default, skip_serializing_if = "is_dense")]
    pub kind: LayerKindName,
}

fn is_dense(kind: &LayerKindName) -> bool {
    *kind == LayerKindName::Dense
}

impl LayerSpec {
    /// A layer of `kind` with `n_out` outputs and `activation`.
    pub fn new(kind: LayerKindName, n_out: usize, activation: Activation) -> Self {
        LayerSpec {
            n_out,
            activation,
            kind,
        }
    }
}

/// A model's shape: input width, layers (encoder first), where the encoder ends, the latent
/// kind and the tying. [`crate::Autoencoder::architecture`] gives a model's; the model file
/// stores it as JSON (see `docs/format.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Architecture {
    /// Input (and output) width.
    pub n_in: usize,
    /// `layers[..n_encoder]` is the encoder; the code is layer `n_encoder - 1`'s output.
    pub n_encoder: usize,
    /// What the code layer outputs (a Gaussian code layer has `2k` outputs, the decoder
    /// `k` inputs).
    pub latent: Latent,
    /// Whether decoder weights are the transposes of the encoder's.
    pub tying: Tying,
    /// Every layer, encoder first.
    pub layers: Vec<LayerSpec>,
}

impl Architecture {
    /// Index of the code (latent) layer.
    pub fn code_layer(&self) -> usize {
        self.n_encoder - 1
    }

    /// Width of the code `z` the decoder receives (`k` for a Gaussian code layer of `2k`).
    pub fn n_latent(&self) -> usize {
        let code = self.layers[self.code_layer()].n_out;
        match self.latent {
            Latent::Deterministic => code,
            Latent::Gaussian => code / 2,
        }
    }

    /// Width of the rows layer `l` reads: the input for layer 0, the sampled code for the
    /// first decoder layer of a VAE, else the previous layer's output.
    pub fn input_width(&self, l: usize) -> usize {
        match l {
            0 => self.n_in,
            l if l == self.n_encoder => self.n_latent(),
            l => self.layers[l - 1].n_out,
        }
    }

    /// The hidden layers (every layer but the output), which activity penalties may read.
    pub fn n_hidden(&self) -> usize {
        self.layers.len() - 1
    }

    /// Checks that the description is a model this crate can build: an encoder and a
    /// decoder, no layer of width 0, valid activations, an output as wide as the input, a
    /// Gaussian code layer that is an identity layer of even width, and tied layers that
    /// mirror each other.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for the widths; [`Error::InvalidConfig`] for the latent
    /// and the tying; [`Error::InvalidHyperparameter`] for an activation's parameter.
    pub fn validate(&self) -> Result<()> {
        let n = self.layers.len();
        if self.n_in == 0 || self.n_encoder == 0 || self.n_encoder >= n {
            return Err(Error::ShapeMismatch {
                context: "Autoencoder::from_layers",
                expected:
                    "an input width of at least 1, at least one encoder and one decoder layer"
                        .into(),
                found: format!(
                    "input width {}, {} encoder and {} decoder layers",
                    self.n_in,
                    self.n_encoder.min(n),
                    n - self.n_encoder.min(n)
                ),
            });
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.n_out == 0 {
                return Err(Error::hyper("layer width", 0, "at least 1 unit"));
            }
            layer.activation.validate().map_err(|e| match e {
                Error::InvalidHyperparameter { .. } => e,
                other => Error::InvalidConfig(format!("layer {i}: {other}")),
            })?;
        }
        let code = &self.layers[self.code_layer()];
        if self.latent == Latent::Gaussian
            && (code.n_out % 2 != 0 || code.activation != Activation::Identity)
        {
            return Err(Error::InvalidConfig(format!(
                "a Gaussian latent needs an identity code layer of even width 2k (mean and log-variance), \
                 found width {} with {:?}",
                code.n_out, code.activation
            )));
        }
        let n_out = self.layers[n - 1].n_out;
        if n_out != self.n_in {
            return Err(Error::ShapeMismatch {
                context: "Autoencoder::from_layers",
                expected: format!("decoder output width = input width {}", self.n_in),
                found: format!("{n_out}"),
            });
        }
        self.validate_tying()
    }

    /// Tied weights: a deterministic code, and decoder layer `n - 1 - i` shaped as the
    /// transpose of encoder layer `i`, both dense.
    fn validate_tying(&self) -> Result<()> {
        if self.tying == Tying::Untied {
            return Ok(());
        }
        let n = self.layers.len();
        if self.latent == Latent::Gaussian || n != 2 * self.n_encoder {
            return Err(Error::InvalidConfig(
                "tied weights need a deterministic code and a decoder that mirrors the encoder layer for layer".into(),
            ));
        }
        for i in 0..self.n_encoder {
            let d = n - 1 - i;
            let enc = (self.input_width(i), self.layers[i].n_out);
            let dec = (self.input_width(d), self.layers[d].n_out);
            let dense = self.layers[i].kind == LayerKindName::Dense
                && self.layers[d].kind == LayerKindName::Dense;
            if enc != (dec.1, dec.0) || !dense {
                return Err(Error::InvalidConfig(format!(
                    "tied weights: decoder layer {d} is {}x{}, not the transpose of encoder layer {i} ({}x{}), \
                     or not both dense",
                    dec.0, dec.1, enc.0, enc.1
                )));
            }
        }
        Ok(())
    }
}
