//! `Upsample2d`: nearest-neighbour upsampling of images stored as rows, with its backward
//! pass, which sums the gradients of the copies of each pixel.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{LayerKindName, Window};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::images::{
    activate, backward_by_blocks, copy_row, flat, flat_mut, forward_by_blocks, infer_kind,
};
use crate::layers::{LayerKind, ParamKind, ParamVisitor};

/// Nearest-neighbour upsampling by integer factors `(sh, sw)`: for each image `x`
/// `(c, h, w)`, `z[c, y, x] = x[c, y / sh, x / sw]` (division rounding down),
/// `(c, h sh, w sw)`, `a = s(z)`. No parameters.
///
/// Backward: `dL/dx[c, y, x] = sum over i < sh, j < sw of dL/dz[c, y sh + i, x sw + j]`.
///
/// ```
/// use autoencoder::{Activation, Upsample2d, Window};
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// let up = Upsample2d::<f64>::new(Window::upsample([1, 1, 2], [2, 2])?, Activation::Identity)?;
/// assert_eq!(up.infer(array![[1.0, 2.0]].view())?, array![[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "UpsampleData", bound(deserialize = "T: Float"))]
pub struct Upsample2d<T> {
    window: Window,
    activation: Activation,
    #[serde(skip)]
    out: [usize; 3],
    #[serde(skip)]
    element: std::marker::PhantomData<T>,
}

#[derive(Deserialize)]
struct UpsampleData {
    window: Window,
    activation: Activation,
}

impl<T: Float> TryFrom<UpsampleData> for Upsample2d<T> {
    type Error = Error;

    fn try_from(d: UpsampleData) -> Result<Self> {
        Upsample2d::new(d.window, d.activation)
    }
}

impl<T: Float> Upsample2d<T> {
    /// Upsampling with `window` (see [`Window::upsample`]) and an activation after it
    /// (usually [`Activation::Identity`]).
    ///
    /// # Errors
    /// As [`Window::output`]; [`Error::InvalidHyperparameter`] for an activation parameter
    /// out of range.
    pub fn new(window: Window, activation: Activation) -> Result<Self> {
        let out = window.output(LayerKindName::Upsample2d)?;
        activation.validate_for::<T>()?;
        Ok(Upsample2d {
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

    /// The output image `(c, h sh, w sw)`.
    pub fn output_shape(&self) -> [usize; 3] {
        self.out
    }

    /// Forward pass for inference (allocates).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `input` does not have `c h w` columns.
    pub fn infer(&self, input: ArrayView2<T>) -> Result<Array2<T>> {
        infer_kind(self, input, "Upsample2d::infer input")
    }
}

impl<T: Float> LayerKind<T> for Upsample2d<T> {
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

    /// `z[c, y, x] = x[c, y / sh, x / sw]`, `a = s(z)`.
    ///
    /// # Panics
    /// If the shapes disagree or a row of the output buffers is not contiguous (internal
    /// invariants: the model's buffers are).
    fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        let work = z.len();
        forward_by_blocks(self, input, z, a, work);
    }

    fn per_row(&self) -> bool {
        true
    }

    fn forward_rows(
        &self,
        _block: usize,
        x: ArrayView2<T>,
        mut z: ArrayViewMut2<T>,
        mut a: ArrayViewMut2<T>,
    ) {
        let [c, h, w] = self.window.input;
        let [sh, sw] = self.window.kernel;
        let ow = w * sw;
        for ((x, z), a) in x.rows().into_iter().zip(z.rows_mut()).zip(a.rows_mut()) {
            let (x, z) = (flat(x), flat_mut(z));
            for (src, dst) in x
                .chunks_exact(w)
                .zip(z.chunks_exact_mut(ow * sh))
                .take(c * h)
            {
                let (first, rest) = dst.split_at_mut(ow);
                if sw == 2 {
                    // The common factor, as a loop that vectorizes.
                    for (d, &v) in first.chunks_exact_mut(2).zip(src) {
                        [d[0], d[1]] = [v, v];
                    }
                } else {
                    for (d, &v) in first.chunks_exact_mut(sw).zip(src) {
                        d.fill(v);
                    }
                }
                for copy in rest.chunks_exact_mut(ow) {
                    copy_row(copy, first);
                }
            }
            activate(self.activation, z, flat_mut(a));
        }
    }

    /// `dL/dx[c, y, x] = sum of dL/dz over the `sh x sw` copies of the pixel`.
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
        if d_input.is_some() {
            let work = d_z.len();
            backward_by_blocks(self, input, d_z, d_input, work);
        }
    }

    fn backward_rows(
        &self,
        _block: usize,
        _x: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_in: Option<ArrayViewMut2<T>>,
    ) {
        let Some(mut d_in) = d_in else { return };
        let [_, _, w] = self.window.input;
        let [sh, sw] = self.window.kernel;
        let ow = w * sw;
        for (d, dx) in d_z.rows().into_iter().zip(d_in.rows_mut()) {
            let (d, dx) = (flat(d), flat_mut(dx));
            for (dst, src) in dx.chunks_exact_mut(w).zip(d.chunks_exact(ow * sh)) {
                if [sh, sw] == [2, 2] {
                    // The common factors, as a loop that vectorizes, with the sums below in
                    // their order: `0 + (0 + row 0's pair) + row 1's`.
                    let (r0, r1) = src.split_at(ow);
                    let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
                    for (g, (a, b)) in dst.iter_mut().zip(pairs) {
                        let zero = T::zero();
                        *g = (zero + ((zero + a[0]) + a[1])) + ((zero + b[0]) + b[1]);
                    }
                    continue;
                }
                dst.fill(T::zero());
                for copy in src.chunks_exact(ow) {
                    for (g, part) in dst.iter_mut().zip(copy.chunks_exact(sw)) {
                        *g += part.iter().fold(T::zero(), |s, &v| s + v);
                    }
                }
            }
        }
    }

    fn zero_grad(&mut self) {}

    fn visit_params(&mut self, _f: &mut ParamVisitor<'_, T>) {}

    fn param_kinds(&self) -> &'static [ParamKind] {
        &[]
    }
}
