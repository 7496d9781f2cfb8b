//! Building a model as a sequence of layers that tracks the image shape from layer to layer:
//! the builder for convolutional autoencoders (and any mix of image and dense layers).

use rand::Rng;

use crate::activation::Activation;
use crate::architecture::{Padding, Rounding, Window};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::init::Init;
use crate::layers::{Conv2d, ConvTranspose2d, Dense, Layer, MaxPool2d, Upsample2d};
use crate::model::Autoencoder;

/// One step of a [`SequenceBuilder`].
#[derive(Debug, Clone, Copy)]
enum Step {
    Conv {
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
        activation: Activation,
    },
    ConvTranspose {
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        activation: Activation,
    },
    MaxPool {
        size: [usize; 2],
        rounding: Rounding,
    },
    Upsample {
        scale: [usize; 2],
    },
    Dense {
        n_out: usize,
        activation: Activation,
    },
    Reshape([usize; 3]),
    Code,
}

impl<T: Float> Autoencoder<T> {
    /// Starts a layer sequence reading images `input` `(channels, height, width)` (rows of
    /// `c h w` values, channels first); see [`SequenceBuilder`].
    ///
    /// ```
    /// use autoencoder::{Activation::{Relu, Sigmoid}, Autoencoder, Padding::Same, Rounding};
    /// use rand::SeedableRng;
    /// # fn main() -> autoencoder::Result<()> {
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    /// let ae = Autoencoder::<f32>::sequence([1, 28, 28])
    ///     .conv(8, 3, Same, Relu)
    ///     .max_pool(2, Rounding::Floor) // 8x14x14
    ///     .conv(4, 3, Same, Relu)
    ///     .max_pool(2, Rounding::Floor) // 4x7x7: the code
    ///     .code()
    ///     .conv(4, 3, Same, Relu)
    ///     .upsample(2)
    ///     .conv(8, 3, Same, Relu)
    ///     .upsample(2)
    ///     .conv(1, 3, Same, Sigmoid)
    ///     .build(&mut rng)?;
    /// assert_eq!(ae.n_latent(), 4 * 7 * 7);
    /// assert_eq!(ae.n_in(), 784);
    /// # Ok(()) }
    /// ```
    pub fn sequence(input: [usize; 3]) -> SequenceBuilder<T> {
        SequenceBuilder {
            input,
            steps: Vec::new(),
            init: None,
            element: std::marker::PhantomData,
        }
    }
}

/// Builder of an autoencoder as a list of layers, for convolutional models; see
/// [`Autoencoder::sequence`]. Each step reads the image shape the step before it left
/// (a dense layer leaves `(n, 1, 1)`), so only output channels, kernels and strides are
/// given. Nothing is checked until [`SequenceBuilder::build`].
///
/// | method | layer | output shape from `(c, h, w)` |
/// | --- | --- | --- |
/// | `conv(c_out, k, padding, s)` | [`Conv2d`], `k x k`, stride 1 | `(c_out, h', w')`, see [`Padding`] |
/// | `conv_strided(c_out, [kh, kw], [sh, sw], padding, s)` | [`Conv2d`] | see [`Window`] |
/// | `conv_transpose(c_out, [kh, kw], [sh, sw], [t, b, l, r], s)` | [`ConvTranspose2d`] | `(c_out, (h - 1) sh + kh - t - b, ...)` |
/// | `max_pool(k, rounding)` | [`MaxPool2d`], `k x k`, stride `k` | `(c, h / k, w / k)` rounded |
/// | `upsample(k)` | [`Upsample2d`], nearest | `(c, k h, k w)` |
/// | `dense(n, s)` | [`Dense`] | `(n, 1, 1)` |
/// | `reshape([c, h, w])` | none: the next layer reads rows as `(c, h, w)` | `(c, h, w)`, same width |
/// | `code()` | none: the last layer so far is the code layer | |
/// | `init(i)` | | weights of every layer drawn by `i` (default: [`Init::default_for`] each activation) |
///
/// Pooling and upsampling have the identity activation (put the activation on the
/// convolution before them, as `ReLU` then pool).
#[derive(Debug, Clone)]
pub struct SequenceBuilder<T> {
    input: [usize; 3],
    steps: Vec<Step>,
    init: Option<Init>,
    element: std::marker::PhantomData<T>,
}

