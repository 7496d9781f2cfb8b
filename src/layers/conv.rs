//! `Conv2d`: a 2-D convolution over images stored as rows (channels first), with its
//! hand-derived backward pass (`im2col` and `col2im` are in `patches.rs`, shared with
//! [`crate::ConvTranspose2d`]; what every image layer shares is in `images.rs`).
//!
//! # The computation (im2col and the crate's matrix product)
//! For one image `x` `(c_in, h, w)`, `im2col` writes the patch matrix `X_col`
//! `(c_in kh kw, oh ow)`: `X_col[(c, i, j), (y, x)] = x[c, y sh + i - top, x sw + j - left]`,
//! 0 outside the image (the zero padding). With `W` `(c_out, c_in kh kw)` (PyTorch's
//! `(out, in, kh, kw)`, flattened) the pre-activation of the image is one product,
//! `Z = W X_col + b` `(c_out, oh ow)`, which is exactly the image's output row, channels
//! first. Backward, with `D = dL/dZ` `(c_out, oh ow)`:
//!
//! - `dL/dW += D X_col^T` (summed over the images of the batch),
//! - `dL/db_c += sum_(y, x) D[c, (y, x)]`,
//! - `dL/dX_col = W^T D`, and `dL/dx = col2im(dL/dX_col)`: each patch entry adds its
//!   gradient back to the pixel it was copied from (entries read from the padding are dropped).
//!
//! With both strides 1 (the common case), the forward product packs `X_col` straight from
//! the image's zero-padded planes (`PaddedPatches`: runs of `ow` values, no bounds to clip,
//! and no copy of the matrix before the product's own); backward writes `X_col` from them,
//! and `col2im` adds into them (`col2im_padded`). The weight gradient is computed as
//! `dL/dW^T += X_col D^T`, so that `X_col` is read in place and only `D` is packed; each
//! element gets the same sum in the same order as from `D X_col^T`, bit for bit.
//!
//! A batch is cut into the crate's 8 fixed blocks of rows, which run on the pool's threads;
//! each block keeps its own patch buffer and its own partial `dL/dW`, and the 8 partials
//! are added in block order, so the bits do not depend on the thread count.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{LayerKindName, Window};
use crate::budget::check_elements;
use crate::compute::{product, product_rows, RowsB, KC, ROW_BLOCKS};
use crate::data::check_finite;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::init::Init;
use crate::layers::conv_direct::{self as direct, Plane};
use crate::layers::conv_taps::{input_grad_by_taps, weight_grad_by_taps};
use crate::layers::images::{
    add_channel_sums, backward_by_blocks, bias_activate, channel_sums, flat, flat_mut,
    forward_by_blocks, infer_kind,
};
use crate::layers::patches::{im2col, unpatch_into, PaddedPatches, Patches};
use crate::layers::scratch::Scratch;
use crate::layers::{LayerKind, ParamKind, ParamVisitor};

/// Convolutions with fewer output channels than this (and stride 1) run the direct kernels.
const DIRECT_BELOW: usize = 4;

/// The weight gradient goes tap by tap from this many output channels on (its products
/// are then `c_out` wide; narrower, the patch matrix's one product is faster).
const DW_BY_TAPS_FROM: usize = 32;

