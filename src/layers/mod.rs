//! Layers: one file per kind, each with its forward pass, its backward pass right below it,
//! its parameters, their gradients and any cached values; [`Layer`] is the list of kinds the
//! model holds.
//!
//! # The interface
//! A layer maps a batch of rows `(batch, n_in)` to `(batch, n_out)` in two steps: the
//! kind's own transform `z = f(X)` (for [`Dense`], `X W + b`), then its element-wise
//! [`Activation`] `a = s(z)`. The model owns the per-batch buffers `z`, `a` and the
//! gradients flowing between layers, allocated once per batch size, and runs the activation's
//! backward itself; a kind implements [`LayerKind`]:
//!
//! - `forward(input, z, a)` writes `z` and `a` into the model's buffers (no allocation);
//! - `backward(input, d_z, d_input)` receives `dL/dz` and the input the forward pass saw,
//!   accumulates the gradients of its own parameters and, if asked, overwrites `d_input`
//!   with `dL/dX`;
//! - `visit_params` walks its parameter tensors with their gradients (the one list the
//!   optimizer, clipping, the gradient norm, weight penalties and files use).
//!
//! The image kinds map each row on its own (`per_row`): their passes are per-block bodies
//! (`forward_rows`; `backward_begin`, `backward_rows`, `backward_end`) that their
//! `forward` and `backward` run over the batch's fixed blocks, and that the model runs a
//! few images at a time through several layers in a row (`model/runs.rs`), with the same
//! bits.
//!
//! Images stay rows (channels first inside a row, as MNIST's 784 pixels are 1x28x28), so
//! losses, penalties, noise, the trainer and files work for every kind unchanged.
//!
//! # Adding a layer kind
//! A new kind is one file here implementing [`LayerKind`], checked by
//! [`crate::gradcheck::check_layer`], plus its registration in [`Layer`] (a variant, its arm
//! in `each_kind!`, [`Layer::spec`] and [`Layer::from_parts`]) and in
//! [`LayerKindName`]. [`crate::internals`] walks through a whole kind.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{LayerKindName, LayerSpec};
use crate::error::Result;
use crate::float::Float;

mod conv;
mod conv_direct;
mod conv_taps;
mod conv_transpose;
mod dense;
mod images;
mod patches;
mod pool;
mod scratch;
mod upsample;

pub use conv::Conv2d;
pub use conv_transpose::ConvTranspose2d;
pub use dense::Dense;
pub use pool::MaxPool2d;
pub use upsample::Upsample2d;

/// What a parameter tensor is, for optimizers that treat weights and biases differently
/// (weight decay skips biases) and for weight penalties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A weight matrix.
    Weight,
    /// A bias vector.
    Bias,
}

/// What [`LayerKind::visit_params`] calls for each parameter tensor: `f(param, grad, kind)`.
pub type ParamVisitor<'a, T> = dyn FnMut(&mut [T], &mut [T], ParamKind) + 'a;

/// The visit of a kind with one weight tensor and one bias (dense and convolution layers):
/// the weights with their gradient, then the bias with its gradient, as flat slices.
pub(crate) fn visit_weight_and_bias<T: Float, D: ndarray::Dimension>(
    (weights, grad_weights): (&mut ndarray::Array<T, D>, &mut ndarray::Array<T, D>),
    (bias, grad_bias): (&mut Array1<T>, &mut Array1<T>),
    f: &mut ParamVisitor<'_, T>,
) {
    let contiguous = "parameters and gradients are in standard layout";
    let w = weights.as_slice_mut().expect(contiguous);
    let gw = grad_weights.as_slice_mut().expect(contiguous);
    f(w, gw, ParamKind::Weight);
    let b = bias.as_slice_mut().expect(contiguous);
    let gb = grad_bias.as_slice_mut().expect(contiguous);
    f(b, gb, ParamKind::Bias);
}

/// The interface every layer kind implements: a forward pass into the model's buffers, its
/// backward pass, and its parameters with their gradients. [`crate::internals`] shows a whole
/// kind.
pub trait LayerKind<T: Float> {
    /// Width of one input row.
    fn n_in(&self) -> usize;

    /// Width of one output row.
    fn n_out(&self) -> usize;

    /// The element-wise activation applied after the kind's transform.
    fn activation(&self) -> Activation;

