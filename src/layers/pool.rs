//! `MaxPool2d`: 2-D max pooling over images stored as rows, with its backward pass, which
//! routes each gradient to the maximum it came from.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::architecture::{LayerKindName, Window};
use crate::compute::simd_dispatch;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::images::{
    activate, backward_by_blocks, flat, flat_mut, forward_by_blocks, infer_kind,
};
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
    /// of one image `x`, in output order; with `partial_only`, only for the windows that
    /// [`crate::Rounding::Ceil`] clips (the 2x2 fast paths do the whole ones).
    #[inline(always)]
    fn each_max(&self, x: &[T], partial_only: bool, mut f: impl FnMut(usize, usize)) {
        let [c, h, w] = self.window.input;
        let [_, oh, ow] = self.out;
        let ([kh, kw], [sh, sw]) = (self.window.kernel, self.window.stride);
        let mut o = 0;
        for plane in x.chunks_exact(h * w).take(c) {
            let base = o / (oh * ow) * h * w;
            for oy in 0..oh {
                let rows = &plane[oy * sh * w..(oy * sh + kh).min(h) * w];
                let whole_rows = oy * sh + kh <= h;
                for ox in 0..ow {
                    let (x0, x1) = (ox * sw, (ox * sw + kw).min(w));
                    if partial_only && whole_rows && ox * sw + kw <= w {
                        o += 1;
                        continue;
                    }
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

    /// Whether the windows are 2x2 with stride 2, the common pooling, which has fast paths:
    /// whole windows in loops without bounds to clip (they vectorize), the same maxima.
    fn is_2x2(&self) -> bool {
        self.window.kernel == [2, 2] && self.window.stride == [2, 2]
    }

    /// `(fast, general)`: whether the 2x2 fast paths run (for the whole windows), and
    /// whether the general loop does (for every window without them; with them, for the
    /// windows the image clips in ceil mode, if any).
    fn paths(&self) -> (bool, bool) {
        let ([_, h, w], [_, oh, ow]) = (self.window.input, self.out);
        let ([kh, kw], [sh, sw]) = (self.window.kernel, self.window.stride);
        let partial = (oh - 1) * sh + kh > h || (ow - 1) * sw + kw > w;
        let fast = self.is_2x2();
        (fast, !fast || partial)
    }

    /// `z` for the whole 2x2 windows of one image `x` (every window but the partial ones).
    fn max_2x2(&self, x: &[T], z: &mut [T]) {
        let ([c, h, w], [_, oh, ow]) = (self.window.input, self.out);
        for (ch, oy) in (0..c).flat_map(|ch| (0..h / 2).map(move |oy| (ch, oy))) {
            let (r0, r1) = x[(ch * h + 2 * oy) * w..][..2 * w].split_at(w);
            max_row(r0, r1, &mut z[(ch * oh + oy) * ow..][..w / 2]);
        }
    }

    /// `dL/dx` for the whole 2x2 windows of one image (`dx` is left as it is elsewhere).
    fn route_2x2(&self, x: &[T], d: &[T], dx: &mut [T]) {
        let ([c, h, w], [_, oh, ow]) = (self.window.input, self.out);
        for (ch, oy) in (0..c).flat_map(|ch| (0..h / 2).map(move |oy| (ch, oy))) {
            let at = (ch * h + 2 * oy) * w;
            let (r0, r1) = x[at..][..2 * w].split_at(w);
            let (g0, g1) = dx[at..][..2 * w].split_at_mut(w);
            route_row(r0, r1, &d[(ch * oh + oy) * ow..][..w / 2], g0, g1);
        }
    }
}

simd_dispatch! {
    /// [`max_row_plain`], for AVX-512F or AVX2 when available.
    fn max_row / max_row_plain<T>(r0: &[T], r1: &[T], z: &mut [T])
    where T: Float
}

/// The maxima of the whole 2x2 windows over image rows `r0` and `r1` into `z`.
#[inline(always)]
fn max_row_plain<T: Float>(r0: &[T], r1: &[T], z: &mut [T]) {
    let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    for (z, (a, b)) in z.iter_mut().zip(windows) {
        *z = first_max([a[0], a[1], b[0], b[1]]);
    }
}

simd_dispatch! {
    /// [`route_row_plain`], for AVX-512F or AVX2 when available.
    fn route_row / route_row_plain<T>(r0: &[T], r1: &[T], d: &[T], g0: &mut [T], g1: &mut [T])
    where T: Float
}

/// The input gradient of the whole 2x2 windows over image rows `r0` and `r1`: each
/// window's `0 + d` (the bits of `each_max`'s `dx[i] += d` on zeros) at its first maximum,
/// 0 at the other three, into rows `g0` and `g1`.
#[inline(always)]
fn route_row_plain<T: Float>(r0: &[T], r1: &[T], d: &[T], g0: &mut [T], g1: &mut [T]) {
    let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    let grads = g0.chunks_exact_mut(2).zip(g1.chunks_exact_mut(2));
    for ((&d, (a, b)), (ga, gb)) in d.iter().zip(windows).zip(grads) {
        let v = [a[0], a[1], b[0], b[1]];
        let (zero, m) = (T::zero(), first_max(v));
        // The first maximum is the first value equal to the maximum (or the first value,
        // if it is NaN: nothing is greater); as masks (`|`, `&`: no branches), so that the
        // loop vectorizes.
        let at0 = (v[0] == m) | m.is_nan();
        let at1 = !at0 & (v[1] == m);
        let at2 = !(at0 | at1) & (v[2] == m);
        let at3 = !(at0 | at1 | at2);
        let g = zero + d;
        ga[0] = if at0 { g } else { zero };
        ga[1] = if at1 { g } else { zero };
        gb[0] = if at2 { g } else { zero };
        gb[1] = if at3 { g } else { zero };
    }
}

/// The maximum of a 2x2 window `[x00, x01, x10, x11]` as [`MaxPool2d::each_max`] finds
/// it: a later value is taken only if strictly greater (so a NaN first value stays).
#[inline(always)]
fn first_max<T: Float>(v: [T; 4]) -> T {
    v[1..]
        .iter()
        .fold(v[0], |best, &x| if x > best { x } else { best })
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
    fn forward(&self, input: ArrayView2<T>, z: ArrayViewMut2<T>, a: ArrayViewMut2<T>) {
        let work = input.len();
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
        let (fast, general) = self.paths();
        for ((x, z), a) in x.rows().into_iter().zip(z.rows_mut()).zip(a.rows_mut()) {
            let (x, z, a) = (flat(x), flat_mut(z), flat_mut(a));
            if fast {
                self.max_2x2(x, z);
            }
            if general {
                self.each_max(x, fast, |o, i| z[o] = x[i]);
            }
            activate(self.activation, z, a);
        }
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
        if d_input.is_some() {
            let work = input.len();
            backward_by_blocks(self, input, d_z, d_input, work);
        }
    }

    fn backward_rows(
        &self,
        _block: usize,
        x: ArrayView2<T>,
        d_z: ArrayView2<T>,
        d_in: Option<ArrayViewMut2<T>>,
    ) {
        let Some(mut d_in) = d_in else { return };
        let (fast, general) = self.paths();
        let [_, h, w] = self.window.input;
        // The whole 2x2 windows write every pixel of an image of even sides.
        let zero_first = !fast || h % 2 != 0 || w % 2 != 0;
        for ((x, d), dx) in x.rows().into_iter().zip(d_z.rows()).zip(d_in.rows_mut()) {
            let (x, d, dx) = (flat(x), flat(d), flat_mut(dx));
            if zero_first {
                dx.fill(T::zero());
            }
            if fast {
                self.route_2x2(x, d, dx);
            }
            if general {
                self.each_max(x, fast, |o, i| dx[i] += d[o]);
            }
        }
    }

    fn zero_grad(&mut self) {}

    fn visit_params(&mut self, _f: &mut ParamVisitor<'_, T>) {}

    fn param_kinds(&self) -> &'static [ParamKind] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rounding;

    /// The 2x2 fast paths give the bits of the general loop (`each_max` over every window),
    /// forward and backward, for even and odd sizes in both roundings, with ties (small
    /// integers repeat), signed zeros and NaN.
    #[test]
    fn the_2x2_paths_match_the_general_loop() {
        let values = [0.0, -0.0, 1.0, 2.0, -1.0, 2.0, f64::NAN, 1.0, 0.0];
        for (h, w) in [(4, 4), (7, 7), (5, 8), (6, 3), (1, 1), (2, 5)] {
            for rounding in [Rounding::Floor, Rounding::Ceil] {
                let Ok(window) = Window::pool([3, h, w], [2, 2], [2, 2], rounding) else {
                    continue; // a 1-pixel image has no whole window when floored
                };
                let pool = MaxPool2d::<f64>::new(window, Activation::Identity).expect("valid");
                assert!(pool.is_2x2());
                let x: Vec<f64> = (0..3 * h * w).map(|i| values[(i * 7 + h) % 9]).collect();
                let n_out = pool.n_out();
                let d: Vec<f64> = (0..n_out).map(|o| values[(o * 5 + 2) % 9] - 0.5).collect();
                // The general loop.
                let (mut z_ref, mut dx_ref) = (vec![0.0; n_out], vec![0.0; 3 * h * w]);
                pool.each_max(&x, false, |o, i| z_ref[o] = x[i]);
                pool.each_max(&x, false, |o, i| dx_ref[i] += d[o]);
                // The layer.
                let x2 = ndarray::Array2::from_shape_vec((1, x.len()), x.clone()).expect("row");
                let (mut z, mut a) = (Array2::zeros((1, n_out)), Array2::zeros((1, n_out)));
                pool.forward(x2.view(), z.view_mut(), a.view_mut());
                let d2 = Array2::from_shape_vec((1, n_out), d.clone()).expect("row");
                let mut dx = Array2::from_elem((1, x.len()), 7.0);
                let mut layer = pool.clone();
                layer.backward(x2.view(), d2.view(), Some(dx.view_mut()));
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let case = format!("{h}x{w} {rounding:?}");
                assert_eq!(bits(z.as_slice().unwrap()), bits(&z_ref), "z, {case}");
                assert_eq!(bits(dx.as_slice().unwrap()), bits(&dx_ref), "dx, {case}");
            }
        }
    }
}