/// A 2-D convolution: for each image (row) `x` `(c_in, h, w)`,
/// `z[o, y, x] = b_o + sum_(c, i, j) W[o, c, i, j] x[c, y sh + i - top, x sw + j - left]`
/// (0 outside the image), `a = s(z)`, `(c_out, oh, ow)`; see [`Window`] for the sizes.
///
/// Shapes, for a batch of `batch` images: input `(batch, c_in h w)`, weights `W`
/// `(c_out, c_in kh kw)` (PyTorch's `(out, in, kh, kw)` flattened; model files store the
/// 4-D shape), bias `(c_out)`, `z` and `a` `(batch, c_out oh ow)`. The module docs derive
/// the backward pass.
///
/// ```
/// use autoencoder::{Activation, Conv2d, Padding, Window};
/// use ndarray::{array, Array2};
/// # fn main() -> autoencoder::Result<()> {
/// // One 3x3 channel, a 2x2 kernel of ones, 'valid': each output sums a 2x2 patch.
/// let window = Window::conv([1, 3, 3], 1, [2, 2], [1, 1], Padding::Valid)?;
/// let conv = Conv2d::new(window, Array2::ones((1, 4)), array![0.5], Activation::Identity)?;
/// let x = array![[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
/// assert_eq!(conv.infer(x.view())?, array![[12.5, 16.5, 24.5, 28.5]]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ConvData<T>", bound(deserialize = "T: Float"))]
pub struct Conv2d<T> {
    window: Window,
    weights: Array2<T>, // (c_out, c_in kh kw)
    bias: Array1<T>,    // (c_out)
    activation: Activation,
    #[serde(skip)]
    patches: Option<Patches>,
    #[serde(skip)]
    grad_weights: Array2<T>, // (c_out, c_in kh kw), dL/dW, accumulated
    #[serde(skip)]
    grad_bias: Array1<T>, // (c_out), dL/db, accumulated
    #[serde(skip)]
    bias_sums: Scratch<T>, // per block: its rows' channel sums of dL/dz, (rows, c_out)
    #[serde(skip)]
    partials: Scratch<T>, // per block: its dL/dW, (c_out, c_in kh kw)
    #[serde(skip)]
    scratch: Scratch<T>, // per block: X_col and dL/dX_col, (c_in kh kw, oh ow) each
    #[serde(skip)]
    weights_t: Vec<T>, // (c_in kh kw, c_out): W^T in rows, for dL/dX_col = W^T D
    #[serde(skip)]
    taps: Vec<usize>, // stride 1: where each row of X_col starts in the padded planes
    #[serde(skip)]
    wide_rows: Vec<usize>, // stride 1: (c_out), where each channel of D (plane's stride) starts
    #[serde(skip)]
    wide_positions: Vec<usize>, // stride 1: (oh wp), where each position of D^T starts
}

/// What serde reads, before [`Conv2d::new`] checks it (also [`crate::ConvTranspose2d`]'s).
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Float"))]
pub(super) struct ConvData<T> {
    pub window: Window,
    pub weights: Array2<T>,
    pub bias: Array1<T>,
    pub activation: Activation,
}

impl<T: Float> TryFrom<ConvData<T>> for Conv2d<T> {
    type Error = Error;

    fn try_from(d: ConvData<T>) -> Result<Self> {
        Conv2d::new(d.window, d.weights, d.bias, d.activation)
    }
}

/// Checks the parameters of a convolution-like layer: `weights` `(rows, cols)`, `bias`
/// `(n_bias)`, finite, the activation valid, and the buffers of `extra` elements in budget.
pub(super) fn check_params<T: Float>(
    context: &'static str,
    weights: &Array2<T>,
    (rows, cols): (usize, usize),
    bias: &Array1<T>,
    n_bias: usize,
    activation: Activation,
) -> Result<()> {
    if weights.dim() != (rows, cols) || bias.len() != n_bias {
        return Err(Error::ShapeMismatch {
            context,
            expected: format!("weights ({rows}, {cols}) and bias ({n_bias})"),
            found: format!("weights {:?}, bias ({})", weights.dim(), bias.len()),
        });
    }
    activation.validate_for::<T>()?;
    check_finite(weights.view(), context)?;
    check_finite(bias.view().insert_axis(Axis(0)), context)
}

impl<T: Float> Conv2d<T> {
    /// A convolution with the given weights `(c_out, c_in kh kw)` and bias `(c_out)`.
    ///
    /// # Errors
    /// As [`Window::output`] for the window; [`Error::ShapeMismatch`] for weights or bias of
    /// other shapes; [`Error::NonFiniteData`] for a NaN or infinite parameter;
    /// [`Error::InvalidHyperparameter`] for an activation parameter out of range;
    /// [`Error::TooLarge`] for buffers over [`crate::memory_limit`].
    pub fn new(
        window: Window,
        weights: Array2<T>,
        bias: Array1<T>,
        activation: Activation,
    ) -> Result<Self> {
        let patches = Self::patches(&window)?;
        let shape = (window.channels, patches.rows());
        check_params(
            "Conv2d",
            &weights,
            shape,
            &bias,
            window.channels,
            activation,
        )?;
        Ok(Self::with_params(
            window, patches, weights, bias, activation,
        ))
    }

