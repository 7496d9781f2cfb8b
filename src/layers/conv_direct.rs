//! Direct kernels of a stride-1 convolution (what [`crate::Conv2d`] runs when both strides
//! are 1 and there are fewer than 4 output channels, as in the last layer of the
//! `mnist_conv` models): faster than im2col and the matrix product when output channels
//! are few, since nothing is packed and every loop is a long, contiguous one. The padded
//! planes also feed the stride-1 patches of `patches.rs` (`PaddedPatches`).
//!
//! The trick: one image's channel `c` is copied into a zero-padded plane `P_c` of
//! `hp = h + top + bottom` rows of `wp = w + left + right` values (plus `kw` values of slack);
//! the output is computed at the plane's row stride, `oh` rows of `wp` values of which the
//! first `ow` are the output (the other `kw - 1` are discarded). Then output position
//! `q = y wp + x` reads plane position `q + i wp + j` for kernel offset `(i, j)`, so with
//! `L = oh wp` (a flat range, no index arithmetic inside):
//!
//! - forward: `Z_o[0..L] = sum over (c, i, j) of W[o, c, i, j] P_c[i wp + j ..][..L]`;
//! - weights: with `D_o` the output gradient at the plane's stride (discarded columns 0),
//!   `dL/dW[o, c, i, j] += dot(D_o[0..L], P_c[i wp + j ..][..L])`;
//! - input: `dL/dP_c[i wp + j ..][..L] += W[o, c, i, j] D_o[0..L]`, summed over `(o, i, j)`,
//!   and `dL/dx[c, y, x] = dL/dP_c[(y + top) wp + x + left]`.
//!
//! The products are multiplies then adds (never fused), so the SIMD twins give the same bits
//! as the portable loops; every sum runs in a fixed order.

use ndarray::ArrayView2;

use crate::compute::{lane_dots, simd_dispatch};
use crate::float::Float;
use crate::layers::images::copy_row;
use crate::layers::patches::Patches;

/// The padded plane of a stride-1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plane {
    /// Row stride: `w + left + right`.
    pub wp: usize,
    /// Length of one channel's plane: `hp wp + kw` (the slack keeps the last reads inside).
    pub len: usize,
    /// Length of the output at the plane's stride: `oh wp`.
    pub out: usize,
}

impl Plane {
    /// The plane of `g`, if both strides are 1.
    pub fn of(g: &Patches) -> Option<Plane> {
        if (g.sh, g.sw) != (1, 1) {
            return None;
        }
        let wp = g.ow + g.kw - 1;
        let hp = g.oh + g.kh - 1;
        Some(Plane {
            wp,
            len: hp * wp + g.kw,
            out: g.oh * wp,
        })
    }

    /// Values a channel of the output gradient takes with [`margin`] zeros on each side
    /// (and one more): `out + 2 margin + 1`.
    pub fn extended(&self, g: &Patches) -> usize {
        self.out + 2 * margin(g, self) + 1
    }

    /// Where tap `t = (c, i, j)` (row `t` of the patch matrix) starts reading the planes.
    pub fn tap(&self, g: &Patches, t: usize) -> usize {
        let (c, ij) = (t / (g.kh * g.kw), t % (g.kh * g.kw));
        c * self.len + ij / g.kw * self.wp + ij % g.kw
    }
}

simd_dispatch! {
    /// [`pad_image_plain`], for AVX-512F or AVX2 when available.
    pub(super) fn pad_image / pad_image_plain<T>(g: &Patches, p: &Plane, x: &[T], pad: &mut [T])
    where T: Float
}

/// Copies image `x` `(c, h, w)` into the zero-padded planes `pad` `(c, len)`.
/// Each value is written once: the zeros between one row's pixels and the next row's
/// (the right and left padding), then the pixels.
#[inline(always)]
fn pad_image_plain<T: Float>(g: &Patches, p: &Plane, x: &[T], pad: &mut [T]) {
    let first = g.top * p.wp + g.left;
    for (plane, src) in pad.chunks_exact_mut(p.len).zip(x.chunks_exact(g.h * g.w)) {
        let mut done = 0;
        for (y, row) in src.chunks_exact(g.w).enumerate() {
            let at = first + y * p.wp;
            plane[done..at].fill(T::zero());
            copy_row(&mut plane[at..at + g.w], row);
            done = at + g.w;
        }
        plane[done..].fill(T::zero());
    }
}

/// Forward pass of one image: `z` `(c_out, oh ow)` from `pad` `(c_in, len)` and `weights`
/// `(c_out, c_in kh kw)`, through `acc` (`out` values).
pub(super) fn forward<T: Float>(
    g: &Patches,
    p: &Plane,
    weights: ArrayView2<T>,
    pad: &[T],
    acc: &mut [T],
    z: &mut [T],
) {
    let plane = g.oh * g.ow;
    for (w_o, z_o) in weights.rows().into_iter().zip(z.chunks_exact_mut(plane)) {
        acc.fill(T::zero());
        let taps = w_o
            .iter()
            .enumerate()
            .map(|(t, &w)| (w, &pad[p.tap(g, t)..][..p.out]));
        axpy_taps(taps, acc);
        gather(g, p, acc, z_o);
    }
}

