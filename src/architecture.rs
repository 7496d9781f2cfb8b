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
    /// A 2-D convolution, [`crate::Conv2d`].
    Conv2d,
    /// A 2-D transposed convolution, [`crate::ConvTranspose2d`].
    ConvTranspose2d,
    /// 2-D max pooling, [`crate::MaxPool2d`].
    MaxPool2d,
    /// 2-D nearest-neighbour upsampling, [`crate::Upsample2d`].
    Upsample2d,
}

/// How a pooling layer rounds its output size: `floor((h - k) / s) + 1` or
/// `ceil((h - k) / s) + 1` (PyTorch's `ceil_mode`, which pools 7x7 to 4x4 with 2x2 windows;
/// a last window that would start past the input is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Rounding {
    /// Windows that do not fit whole are dropped.
    #[default]
    Floor,
    /// A last, partial window is kept (it reads only the pixels inside the image).
    Ceil,
}

/// The geometry of an image layer (convolution, pooling, upsampling): images are rows,
/// channels first, so a row of `c * h * w` values is the image `(c, h, w)`.
///
/// | field | [`LayerKindName::Conv2d`] | [`LayerKindName::ConvTranspose2d`] | [`LayerKindName::MaxPool2d`] | [`LayerKindName::Upsample2d`] |
/// | --- | --- | --- | --- | --- |
/// | `input` | `(c_in, h, w)` | `(c_in, h, w)` | `(c, h, w)` | `(c, h, w)` |
/// | `channels` | `c_out` | `c_out` | `c` | `c` |
/// | `kernel` | `(kh, kw)` | `(kh, kw)` | window `(kh, kw)` | scale factors `(sh, sw)` |
/// | `stride` | `(sh, sw)` | `(sh, sw)` | `(sh, sw)` | equal to `kernel` |
/// | `padding` | zeros `(top, bottom, left, right)` | cropped from the output | 0 | 0 |
/// | `rounding` | `Floor` | `Floor` | `Floor` or `Ceil` | `Floor` |
///
/// Output height (the width alike), with `H = h + top + bottom`:
/// convolution `(H - kh) / sh + 1` (rounded down); transposed convolution
/// `(h - 1) sh + kh - top - bottom`; pooling `(h - kh) / sh + 1` rounded as `rounding`
/// says; upsampling `h sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Window {
    /// The input image `(channels, height, width)`.
    pub input: [usize; 3],
    /// Output channels.
    pub channels: usize,
    /// Kernel (or pooling window, or scale factors) `(height, width)`.
    pub kernel: [usize; 2],
    /// Stride `(vertical, horizontal)`.
    pub stride: [usize; 2],
    /// Padding `(top, bottom, left, right)`.
    pub padding: [usize; 4],
    /// How pooling rounds its output size.
    #[serde(default)]
    pub rounding: Rounding,
}

/// How a convolution pads its input with zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// No padding: only whole windows (`(h - kh) / sh + 1` rows out).
    Valid,
    /// Stride 1 and `kh - 1` rows of zeros, the smaller half on top (PyTorch's rule for an
    /// even kernel): the output has the input's size.
    Same,
    /// Zeros `(top, bottom, left, right)`.
    Explicit([usize; 4]),
}

impl Window {
    /// A convolution's window: `channels` output channels, `kernel` `(kh, kw)`, `stride`
    /// `(sh, sw)` and `padding`, reading images `input` `(c, h, w)`.
    ///
    /// ```
    /// use autoencoder::{LayerKindName, Padding, Window};
    /// # fn main() -> autoencoder::Result<()> {
    /// let same = Window::conv([1, 28, 28], 16, [3, 3], [1, 1], Padding::Same)?;
    /// assert_eq!(same.output(LayerKindName::Conv2d)?, [16, 28, 28]);
    /// let valid = Window::conv([8, 16, 16], 16, [3, 3], [1, 1], Padding::Valid)?;
    /// assert_eq!(valid.output(LayerKindName::Conv2d)?, [16, 14, 14]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for [`Padding::Same`] with a stride other than 1; as
    /// [`Window::output`].
    pub fn conv(
        input: [usize; 3],
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    ) -> Result<Self> {
        let padding = match padding {
            Padding::Valid => [0; 4],
            Padding::Explicit(p) => p,
            Padding::Same if stride == [1, 1] => {
                let (th, tw) = (kernel[0].saturating_sub(1), kernel[1].saturating_sub(1));
                [th / 2, th - th / 2, tw / 2, tw - tw / 2]
            }
            Padding::Same => {
                return Err(Error::InvalidConfig(format!(
                    "'same' padding needs stride 1, found {stride:?}"
                )))
            }
        };
        let window = Window::new(input, channels, kernel, stride, padding, Rounding::Floor);
        window.output(LayerKindName::Conv2d)?;
        Ok(window)
    }