    /// The weight matrix (empty for kinds without weights).
    fn weights(&self) -> ArrayView2<'_, T>;

    /// The bias vector (empty for kinds without a bias).
    fn bias(&self) -> ArrayView1<'_, T>;

    /// Forward pass into the model's buffers: `z = f(input)`, `a = s(z)`; `input` is
    /// `(batch, n_in)`, `z` and `a` are `(batch, n_out)`. Allocates nothing.
    fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>);

    /// Backward pass: given `d_z = dL/dz` `(batch, n_out)` and the `input` the forward pass
    /// saw, accumulates the parameter gradients and, if `d_input` is given, overwrites it
    /// with `dL/dinput` `(batch, n_in)`. Allocates nothing.
    fn backward(
        &mut self,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    );

    /// Sets every parameter gradient to 0.
    fn zero_grad(&mut self);

    /// Whether the kind maps each row (image) on its own, through [`LayerKind::forward_rows`]
    /// and [`LayerKind::backward_rows`]: the model then runs a few images at a time through
    /// several such layers in a row, while they are in the core's cache. The image kinds
    /// are; [`Dense`] is not (its product wants the whole batch).
    fn per_row(&self) -> bool {
        false
    }

    /// Forward pass of some rows of fixed block `block` of the batch (one of
    /// `compute::ROW_BLOCKS`, whose scratch buffers it uses), on the calling thread: what
    /// [`LayerKind::forward`] does to those rows, bit for bit. Per-row kinds only.
    fn forward_rows(
        &self,
        block: usize,
        input: ArrayView2<T>,
        z: ArrayViewMut2<T>,
        a: ArrayViewMut2<T>,
    ) {
        let _ = block;
        self.forward(input, z, a);
    }

    /// Starts a backward pass made of [`LayerKind::backward_rows`] calls (zeroes the blocks'
    /// partial gradients). Per-row kinds only.
    fn backward_begin(&mut self) {}

    /// Backward pass of some rows of fixed block `block`, on the calling thread: adds their
    /// parameter gradients to the block's partial sums (rows of a block in order) and, if
    /// asked, overwrites `d_input`. Per-row kinds only.
    ///
    /// # Panics
    /// For a kind that is not per row (an internal invariant: the model asks only those).
    fn backward_rows(
        &self,
        block: usize,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    ) {
        let _ = (block, input, d_z, d_input);
        unreachable!("backward_rows of a kind that is not per row");
    }

    /// Ends a backward pass made of [`LayerKind::backward_rows`] calls: adds the blocks'
    /// partial sums to the parameter gradients in block order (and the rows' bias sums in
    /// row order). Per-row kinds only.
    fn backward_end(&mut self) {}

    /// Calls `f(param, grad, kind)` for each parameter tensor, as flat row-major slices, in
    /// a fixed order (weights, then bias).
    fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>);

    /// The tensors [`LayerKind::visit_params`] visits, in its order.
    fn param_kinds(&self) -> &'static [ParamKind];
}

/// One layer of a model: the list of layer kinds. `#[non_exhaustive]`: kinds are added
/// without a major version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Float"))]
#[non_exhaustive]
pub enum Layer<T> {
    /// A fully connected layer.
    Dense(Dense<T>),
    /// A 2-D convolution.
    Conv2d(Conv2d<T>),
    /// A 2-D transposed convolution.
    ConvTranspose2d(ConvTranspose2d<T>),
    /// 2-D max pooling.
    MaxPool2d(MaxPool2d<T>),
    /// 2-D nearest-neighbour upsampling.
    Upsample2d(Upsample2d<T>),
}

/// Runs `$body` with `$layer` bound to the kind inside `$self` (the one dispatch).
macro_rules! each_kind {
    ($self:expr, $layer:ident => $body:expr) => {
        match $self {
            Layer::Dense($layer) => $body,
            Layer::Conv2d($layer) => $body,
            Layer::ConvTranspose2d($layer) => $body,
            Layer::MaxPool2d($layer) => $body,
            Layer::Upsample2d($layer) => $body,
        }
    };
}

impl<T: Float> Layer<T> {
    /// Width of one input row.
    pub fn n_in(&self) -> usize {
        each_kind!(self, l => l.n_in())
    }

    /// Width of one output row.
    pub fn n_out(&self) -> usize {
        each_kind!(self, l => l.n_out())
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        each_kind!(self, l => l.activation())
    }