    /// A convolution with weights drawn by `init` (fans `c_in kh kw` and `c_out kh kw`) and
    /// zero bias.
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    pub fn random<R: Rng + ?Sized>(
        window: Window,
        activation: Activation,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let patches = Self::patches(&window)?;
        activation.validate_for::<T>()?;
        let k = window.kernel[0] * window.kernel[1];
        let weights = init.draw(
            (window.channels, patches.rows()),
            patches.rows(),
            window.channels * k,
            rng,
        );
        let bias = Array1::zeros(window.channels);
        Ok(Self::with_params(
            window, patches, weights, bias, activation,
        ))
    }

    /// The patch geometry of `window`, with every buffer size checked against the budget.
    fn patches(window: &Window) -> Result<Patches> {
        let [_, oh, ow] = window.output(LayerKindName::Conv2d)?;
        let [c, h, w] = window.input;
        let g = Patches {
            c,
            h,
            w,
            kh: window.kernel[0],
            kw: window.kernel[1],
            sh: window.stride[0],
            sw: window.stride[1],
            top: window.padding[0],
            left: window.padding[2],
            oh,
            ow,
        };
        check_elements::<T>(
            "convolution weights",
            &[ROW_BLOCKS + 3, window.channels, c, g.kh, g.kw],
        )?;
        check_elements::<T>("convolution patches", &[2, c, g.kh, g.kw, oh, ow])?;
        // The direct kernels' buffers: 2 c_in padded planes and c_out outputs of about
        // `(h + top + bottom) (w + left + right) + kw` values each, and c_out outputs of
        // twice that (with margins); sizes the window checked.
        let [pt, pb, pl, pr] = window.padding;
        let (hp, wp) = (h + pt + pb, w + pl + pr);
        let plane = hp.checked_mul(wp).and_then(|n| n.checked_add(g.kw));
        let outputs = window.channels.checked_mul(3);
        let planes = outputs.and_then(|n| n.checked_add(2 * c));
        check_elements::<T>(
            "convolution planes",
            &[plane.unwrap_or(usize::MAX), planes.unwrap_or(usize::MAX)],
        )?;
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
        let taps = Plane::of(&patches).map_or(Vec::new(), |plane| {
            (0..patches.rows())
                .map(|t| plane.tap(&patches, t))
                .collect()
        });
        Conv2d {
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
            weights_t: vec![T::zero(); dim.0 * dim.1],
            taps,
            wide_rows: Plane::of(&patches).map_or(Vec::new(), |plane| {
                (0..dim.0).map(|o| o * plane.out).collect()
            }),
            wide_positions: Plane::of(&patches).map_or(Vec::new(), |plane| {
                (0..plane.out).map(|q| q * dim.0).collect()
            }),
        }
    }

    fn geometry(&self) -> Patches {
        self.patches
            .expect("every constructor (and deserialization, through new) sets the patches")
    }

    /// The direct kernels' plane, for the layers they are faster for: stride 1 and fewer
    /// than 4 output channels (measured with `cargo bench --bench conv`: with more, the
    /// matrix product's register tiles are full and it wins; with 1 or 2, 2-6 times slower).
    fn plane(&self) -> Option<Plane> {
        Plane::of(&self.geometry()).filter(|_| self.window.channels < DIRECT_BELOW)
    }

    /// The geometry: input image, output channels, kernel, stride, padding.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The output image `(c_out, oh, ow)`.
    pub fn output_shape(&self) -> [usize; 3] {
        let g = self.geometry();
        [self.window.channels, g.oh, g.ow]
    }

    /// The shape model files give the weights, PyTorch's `(c_out, c_in, kh, kw)`.
    pub fn weight_shape(&self) -> [usize; 4] {
        let [c_in, ..] = self.window.input;
        [
            self.window.channels,
            c_in,
            self.window.kernel[0],
            self.window.kernel[1],
        ]
    }