    /// A transposed convolution's window: `channels` output channels, `kernel`, `stride`,
    /// and `padding` `(top, bottom, left, right)` cropped from the full output
    /// `((h - 1) sh + kh, (w - 1) sw + kw)`.
    ///
    /// # Errors
    /// As [`Window::output`].
    pub fn conv_transpose(
        input: [usize; 3],
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
    ) -> Result<Self> {
        let window = Window::new(input, channels, kernel, stride, padding, Rounding::Floor);
        window.output(LayerKindName::ConvTranspose2d)?;
        Ok(window)
    }

    /// A max-pooling window of `kernel` with `stride` over images `input`.
    ///
    /// ```
    /// use autoencoder::{LayerKindName, Rounding, Window};
    /// # fn main() -> autoencoder::Result<()> {
    /// let pool = Window::pool([8, 7, 7], [2, 2], [2, 2], Rounding::Ceil)?;
    /// assert_eq!(pool.output(LayerKindName::MaxPool2d)?, [8, 4, 4]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Window::output`].
    pub fn pool(
        input: [usize; 3],
        kernel: [usize; 2],
        stride: [usize; 2],
        rounding: Rounding,
    ) -> Result<Self> {
        let window = Window::new(input, input[0], kernel, stride, [0; 4], rounding);
        window.output(LayerKindName::MaxPool2d)?;
        Ok(window)
    }

    /// Nearest-neighbour upsampling of images `input` by `scale` `(sh, sw)`.
    ///
    /// # Errors
    /// As [`Window::output`].
    pub fn upsample(input: [usize; 3], scale: [usize; 2]) -> Result<Self> {
        let window = Window::new(input, input[0], scale, scale, [0; 4], Rounding::Floor);
        window.output(LayerKindName::Upsample2d)?;
        Ok(window)
    }

    /// A window with the given fields (see the table on [`Window`]); nothing is checked
    /// until [`Window::output`].
    pub fn new(
        input: [usize; 3],
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        rounding: Rounding,
    ) -> Self {
        Window {
            input,
            channels,
            kernel,
            stride,
            padding,
            rounding,
        }
    }

