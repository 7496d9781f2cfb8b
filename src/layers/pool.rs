//! `MaxPool2d`: 2-D max pooling over images stored as rows, with its backward pass, which
//! routes each gradient to the maximum it came from.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{LayerKindName, Window};
use crate::compute::{for_each_block, row_blocks, row_blocks_mut};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::images::{activate, flat, flat_mut, indexed, infer_kind, optional_blocks, zip3};
use crate::layers::{LayerKind, ParamKind, ParamVisitor};

/// Max pooling: for each image `x` `(c, h, w)` and channel `c`,
/// `z[c, y, x] = max over (i, j) in the window of x[c, y sh + i, x sw + j]`, where the
/// window is `kernel` clipped to the image (with [`crate::Rounding::Ceil`] a last window may
/// be partial), `a = s(z)`. No parameters.
///
/// Backward: `dL/dx[c, p] = sum over the windows whose maximum is at p of dL/dz` (the first
/// maximum in row-major order when several are equal, as PyTorch picks); every other input
/// gets 0. Overlapping windows (stride < kernel) add.
///
/// ```
/// use autoencoder::{Activation, MaxPool2d, Rounding, Window};
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// // A 3x3 image pooled 2x2 with ceil mode: 2x2 out, the last row and column partial.
/// let pool = MaxPool2d::<f64>::new(Window::pool([1, 3, 3], [2, 2], [2, 2], autoencoder::Rounding::Ceil)?, Activation::Identity)?;
/// let x = array![[1.0, 5.0, 2.0, 4.0, 3.0, 9.0, 7.0, 8.0, 6.0]];
/// assert_eq!(pool.infer(x.view())?, array![[5.0, 9.0, 8.0, 6.0]]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "PoolData", bound(deserialize = "T: Float"))]
pub struct MaxPool2d<T> {
    window: Window,
    activation: Activation,
    #[serde(skip)]
    out: [usize; 3],
    #[serde(skip)]
    element: std::marker::PhantomData<T>,
}

#[derive(Deserialize)]
struct PoolData {
    window: Window,
    activation: Activation,
}

impl<T: Float> TryFrom<PoolData> for MaxPool2d<T> {
    type Error = Error;

    fn try_from(d: PoolData) -> Result<Self> {
        MaxPool2d::new(d.window, d.activation)
    }
}

impl<T: Float> MaxPool2d<T> {
    /// Max pooling with `window` (see [`Window::pool`]) and an activation after it
    /// (usually [`Activation::Identity`]).
    ///
    /// # Errors
    /// As [`Window::output`]; [`Error::InvalidHyperparameter`] for an activation parameter
    /// out of range.
    pub fn new(window: Window, activation: Activation) -> Result<Self> {
        let out = window.output(LayerKindName::MaxPool2d)?;
        activation.validate_for::<T>()?;
        Ok(MaxPool2d {
            window,
            activation,
            out,
            element: std::marker::PhantomData,
        })
    }

    /// The geometry.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The output image `(c, oh, ow)`.
    pub fn output_shape(&self) -> [usize; 3] {
        self.out
    }

    /// Forward pass for inference (allocates).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `input` does not have `c h w` columns.
    pub fn infer(&self, input: ArrayView2<T>) -> Result<Array2<T>> {
        infer_kind(self, input, "MaxPool2d::infer input")
    }

    /// Calls `f(output index, input index of the window's first maximum)` for each output
    /// of one image `x`, in output order.
    #[inline(always)]
    fn each_max(&self, x: &[T], mut f: impl FnMut(usize, usize)) {
        let [c, h, w] = self.window.input;
        let [_, oh, ow] = self.out;
        let ([kh, kw], [sh, sw]) = (self.window.kernel, self.window.stride);
        let mut o = 0;
        for plane in x.chunks_exact(h * w).take(c) {
            let base = o / (oh * ow) * h * w;
            for oy in 0..oh {
                let rows = &plane[oy * sh * w..(oy * sh + kh).min(h) * w];
                for ox in 0..ow {
                    let (x0, x1) = (ox * sw, (ox * sw + kw).min(w));
                    let (mut best, mut best_at) = (rows[x0], oy * sh * w + x0);
                    for (r, row) in rows.chunks_exact(w).enumerate() {
                        for (dx, &v) in row[x0..x1].iter().enumerate() {
                            // Branch-free: a data-dependent branch mispredicts half the time.
                            let take = v > best;
                            best = if take { v } else { best };
                            best_at = if take {
                                (oy * sh + r) * w + x0 + dx
                            } else {
                                best_at
                            };
                        }
                    }
                    f(o, base + best_at);
                    o += 1;
                }
            }
        }
    }
}

impl<T: Float> LayerKind<T> for MaxPool2d<T> {
    fn n_in(&self) -> usize {
        self.window.n_in()
    }

    fn n_out(&self) -> usize {
        self.out.iter().product()
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn weights(&self) -> ArrayView2<'_, T> {
        ArrayView2::from_shape((0, 0), &[]).expect("an empty matrix")
    }

    fn bias(&self) -> ArrayView1<'_, T> {
        ArrayView1::from(&[])
    }

    /// `z[c, y, x] = max of the window`, `a = s(z)`.
    ///
    /// # Panics
    /// If the shapes disagree or a row of the output buffers is not contiguous (internal
    /// invariants: the model's buffers are).
    fn forward(&self, input: ArrayView2<T>, mut z: ArrayViewMut2<T>, mut a: ArrayViewMut2<T>) {
        let input = input.as_standard_layout(); // copies only a caller's non-contiguous view
        let work = input.len();
        let blocks = zip3(
            row_blocks(input.view()),
            row_blocks_mut(z.view_mut()),
            row_blocks_mut(a.view_mut()),
        );
        for_each_block(work, indexed(blocks), |(_, (x, mut z, mut a))| {
            for ((x, z), a) in x.rows().into_iter().zip(z.rows_mut()).zip(a.rows_mut()) {
                let (x, z, a) = (flat(x), flat_mut(z), flat_mut(a));
                self.each_max(x, |o, i| z[o] = x[i]);
                activate(self.activation, z, a);
            }
            0.0
        });
    }

    /// `dL/dx = 0`, then `dL/dx[argmax of window o] += dL/dz[o]` for each output `o`.
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
        // Copies only a caller's non-contiguous view (the model's buffers are contiguous).
        let (input, d_z) = (input.as_standard_layout(), d_z.as_standard_layout());
        if d_input.is_none() {
            return;
        }
        let work = input.len();
        let blocks = zip3(
            row_blocks(input.view()),
            row_blocks(d_z.view()),
            optional_blocks(d_input),
        );
        let this = &*self;
        for_each_block(work, indexed(blocks), |(_, (x, d_z, d_in))| {
            if let Some(mut d_in) = d_in {
                for ((x, d), dx) in x.rows().into_iter().zip(d_z.rows()).zip(d_in.rows_mut()) {
                    let (d, dx) = (flat(d), flat_mut(dx));
                    dx.fill(T::zero());
                    this.each_max(flat(x), |o, i| dx[i] += d[o]);
                }
            }
            0.0
        });
    }

    fn zero_grad(&mut self) {}

    fn visit_params(&mut self, _f: &mut ParamVisitor<'_, T>) {}

    fn param_kinds(&self) -> &'static [ParamKind] {
        &[]
    }
}