    /// Weights `(c_out, c_in kh kw)`.
    pub fn weights(&self) -> ArrayView2<'_, T> {
        self.weights.view()
    }

    /// Bias `(c_out)`.
    pub fn bias(&self) -> ArrayView1<'_, T> {
        self.bias.view()
    }

    /// `dL/dW` accumulated since the last zeroing, `(c_out, c_in kh kw)`.
    pub fn grad_weights(&self) -> ArrayView2<'_, T> {
        self.grad_weights.view()
    }

    /// Forward pass for inference: `a = s(conv(x) + b)`, `(batch, c_out oh ow)` (allocates).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `input` does not have `c_in h w` columns.
    pub fn infer(&self, input: ArrayView2<T>) -> Result<Array2<T>> {
        infer_kind(self, input, "Conv2d::infer input")
    }
}

impl<T: Float> LayerKind<T> for Conv2d<T> {
    fn n_in(&self) -> usize {
        self.window.n_in()
    }

    fn n_out(&self) -> usize {
        let [c, h, w] = self.output_shape();
        c * h * w
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

    /// Per image: `X_col = im2col(x)`, `Z = W X_col + b`, `a = s(z)`.
    ///
    /// # Panics
    /// If the shapes disagree or a row of the output buffers is not contiguous (internal
    /// invariants: the model's buffers are).
    fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        let g = self.geometry();
        let work = input.nrows() * self.window.channels * g.rows() * g.positions();
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
        let (k, p, c_out) = (g.rows(), g.positions(), self.window.channels);
        let (w, bias) = (self.weights.view(), flat(self.bias.view()));
        let rows = x.rows().into_iter().zip(z.rows_mut()).zip(a.rows_mut());
        if let Some(plane) = self.plane() {
            let c_in = self.window.input[0];
            self.scratch
                .with(block, c_in * plane.len + plane.out, |buf| {
                    let (pad, acc) = buf.split_at_mut(c_in * plane.len);
                    for ((x, z), a) in rows {
                        direct::pad_image(&g, &plane, flat(x), pad);
                        let z = flat_mut(z);
                        direct::forward(&g, &plane, w, pad, acc, z);
                        bias_activate(bias, self.activation, z, flat_mut(a));
                    }
                });
            return;
        }
        // Stride 1: the product reads the patches in the image's padded planes, over rows
        // of the padded width (a tap's patches are then one run of its plane).
        let stride_1 = Plane::of(&g);
        let n_buf = stride_1.map_or(k * p, |plane| g.c * plane.len + c_out * plane.out);
        self.scratch.with(block, n_buf, |buf| {
            for ((x, z), a) in rows {
                let z = flat_mut(z);
                if let Some(plane) = &stride_1 {
                    let (pad, wide) = buf.split_at_mut(g.c * plane.len);
                    direct::pad_image(&g, plane, flat(x), pad);
                    let cols = RowsB::new(pad, &self.taps, plane.out);
                    let mut zw = ArrayViewMut2::from_shape((c_out, plane.out), &mut *wide)
                        .expect("c_out out");
                    product_rows(T::one(), &w, &cols, T::zero(), &mut zw);
                    direct::gather(&g, plane, wide, z);
                } else {
                    let mut zm = ArrayViewMut2::from_shape((c_out, p), &mut *z).expect("row");
                    im2col(&g, flat(x), buf);
                    let cols = ArrayView2::from_shape((k, p), &*buf).expect("k p elements");
                    product(T::one(), &w, &cols, T::zero(), &mut zm);
                }
                bias_activate(bias, self.activation, z, flat_mut(a));
            }
        });
    }

