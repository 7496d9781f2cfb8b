//! `ConvTranspose2d`: the transposed 2-D convolution (the adjoint of [`crate::Conv2d`]'s
//! input gradient), with its hand-derived backward pass.
//!
//! With `W` `(c_in, c_out kh kw)` (PyTorch's `(in, out, kh, kw)` flattened) and one image `x`
//! `(c_in, h w)`: the forward pass writes `Y_col = W^T x` `(c_out kh kw, h w)` and scatters
//! it, `z = col2im(Y_col) + b`, where `col2im` is the one of a convolution reading the
//! *output* image `(c_out, oh, ow)` with the same kernel, stride and padding (each input
//! pixel spreads a `kh x kw` stamp, cropped by the padding). Backward, with `D = dL/dz`:
//!
//! - `D_col = im2col(D)` `(c_out kh kw, h w)` (the adjoint of `col2im`),
//! - `dL/dW += x D_col^T`, `dL/db_c += sum D[c, :]`, `dL/dx = W D_col`.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{LayerKindName, Window};
use crate::budget::check_elements;
use crate::compute::{product, ROW_BLOCKS};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::init::Init;
use crate::layers::conv::{check_params, ConvData};
use crate::layers::images::{
    add_channel_sums, backward_by_blocks, bias_activate, channel_sums, flat, flat_mut,
    forward_by_blocks, infer_kind,
};
use crate::layers::patches::{col2im_add, im2col, Patches};
use crate::layers::scratch::Scratch;
use crate::layers::{LayerKind, ParamKind, ParamVisitor};

/// A transposed 2-D convolution: for each image `x` `(c_in, h, w)`,
/// `z[o, y sh + i - top, x sw + j - left] += W[c, o, i, j] x[c, y, x]` summed over `c`, `i`,
/// `j` and the input positions (entries falling in the padding are cropped), plus `b_o`;
/// `a = s(z)`, `(c_out, (h - 1) sh + kh - top - bottom, (w - 1) sw + kw - left - right)`.
///
/// Shapes: input `(batch, c_in h w)`, weights `(c_in, c_out kh kw)` (model files store
/// PyTorch's `(c_in, c_out, kh, kw)`), bias `(c_out)`, output `(batch, c_out oh ow)`.
///
/// ```
/// use autoencoder::{Activation, ConvTranspose2d, Window};
/// use ndarray::{array, Array2};
/// # fn main() -> autoencoder::Result<()> {
/// // Stride 2, kernel 2: each pixel becomes a 2x2 block (weights of ones).
/// let window = Window::conv_transpose([1, 1, 2], 1, [2, 2], [2, 2], [0; 4])?;
/// let up = ConvTranspose2d::new(window, Array2::ones((1, 4)), array![0.0], Activation::Identity)?;
/// assert_eq!(up.infer(array![[1.0, 2.0]].view())?, array![[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ConvData<T>", bound(deserialize = "T: Float"))]
pub struct ConvTranspose2d<T> {
    window: Window,
    weights: Array2<T>, // (c_in, c_out kh kw)
    bias: Array1<T>,    // (c_out)
    activation: Activation,
    #[serde(skip)]
    patches: Option<Patches>, // of a convolution reading the output image
    #[serde(skip)]
    grad_weights: Array2<T>,
    #[serde(skip)]
    grad_bias: Array1<T>,
    #[serde(skip)]
    bias_sums: Scratch<T>, // per block: its rows' channel sums of dL/dz, (rows, c_out)
    #[serde(skip)]
    partials: Scratch<T>, // per block: its dL/dW, (c_in, c_out kh kw)
    #[serde(skip)]
    scratch: Scratch<T>, // per block: Y_col (c_out kh kw, h w)
}

impl<T: Float> TryFrom<ConvData<T>> for ConvTranspose2d<T> {
    type Error = Error;

    fn try_from(d: ConvData<T>) -> Result<Self> {
        ConvTranspose2d::new(d.window, d.weights, d.bias, d.activation)
    }
}

impl<T: Float> ConvTranspose2d<T> {
    /// A transposed convolution with weights `(c_in, c_out kh kw)` and bias `(c_out)`.
    ///
    /// # Errors
    /// As [`crate::Conv2d::new`].
    pub fn new(
        window: Window,
        weights: Array2<T>,
        bias: Array1<T>,
        activation: Activation,
    ) -> Result<Self> {
        let g = Self::patches(&window)?;
        let shape = (window.input[0], g.rows());
        check_params(
            "ConvTranspose2d",
            &weights,
            shape,
            &bias,
            window.channels,
            activation,
        )?;
        Ok(Self::with_params(window, g, weights, bias, activation))
    }