simd_dispatch! {
    /// [`gather_plain`], for AVX-512F or AVX2 when available.
    pub(super) fn gather / gather_plain<T>(g: &Patches, p: &Plane, wide: &[T], z: &mut [T])
    where T: Float
}

/// The output `z` `(c, oh ow)` from `wide` `(c, out)`, at the plane's stride: the
/// discarded columns dropped (the inverse of [`spread`]).
#[inline(always)]
fn gather_plain<T: Float>(g: &Patches, p: &Plane, wide: &[T], z: &mut [T]) {
    for (dst, src) in z.chunks_exact_mut(g.ow).zip(wide.chunks_exact(p.wp)) {
        copy_row(dst, &src[..g.ow]);
    }
}

simd_dispatch! {
    /// [`spread_plain`], for AVX-512F or AVX2 when available.
    pub(super) fn spread / spread_plain<T>(g: &Patches, p: &Plane, d: &[T], dp: &mut [T])
    where T: Float
}

/// The output gradient `d` `(c_out, oh ow)` at the plane's stride, `dp` `(c_out, out)`, with
/// the discarded columns 0.
#[inline(always)]
fn spread_plain<T: Float>(g: &Patches, p: &Plane, d: &[T], dp: &mut [T]) {
    for (dst, src) in dp.chunks_exact_mut(p.out).zip(d.chunks_exact(g.oh * g.ow)) {
        for (row, s) in dst.chunks_exact_mut(p.wp).zip(src.chunks_exact(g.ow)) {
            copy_row(&mut row[..g.ow], s);
            row[g.ow..].fill(T::zero());
        }
    }
}

/// `dw[o, (c, i, j)] += dot(dp_o, pad_c[i wp + j ..])`; `dw` `(c_out, c_in kh kw)` flat.
/// Four taps at a time (independent sums, each in its own fixed order); a last group of
/// fewer fills its free slots with its last tap again and drops those sums.
pub(super) fn weight_grad<T: Float>(g: &Patches, p: &Plane, dp: &[T], pad: &[T], dw: &mut [T]) {
    let plane = |t: usize| &pad[p.tap(g, t)..][..p.out];
    for (dp_o, dw_o) in dp.chunks_exact(p.out).zip(dw.chunks_exact_mut(g.rows())) {
        for (k, group) in dw_o.chunks_mut(4).enumerate() {
            let last = group.len() - 1;
            let sums = dots4(dp_o, std::array::from_fn(|i| plane(4 * k + i.min(last))));
            group.iter_mut().zip(sums).for_each(|(g_w, s)| *g_w += s);
        }
    }
}

/// `dx` `(c_in, h w)` (overwritten) from `dp` and `weights`, through `dp_ext` (`dp` with
/// [`margin`] zeros on each side of each channel, [`Plane::extended`] values a channel) and
/// `dpad` `(c_in, len)`: `dpad_c[tap + q] += W[o, c, tap] dp_o[q]` for each output channel,
/// tap by tap, written as one pass over the whole plane per four taps (the zeros add
/// nothing: the same sums in the same order).
pub(super) fn input_grad<T: Float>(
    g: &Patches,
    p: &Plane,
    weights: ArrayView2<T>,
    dp: &[T],
    dp_ext: &mut [T],
    dpad: &mut [T],
    dx: &mut [T],
) {
    let (margin, ext) = (margin(g, p), p.extended(g));
    for (dst, src) in dp_ext.chunks_exact_mut(ext).zip(dp.chunks_exact(p.out)) {
        dst[..margin].fill(T::zero());
        copy_row(&mut dst[margin..margin + p.out], src);
        dst[margin + p.out..].fill(T::zero());
    }
    dpad.fill(T::zero());
    let (taps, c_out) = (g.kh * g.kw, weights.nrows());
    for (c, dpad_c) in dpad.chunks_exact_mut(p.len).enumerate() {
        let taps = (0..c_out * taps).map(|ot| {
            let (o, t) = (ot / taps, ot % taps);
            let from = o * ext + margin - p.tap(g, t);
            (weights[[o, c * taps + t]], &dp_ext[from..][..p.len])
        });
        axpy_taps(taps, dpad_c);
    }
    unpad_image(g, p, dpad, dx);
}

/// How far a tap reaches into a plane, at most: `(kh - 1) wp + kw - 1`.
fn margin(g: &Patches, p: &Plane) -> usize {
    (g.kh - 1) * p.wp + g.kw - 1
}

/// `y += a_t x_t` for each `(a_t, x_t)` in order, four at a time in one pass over `y`
/// ([`axpy4`]), the rest one at a time: each element sees the multiplies and adds of one
/// tap after another, as with one pass per tap.
fn axpy_taps<'a, T: Float>(taps: impl Iterator<Item = (T, &'a [T])>, y: &mut [T]) {
    let mut group: [(T, &[T]); 4] = [(T::zero(), &[]); 4];
    let mut n = 0;
    for tap in taps {
        group[n] = tap;
        n += 1;
        if n == 4 {
            axpy4(group.map(|t| t.0), group.map(|t| t.1), y);
            n = 0;
        }
    }
    for &(a, x) in &group[..n] {
        axpy(a, x, y);
    }
}