    /// Width of an input row, `c * h * w` (saturating: an absurd shape fails later checks).
    pub fn n_in(&self) -> usize {
        self.input.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// The output image `(channels, height, width)` of a layer of `kind` with this window.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field for a size of 0, a kernel larger than the
    /// padded input, padding that crops a transposed convolution's whole output, channels
    /// that pooling or upsampling would change, padding on pooling or upsampling, a stride
    /// that differs from the scale on upsampling, rounding up anywhere but pooling, a dense
    /// `kind`, or sizes that overflow.
    pub fn output(&self, kind: LayerKindName) -> Result<[usize; 3]> {
        let bad = |what: String| {
            Err(Error::InvalidConfig(format!(
                "{kind:?} window {self:?}: {what}"
            )))
        };
        let [c, h, w] = self.input;
        if c == 0 || h == 0 || w == 0 || self.channels == 0 {
            return bad("the input and output need at least 1 channel, row and column".into());
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) {
            return bad("kernel and stride need to be at least 1".into());
        }
        if self.rounding == Rounding::Ceil && kind != LayerKindName::MaxPool2d {
            return bad("only pooling rounds its output size up".into());
        }
        let [pt, pb, pl, pr] = self.padding;
        let overflow = || Error::InvalidConfig(format!("{kind:?} window {self:?}: sizes overflow"));
        let side = |n: usize, k: usize, s: usize, before: usize, after: usize| -> Result<usize> {
            match kind {
                LayerKindName::Conv2d => {
                    let padded = n
                        .checked_add(before)
                        .and_then(|x| x.checked_add(after))
                        .ok_or_else(overflow)?;
                    if padded < k {
                        return Err(Error::InvalidConfig(format!(
                            "{kind:?} window {self:?}: a kernel of {k} is larger than the padded input ({padded})"
                        )));
                    }
                    Ok((padded - k) / s + 1)
                }
                LayerKindName::ConvTranspose2d => {
                    let full = (n - 1)
                        .checked_mul(s)
                        .and_then(|x| x.checked_add(k))
                        .ok_or_else(overflow)?;
                    let crop = before.checked_add(after).ok_or_else(overflow)?;
                    if full <= crop {
                        return Err(Error::InvalidConfig(format!(
                            "{kind:?} window {self:?}: padding {crop} crops the whole output ({full})"
                        )));
                    }
                    Ok(full - crop)
                }
                LayerKindName::MaxPool2d => {
                    if n < k {
                        return Err(Error::InvalidConfig(format!(
                            "{kind:?} window {self:?}: a window of {k} is larger than the input ({n})"
                        )));
                    }
                    let out = match self.rounding {
                        Rounding::Floor => (n - k) / s + 1,
                        Rounding::Ceil => (n - k).div_ceil(s) + 1,
                    };
                    // A last window must start inside the input.
                    let past = (out - 1).checked_mul(s).is_none_or(|start| start >= n);
                    Ok(if past { out - 1 } else { out })
                }
                LayerKindName::Upsample2d => n.checked_mul(k).ok_or_else(overflow),
                LayerKindName::Dense => {
                    Err(Error::InvalidConfig("a dense layer has no window".into()))
                }
            }
        };
        if matches!(kind, LayerKindName::MaxPool2d | LayerKindName::Upsample2d) {
            if self.channels != c {
                return bad(format!(
                    "{} input channels cannot become {}",
                    c, self.channels
                ));
            }
            if self.padding != [0; 4] {
                return bad("pooling and upsampling take no padding".into());
            }
            if kind == LayerKindName::Upsample2d && self.stride != self.kernel {
                return bad("upsampling's stride is its scale factor (the kernel)".into());
            }
        }
        let oh = side(h, self.kernel[0], self.stride[0], pt, pb)?;
        let ow = side(w, self.kernel[1], self.stride[1], pl, pr)?;
        [self.channels, oh, ow]
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(overflow)?;
        Ok([self.channels, oh, ow])
    }
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
    /// The geometry of an image layer (absent for dense layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
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
            window: None,
        }
    }

    /// An image layer of `kind` with `window` (its output width is computed from it).
    ///
    /// # Errors
    /// As [`Window::output`].
    pub fn image(kind: LayerKindName, window: Window, activation: Activation) -> Result<Self> {
        let [c, h, w] = window.output(kind)?;
        Ok(LayerSpec {
            n_out: c * h * w,
            activation,
            kind,
            window: Some(window),
        })
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
            self.validate_window(i)?;
            layer.activation.validate().map_err(|e| match e {
                Error::InvalidHyperparameter { .. } => e,
                other => Error::InvalidConfig(format!("layer {i}: {other}")),
            })?;
        }
        let code = &self.layers[self.code_layer()];
        if self.latent == Latent::Gaussian
            && (!code.n_out.is_multiple_of(2) || code.activation != Activation::Identity)
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

    /// An image layer has a window whose input is the width it reads and whose output is
    /// its `n_out`; a dense layer has none.
    fn validate_window(&self, l: usize) -> Result<()> {
        let layer = &self.layers[l];
        match (layer.kind, layer.window) {
            (LayerKindName::Dense, None) => Ok(()),
            (LayerKindName::Dense, Some(_)) => Err(Error::InvalidConfig(format!(
                "layer {l}: a dense layer has no window"
            ))),
            (kind, None) => Err(Error::InvalidConfig(format!(
                "layer {l}: a {kind:?} layer needs its window (input image, kernel, stride, padding)"
            ))),
            (kind, Some(window)) => {
                let [c, h, w] = window
                    .output(kind)
                    .map_err(|e| Error::InvalidConfig(format!("layer {l}: {e}")))?;
                let n_in = self.input_width(l);
                if window.n_in() != n_in || c * h * w != layer.n_out {
                    return Err(Error::ShapeMismatch {
                        context: "Architecture::validate",
                        expected: format!(
                            "layer {l} reading {n_in} values and writing {}",
                            layer.n_out
                        ),
                        found: format!(
                            "a {kind:?} window from {:?} to {:?}",
                            window.input,
                            [c, h, w]
                        ),
                    });
                }
                Ok(())
            }
        }
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