    /// Weights drawn by `init` (fans `c_out kh kw` and `c_in kh kw`, as PyTorch counts
    /// them for a transposed convolution), zero bias.
    ///
    /// # Errors
    /// As [`crate::Conv2d::new`].
    pub fn random<R: Rng + ?Sized>(
        window: Window,
        activation: Activation,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let g = Self::patches(&window)?;
        activation.validate_for::<T>()?;
        let k = window.kernel[0] * window.kernel[1];
        let c_in = window.input[0];
        let weights = init.draw((c_in, g.rows()), g.rows(), c_in * k, rng);
        let bias = Array1::zeros(window.channels);
        Ok(Self::with_params(window, g, weights, bias, activation))
    }

    fn patches(window: &Window) -> Result<Patches> {
        let [c_out, oh, ow] = window.output(LayerKindName::ConvTranspose2d)?;
        let [c_in, h, w] = window.input;
        let g = Patches {
            c: c_out,
            h: oh,
            w: ow,
            kh: window.kernel[0],
            kw: window.kernel[1],
            sh: window.stride[0],
            sw: window.stride[1],
            top: window.padding[0],
            left: window.padding[2],
            oh: h,
            ow: w,
        };
        check_elements::<T>(
            "convolution weights",
            &[ROW_BLOCKS + 2, c_in, c_out, g.kh, g.kw],
        )?;
        check_elements::<T>("convolution patches", &[c_out, g.kh, g.kw, h, w])?;
        Ok(g)
    }

    fn with_params(
        window: Window,
        patches: Patches,
        weights: Array2<T>,
        bias: Array1<T>,
        activation: Activation,
    ) -> Self {
        let dim = weights.dim();
        ConvTranspose2d {
            window,
            weights: weights.as_standard_layout().into_owned(),
            grad_bias: Array1::zeros(bias.len()),
            bias,
            activation,
            patches: Some(patches),
            grad_weights: Array2::zeros(dim),
            partials: Scratch::default(),
            bias_sums: Scratch::default(),
            scratch: Scratch::default(),
        }
    }

    fn geometry(&self) -> Patches {
        self.patches.expect("every constructor sets the patches")
    }

    /// The geometry.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The output image `(c_out, oh, ow)`.
    pub fn output_shape(&self) -> [usize; 3] {
        let g = self.geometry();
        [g.c, g.h, g.w]
    }

    /// The shape model files give the weights, PyTorch's `(c_in, c_out, kh, kw)`.
    pub fn weight_shape(&self) -> [usize; 4] {
        let w = &self.window;
        [w.input[0], w.channels, w.kernel[0], w.kernel[1]]
    }

    /// Weights `(c_in, c_out kh kw)`.
    pub fn weights(&self) -> ArrayView2<'_, T> {
        self.weights.view()
    }

    /// Bias `(c_out)`.
    pub fn bias(&self) -> ArrayView1<'_, T> {
        self.bias.view()
    }

    /// `dL/dW` accumulated since the last zeroing, `(c_in, c_out kh kw)`.
    pub fn grad_weights(&self) -> ArrayView2<'_, T> {
        self.grad_weights.view()
    }

    /// Forward pass for inference (allocates).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `input` does not have `c_in h w` columns.
    pub fn infer(&self, input: ArrayView2<T>) -> Result<Array2<T>> {
        infer_kind(self, input, "ConvTranspose2d::infer input")
    }
}

impl<T: Float> LayerKind<T> for ConvTranspose2d<T> {
    fn n_in(&self) -> usize {
        self.window.n_in()
    }

    fn n_out(&self) -> usize {
        self.output_shape().iter().product()
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn weights(&self) -> ArrayView2<'_, T> {
        self.weights.view()
    }