    /// The weight matrix (empty for kinds without weights); for [`Dense`], `(n_in, n_out)`.
    pub fn weights(&self) -> ArrayView2<'_, T> {
        each_kind!(self, l => l.weights())
    }

    /// The bias vector (empty for kinds without a bias).
    pub fn bias(&self) -> ArrayView1<'_, T> {
        each_kind!(self, l => l.bias())
    }

    /// Number of parameters (weights and bias).
    pub fn n_params(&self) -> usize {
        self.weights().len() + self.bias().len()
    }

    /// The layer's description, for [`crate::Architecture`] and files.
    pub fn spec(&self) -> LayerSpec {
        let image = |kind, window| LayerSpec {
            window: Some(window),
            ..LayerSpec::new(kind, self.n_out(), self.activation())
        };
        match self {
            Layer::Dense(l) => LayerSpec::new(LayerKindName::Dense, l.n_out(), l.activation()),
            Layer::Conv2d(l) => image(LayerKindName::Conv2d, l.window()),
            Layer::ConvTranspose2d(l) => image(LayerKindName::ConvTranspose2d, l.window()),
            Layer::MaxPool2d(l) => image(LayerKindName::MaxPool2d, l.window()),
            Layer::Upsample2d(l) => image(LayerKindName::Upsample2d, l.window()),
        }
    }

    /// The dense layer inside, if this is one.
    pub fn as_dense(&self) -> Option<&Dense<T>> {
        match self {
            Layer::Dense(l) => Some(l),
            _ => None,
        }
    }

    /// The dense layer inside, mutably, if this is one.
    pub fn as_dense_mut(&mut self) -> Option<&mut Dense<T>> {
        match self {
            Layer::Dense(l) => Some(l),
            _ => None,
        }
    }

    /// The shape of the weight tensor in model files: `(n_in, n_out)` for [`Dense`],
    /// PyTorch's `(c_out, c_in, kh, kw)` for [`Conv2d`] and `(c_in, c_out, kh, kw)` for
    /// [`ConvTranspose2d`]; `None` for kinds without parameters.
    pub fn weight_file_shape(&self) -> Option<Vec<usize>> {
        match self {
            Layer::Dense(l) => Some(vec![l.n_in(), l.n_out()]),
            Layer::Conv2d(l) => Some(l.weight_shape().to_vec()),
            Layer::ConvTranspose2d(l) => Some(l.weight_shape().to_vec()),
            Layer::MaxPool2d(_) | Layer::Upsample2d(_) => None,
        }
    }

    /// Forward pass; see [`LayerKind::forward`].
    pub fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        each_kind!(self, l => l.forward(input, z, a))
    }

    /// Backward pass; see [`LayerKind::backward`].
    pub fn backward(
        &mut self,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    ) {
        each_kind!(self, l => l.backward(input, d_z, d_input))
    }

    /// Sets every parameter gradient to 0.
    pub fn zero_grad(&mut self) {
        each_kind!(self, l => l.zero_grad())
    }

    /// See [`LayerKind::per_row`].
    pub(crate) fn per_row(&self) -> bool {
        each_kind!(self, l => l.per_row())
    }

    /// See [`LayerKind::forward_rows`].
    pub(crate) fn forward_rows(
        &self,
        block: usize,
        input: ArrayView2<T>,
        z: ArrayViewMut2<T>,
        a: ArrayViewMut2<T>,
    ) {
        each_kind!(self, l => l.forward_rows(block, input, z, a))
    }

    /// See [`LayerKind::backward_begin`].
    pub(crate) fn backward_begin(&mut self) {
        each_kind!(self, l => l.backward_begin())
    }

    /// See [`LayerKind::backward_rows`].
    pub(crate) fn backward_rows(
        &self,
        block: usize,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    ) {
        each_kind!(self, l => l.backward_rows(block, input, d_z, d_input))
    }

    /// See [`LayerKind::backward_end`].
    pub(crate) fn backward_end(&mut self) {
        each_kind!(self, l => l.backward_end())
    }

    /// Visits the parameter tensors; see [`LayerKind::visit_params`].
    pub fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>) {
        each_kind!(self, l => l.visit_params(f))
    }

    /// The tensors [`Layer::visit_params`] visits, in its order.
    pub fn param_kinds(&self) -> &'static [ParamKind] {
        each_kind!(self, l => l.param_kinds())
    }

    /// Inference: `a = s(f(input))`, `(batch, n_out)` (allocates).
    pub(crate) fn infer_unchecked(&self, input: ArrayView2<T>) -> Array2<T> {
        let mut z = Array2::zeros((input.nrows(), self.n_out()));
        let mut a = Array2::zeros((input.nrows(), self.n_out()));
        self.forward(input, z.view_mut(), a.view_mut());
        a
    }

    /// Rebuilds a layer of the kind `spec` names from its input width and its stored
    /// parameters (the registration point for files).
    ///
    /// # Errors
    /// As the kind's constructor: shapes that do not fit the spec, non-finite values, an
    /// activation out of range.
    pub fn from_parts(
        spec: &LayerSpec,
        n_in: usize,
        weights: Array2<T>,
        bias: Array1<T>,
    ) -> Result<Self> {
        let window = || {
            spec.window.ok_or_else(|| {
                crate::error::Error::InvalidConfig(format!(
                    "a {:?} layer needs its window",
                    spec.kind
                ))
            })
        };
        let layer = match spec.kind {
            LayerKindName::Dense => return Self::dense_from_parts(spec, n_in, weights, bias),
            LayerKindName::Conv2d => {
                Layer::Conv2d(Conv2d::new(window()?, weights, bias, spec.activation)?)
            }
            LayerKindName::ConvTranspose2d => Layer::ConvTranspose2d(ConvTranspose2d::new(
                window()?,
                weights,
                bias,
                spec.activation,
            )?),
            LayerKindName::MaxPool2d => {
                Layer::MaxPool2d(MaxPool2d::new(window()?, spec.activation)?)
            }
            LayerKindName::Upsample2d => {
                Layer::Upsample2d(Upsample2d::new(window()?, spec.activation)?)
            }
        };
        if (layer.n_in(), layer.n_out()) != (n_in, spec.n_out) {
            return Err(crate::error::Error::ShapeMismatch {
                context: "Layer::from_parts",
                expected: format!("a layer from {n_in} to {} values", spec.n_out),
                found: format!(
                    "a {:?} layer from {} to {}",
                    spec.kind,
                    layer.n_in(),
                    layer.n_out()
                ),
            });
        }
        Ok(layer)
    }

    fn dense_from_parts(
        spec: &LayerSpec,
        n_in: usize,
        weights: Array2<T>,
        bias: Array1<T>,
    ) -> Result<Self> {
        {
            {
                let layer = Dense::new(weights, bias, spec.activation)?;
                if (layer.n_in(), layer.n_out()) != (n_in, spec.n_out) {
                    return Err(crate::error::Error::ShapeMismatch {
                        context: "Layer::from_parts",
                        expected: format!("weights ({n_in}, {})", spec.n_out),
                        found: format!("{:?}", layer.weights().dim()),
                    });
                }
                Ok(Layer::Dense(layer))
            }
        }
    }
}