simd_dispatch! {
    /// [`unpad_image_plain`], for AVX-512F or AVX2 when available.
    pub(super) fn unpad_image / unpad_image_plain<T>(g: &Patches, p: &Plane, pad: &[T], x: &mut [T])
    where T: Float
}

/// The inverse of [`pad_image`]: the image `x` `(c, h, w)` (overwritten) inside the planes
/// `pad` `(c, len)`.
#[inline(always)]
fn unpad_image_plain<T: Float>(g: &Patches, p: &Plane, pad: &[T], x: &mut [T]) {
    for (dst, plane) in x.chunks_exact_mut(g.h * g.w).zip(pad.chunks_exact(p.len)) {
        for (y, row) in dst.chunks_exact_mut(g.w).enumerate() {
            let at = (y + g.top) * p.wp + g.left;
            copy_row(row, &plane[at..at + g.w]);
        }
    }
}

simd_dispatch! {
    /// [`axpy4_plain`], for AVX-512F or AVX2 when available.
    fn axpy4 / axpy4_plain<T>(a: [T; 4], x: [&[T]; 4], y: &mut [T])
    where T: Float
}

/// `y += a_0 x_0`, then `+= a_1 x_1`, `+= a_2 x_2`, `+= a_3 x_3` (each a multiply, then an
/// add), in one pass.
#[inline(always)]
fn axpy4_plain<T: Float>(a: [T; 4], x: [&[T]; 4], y: &mut [T]) {
    let n = y.len();
    let x = x.map(|x| &x[..n]);
    for (i, y) in y.iter_mut().enumerate() {
        let mut v = *y;
        v += a[0] * x[0][i];
        v += a[1] * x[1][i];
        v += a[2] * x[2][i];
        v += a[3] * x[3][i];
        *y = v;
    }
}

simd_dispatch! {
    /// [`axpy_plain`], for AVX-512F or AVX2 when available.
    fn axpy / axpy_plain<T>(a: T, x: &[T], y: &mut [T])
    where T: Float
}

/// `y += a x` (a multiply, then an add).
#[inline(always)]
fn axpy_plain<T: Float>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

simd_dispatch! {
    /// [`lane_dots`] of four, for AVX-512F or AVX2 when available.
    fn dots4 / dots4_plain<T>(x: &[T], ys: [&[T]; 4]) -> [T; 4]
    where T: Float
}

#[inline(always)]
fn dots4_plain<T: Float>(x: &[T], ys: [&[T]; 4]) -> [T; 4] {
    lane_dots(x, ys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The input gradient (four taps a pass over the plane, the output gradient with zero
    /// margins) against one pass per output channel and tap over its window, in `f32`:
    /// the same bits, over kernels, paddings and channel counts.
    #[test]
    fn the_input_gradient_has_the_bits_of_one_pass_per_tap() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (c, h, w, kh, kw, top, left, c_out) in [
            (3, 6, 5, 3, 3, 1, 1, 1),
            (2, 7, 7, 2, 3, 0, 2, 3),
            (1, 4, 6, 1, 1, 0, 0, 2),
            (4, 5, 5, 3, 2, 2, 1, 1),
        ] {
            let g = Patches::unit_stride(c, [h, w], [kh, kw], [top, top, left, left]);
            let ow = g.ow;
            let p = Plane::of(&g).expect("stride 1");
            let mut random =
                |n| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
            let weights = Array2::from_shape_vec((c_out, g.rows()), random(c_out * g.rows()))
                .expect("c_out rows");
            let mut dp = random(c_out * p.out);
            for (i, v) in dp.iter_mut().enumerate() {
                if i % p.wp >= ow {
                    *v = 0.0; // the discarded columns, as `spread` leaves them
                }
            }
            let mut want_pad = vec![0.0f32; c * p.len];
            for (ch, dpad_c) in want_pad.chunks_exact_mut(p.len).enumerate() {
                for (o, dp_o) in dp.chunks_exact(p.out).enumerate() {
                    for t in 0..kh * kw {
                        let wt = weights[[o, ch * kh * kw + t]];
                        let y = &mut dpad_c[p.tap(&g, t)..][..p.out];
                        y.iter_mut().zip(dp_o).for_each(|(y, &d)| *y += wt * d);
                    }
                }
            }
            let mut want = vec![f32::NAN; c * h * w];
            unpad_image(&g, &p, &want_pad, &mut want);
            let (mut got, mut dpad) = (vec![f32::NAN; c * h * w], vec![f32::NAN; c * p.len]);
            let mut dp_ext = vec![f32::NAN; c_out * p.extended(&g)];
            input_grad(
                &g,
                &p,
                weights.view(),
                &dp,
                &mut dp_ext,
                &mut dpad,
                &mut got,
            );
            assert_eq!(
                bits(&got),
                bits(&want),
                "{c}x{h}x{w} k{kh}x{kw}, {c_out} out"
            );
        }
    }
}