impl<T: Float> SequenceBuilder<T> {
    fn push(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// A `kernel x kernel` convolution with stride 1 and `channels` outputs.
    pub fn conv(
        self,
        channels: usize,
        kernel: usize,
        padding: Padding,
        activation: Activation,
    ) -> Self {
        self.conv_strided(channels, [kernel, kernel], [1, 1], padding, activation)
    }

    /// A convolution with any kernel and stride.
    pub fn conv_strided(
        self,
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
        activation: Activation,
    ) -> Self {
        self.push(Step::Conv {
            channels,
            kernel,
            stride,
            padding,
            activation,
        })
    }

    /// A transposed convolution; `padding` `(top, bottom, left, right)` is cropped from the
    /// output.
    pub fn conv_transpose(
        self,
        channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        activation: Activation,
    ) -> Self {
        self.push(Step::ConvTranspose {
            channels,
            kernel,
            stride,
            padding,
            activation,
        })
    }

    /// `size x size` max pooling with stride `size`.
    pub fn max_pool(self, size: usize, rounding: Rounding) -> Self {
        self.push(Step::MaxPool {
            size: [size, size],
            rounding,
        })
    }

    /// Nearest-neighbour upsampling by `scale` in both directions.
    pub fn upsample(self, scale: usize) -> Self {
        self.push(Step::Upsample {
            scale: [scale, scale],
        })
    }

    /// A dense layer of `n_out` units (it reads the whole row, whatever the image shape).
    pub fn dense(self, n_out: usize, activation: Activation) -> Self {
        self.push(Step::Dense { n_out, activation })
    }

    /// Reads the rows from here on as images `shape` (the width must not change).
    pub fn reshape(self, shape: [usize; 3]) -> Self {
        self.push(Step::Reshape(shape))
    }

    /// Ends the encoder: the last layer added so far is the code layer.
    pub fn code(self) -> Self {
        self.push(Step::Code)
    }

    /// Draws every layer's weights with `init`.
    pub fn init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    /// Builds the model, drawing the weights from `rng` in layer order.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the step for a window that does not fit the shape it
    /// reads (as [`Window::output`]), a reshape that changes the width, no `code()` or more
    /// than one, or a code with no layer before or after it; [`Error::ShapeMismatch`] if the
    /// output width differs from the input's; as the layers' constructors.
    pub fn build<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Autoencoder<T>> {
        let mut shape = self.input;
        let mut layers: Vec<Layer<T>> = Vec::new();
        let mut n_encoder = None;
        let init = |s: Activation| self.init.unwrap_or_else(|| Init::default_for(s));
        for (i, step) in self.steps.iter().enumerate() {
            let fail = |e: Error| match e {
                Error::InvalidConfig(m) => Error::InvalidConfig(format!("sequence step {i}: {m}")),
                other => other,
            };
            let layer: Layer<T> = match *step {
                Step::Conv {
                    channels,
                    kernel,
                    stride,
                    padding,
                    activation,
                } => {
                    let window =
                        Window::conv(shape, channels, kernel, stride, padding).map_err(fail)?;
                    Conv2d::random(window, activation, init(activation), rng)?.into()
                }
                Step::ConvTranspose {
                    channels,
                    kernel,
                    stride,
                    padding,
                    activation,
                } => {
                    let window = Window::conv_transpose(shape, channels, kernel, stride, padding)
                        .map_err(fail)?;
                    ConvTranspose2d::random(window, activation, init(activation), rng)?.into()
                }
                Step::MaxPool { size, rounding } => {
                    let window = Window::pool(shape, size, size, rounding).map_err(fail)?;
                    MaxPool2d::new(window, Activation::Identity)?.into()
                }
                Step::Upsample { scale } => {
                    let window = Window::upsample(shape, scale).map_err(fail)?;
                    Upsample2d::new(window, Activation::Identity)?.into()
                }
                Step::Dense { n_out, activation } => {
                    let n_in = shape.iter().product();
                    Dense::random(n_in, n_out, activation, init(activation), rng)?.into()
                }
                Step::Reshape(to) => {
                    let (from, width) = (
                        shape.iter().product::<usize>(),
                        to.iter().product::<usize>(),
                    );
                    if from != width || width == 0 {
                        return Err(Error::InvalidConfig(format!(
                            "sequence step {i}: cannot reshape {shape:?} ({from} values) to {to:?}"
                        )));
                    }
                    shape = to;
                    continue;
                }
                Step::Code => {
                    if n_encoder.is_some() || layers.is_empty() {
                        return Err(Error::InvalidConfig(format!(
                            "sequence step {i}: code() comes once, after at least one layer"
                        )));
                    }
                    n_encoder = Some(layers.len());
                    continue;
                }
            };
            shape = match &layer {
                Layer::Conv2d(l) => l.output_shape(),
                Layer::ConvTranspose2d(l) => l.output_shape(),
                Layer::MaxPool2d(l) => l.output_shape(),
                Layer::Upsample2d(l) => l.output_shape(),
                other => [other.n_out(), 1, 1],
            };
            layers.push(layer);
        }
        let Some(n_encoder) = n_encoder else {
            return Err(Error::InvalidConfig(
                "a sequence needs code() after the code layer".into(),
            ));
        };
        let decoder = layers.split_off(n_encoder);
        Autoencoder::from_layers(layers, decoder)
    }
}