impl<T: Float> Layer<T> {
    /// The shape files give the weight tensor of a layer of `spec` reading rows `n_in`
    /// wide (see [`Layer::weight_file_shape`]), and the length of its bias; `None` for kinds
    /// without parameters. `spec` has been validated (an image kind has its window).
    pub(crate) fn param_shapes(spec: &LayerSpec, n_in: usize) -> Option<(Vec<usize>, usize)> {
        match (spec.kind, spec.window) {
            (LayerKindName::Dense, _) => Some((vec![n_in, spec.n_out], spec.n_out)),
            (LayerKindName::Conv2d, Some(w)) => Some((
                vec![w.channels, w.input[0], w.kernel[0], w.kernel[1]],
                w.channels,
            )),
            (LayerKindName::ConvTranspose2d, Some(w)) => Some((
                vec![w.input[0], w.channels, w.kernel[0], w.kernel[1]],
                w.channels,
            )),
            _ => None, // no parameters, or no window (which `from_parts` refuses)
        }
    }
}

macro_rules! from_kind {
    ($($kind:ident),*) => {$(
        impl<T> From<$kind<T>> for Layer<T> {
            fn from(layer: $kind<T>) -> Self {
                Layer::$kind(layer)
            }
        }
    )*};
}

from_kind!(Dense, Conv2d, ConvTranspose2d, MaxPool2d, Upsample2d);