    /// Per image, with `D = dL/dz` `(c_out, oh ow)`: `dL/dW += D X_col^T`,
    /// `dL/db_c += sum D[c, :]`, and `dL/dx = col2im(W^T D)` (overwritten).
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
        let work = input.nrows() * self.window.channels * g.rows() * g.positions() * 2;
        backward_by_blocks(self, input, d_z, d_input, work);
    }

    fn backward_begin(&mut self) {
        self.partials.zero(self.weights.len());
        self.bias_sums.clear();
        // `W^T` with contiguous rows: the input gradient's product reads it in place
        // instead of packing it for every image (the same values, the same bits).
        let (k, c_out) = (self.weights.ncols(), self.weights.nrows());
        let mut w_t = ArrayViewMut2::from_shape((k, c_out), &mut self.weights_t).expect("k c_out");
        w_t.assign(&self.weights.t());
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
        let (k, p, c_out) = (g.rows(), g.positions(), self.window.channels);
        let (w, scratch) = (self.weights.view(), &self.scratch);
        self.partials.with(block, c_out * k, |partial| {
            if let Some(plane) = self.plane() {
                let c_in = self.window.input[0];
                let (n_pad, n_dp) = (c_in * plane.len, c_out * plane.out);
                let n_ext = c_out * plane.extended(&g);
                scratch.with(block, 2 * n_pad + n_dp + n_ext, |buf| {
                    let (pad, rest) = buf.split_at_mut(n_pad);
                    let (dp, rest) = rest.split_at_mut(n_dp);
                    let (dp_ext, dpad) = rest.split_at_mut(n_ext);
                    for (b, (x, d)) in x.rows().into_iter().zip(d_z.rows()).enumerate() {
                        direct::pad_image(&g, &plane, flat(x), pad);
                        direct::spread(&g, &plane, flat(d), dp);
                        direct::weight_grad(&g, &plane, dp, pad, partial);
                        if let Some(d_in) = d_in.as_mut() {
                            let dx = flat_mut(d_in.row_mut(b));
                            direct::input_grad(&g, &plane, w, dp, dp_ext, dpad, dx);
                        }
                    }
                });
                return;
            }
            // Stride 1: the products read the patches in the image's padded planes, tap by
            // tap (`weight_grad_by_taps`, `input_grad_by_taps`), when one block of the
            // inner index holds the sums (the bits of the patch matrix's products); else the
            // patch matrix is written from the planes, which then hold `dL/dx` on its way
            // through `col2im_padded`.
            let stride_1 = Plane::of(&g);
            let dw_by_taps = stride_1.filter(|plane| plane.out <= KC && c_out >= DW_BY_TAPS_FROM);
            let dx_by_taps = stride_1.filter(|_| c_out <= KC);
            let n_pad = stride_1.map_or(0, |plane| g.c * plane.len);
            let n_cols = dw_by_taps.map_or(k * p, |plane| plane.out * c_out);
            let n_d = dx_by_taps.map_or(k * p, |plane| c_out * plane.out);
            let w_t = ArrayView2::from_shape((k, c_out), &self.weights_t).expect("k c_out");
            // `dL/dW^T += X_col D^T`: the patch matrix is the product's `A`, read in place
            // (nothing packed but `D^T`, `c_out` wide); each element sees the sum
            // `D X_col^T` would give it, in the same order.
            let mut dw_t = ArrayViewMut2::from_shape((c_out, k), partial)
                .expect("c_out k")
                .reversed_axes();
            scratch.with(block, n_cols + n_d + n_pad, |buf| {
                let (cols, rest) = buf.split_at_mut(n_cols);
                let (d_buf, pad) = rest.split_at_mut(n_d);
                for (b, (x, d)) in x.rows().into_iter().zip(d_z.rows()).enumerate() {
                    let dm = ArrayView2::from_shape((c_out, p), flat(d)).expect("row");
                    if let Some(plane) = &stride_1 {
                        direct::pad_image(&g, plane, flat(x), pad);
                    }
                    if let Some(plane) = &dw_by_taps {
                        let d_t = (flat(d), &mut *cols, self.wide_positions.as_slice());
                        weight_grad_by_taps(&g, plane, pad, d_t, dw_t.view_mut());
                    } else {
                        if let Some(plane) = &stride_1 {
                            PaddedPatches::new(&g, plane, pad).write(cols);
                        } else {
                            im2col(&g, flat(x), cols);
                        }
                        let cm = ArrayView2::from_shape((k, p), &*cols).expect("k p");
                        product(T::one(), &cm, &dm.t(), T::one(), &mut dw_t);
                    }
                    let Some(d_in) = d_in.as_mut() else { continue };
                    let dx = flat_mut(d_in.row_mut(b));
                    if let Some(plane) = &dx_by_taps {
                        let d_wide = (flat(d), &mut *d_buf, self.wide_rows.as_slice());
                        input_grad_by_taps(&g, plane, w_t, d_wide, pad, dx);
                    } else {
                        let mut dcm = ArrayViewMut2::from_shape((k, p), &mut *d_buf).expect("k p");
                        product(T::one(), &w_t, &dm, T::zero(), &mut dcm);
                        unpatch_into(&g, stride_1.as_ref(), d_buf, pad, dx);
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