    fn bias(&self) -> ArrayView1<'_, T> {
        self.bias.view()
    }

    /// Per image: `Y_col = W^T x`, `z = col2im(Y_col) + b`, `a = s(z)`.
    ///
    /// # Panics
    /// If the shapes disagree or a row of the output buffers is not contiguous (internal
    /// invariants: the model's buffers are).
    fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        let g = self.geometry();
        let work = input.nrows() * self.window.input[0] * g.rows() * g.positions();
        forward_by_blocks(self, input, z, a, work);
    }

    fn per_row(&self) -> bool {
        true
    }

    fn forward_rows(
        &self,
        block: usize,
        x: ArrayView2<T>,
        mut z: ArrayViewMut2<T>,
        mut a: ArrayViewMut2<T>,
    ) {
        let g = self.geometry();
        let (k, p, c_in) = (g.rows(), g.positions(), self.window.input[0]);
        let (w, bias) = (self.weights.view(), flat(self.bias.view()));
        self.scratch.with(block, k * p, |cols| {
            for ((x, z), a) in x.rows().into_iter().zip(z.rows_mut()).zip(a.rows_mut()) {
                let xm = ArrayView2::from_shape((c_in, p), flat(x)).expect("row");
                let mut cm = ArrayViewMut2::from_shape((k, p), &mut *cols).expect("k p");
                product(T::one(), &w.t(), &xm, T::zero(), &mut cm);
                let z = flat_mut(z);
                z.fill(T::zero());
                col2im_add(&g, cols, z);
                bias_activate(bias, self.activation, z, flat_mut(a));
            }
        });
    }

    /// Per image, with `D = dL/dz`: `D_col = im2col(D)`, `dL/dW += x D_col^T`,
    /// `dL/db_c += sum D[c, :]`, `dL/dx = W D_col` (overwritten).
    ///
    /// # Panics
    /// If the shapes disagree or a row of the output buffers is not contiguous (internal
    /// invariants: the model's buffers are).
    fn backward(
        &mut self,
        input: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_input: Option<ArrayViewMut2<T>>,
    ) {
        let g = self.geometry();
        let work = input.nrows() * self.window.input[0] * g.rows() * g.positions() * 2;
        backward_by_blocks(self, input, d_z, d_input, work);
    }

    fn backward_begin(&mut self) {
        self.partials.zero(self.weights.len());
        self.bias_sums.clear();
    }

    fn backward_rows(
        &self,
        block: usize,
        x: ArrayView2<T>,
        d_z: ArrayView2<T>,
        mut d_in: Option<ArrayViewMut2<T>>,
    ) {
        let channels = self.window.channels;
        for d in d_z.rows() {
            self.bias_sums
                .append(block, channels, |sums| channel_sums(flat(d), sums));
        }
        let g = self.geometry();
        let (k, p, c_in) = (g.rows(), g.positions(), self.window.input[0]);
        let w = self.weights.view();
        self.partials.with(block, c_in * k, |partial| {
            let mut dw = ArrayViewMut2::from_shape((c_in, k), partial).expect("c_in k");
            self.scratch.with(block, k * p, |cols| {
                for (b, (x, d)) in x.rows().into_iter().zip(d_z.rows()).enumerate() {
                    im2col(&g, flat(d), cols);
                    let cm = ArrayView2::from_shape((k, p), &*cols).expect("k p");
                    let xm = ArrayView2::from_shape((c_in, p), flat(x)).expect("row");
                    product(T::one(), &xm, &cm.t(), T::one(), &mut dw);
                    if let Some(d_in) = d_in.as_mut() {
                        let dx = flat_mut(d_in.row_mut(b));
                        let mut dxm = ArrayViewMut2::from_shape((c_in, p), dx).expect("row");
                        product(T::one(), &w, &cm, T::zero(), &mut dxm);
                    }
                }
            });
        });
    }

    fn backward_end(&mut self) {
        self.partials
            .add_into(self.grad_weights.as_slice_mut().expect("owned"));
        let grad_bias = self.grad_bias.as_slice_mut().expect("owned");
        self.bias_sums
            .each(|sums| add_channel_sums(sums, grad_bias));
    }

    fn zero_grad(&mut self) {
        self.grad_weights.fill(T::zero());
        self.grad_bias.fill(T::zero());
    }

    fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>) {
        super::visit_weight_and_bias(
            (&mut self.weights, &mut self.grad_weights),
            (&mut self.bias, &mut self.grad_bias),
            f,
        );
    }

    fn param_kinds(&self) -> &'static [ParamKind] {
        &[ParamKind::Weight, ParamKind::Bias]
    }
}
