//! The backward products of a stride-1 [`crate::Conv2d`] that read the image's padded
//! planes in place, tap by tap, instead of writing the patch matrix `X_col` and its
//! gradient: for tap `t = (i, j)`, the rows `(c, t)` of `X_col`, over positions at the
//! plane's stride `q = y wp + x`, are `P_c[tap_t + q]`, runs of the planes (as in
//! `conv_direct.rs`), which the matrix product reads where they lie (`RowsB`).
//!
//! - weights: `dL/dW^T[(c, t), o] += sum_q P_c[tap_t + q] D^T[q, o]`, one product per tap,
//!   with `D^T` written at the plane's stride (the discarded columns 0);
//! - input: `dL/dP_c[tap_t + q] += sum_o W[o, c, t] D[o, q]`, one product per tap with
//!   `beta = 1` into the planes where the tap reads, then `dL/dx` is the planes' interior.
//!
//! Each element gets the sum the patch matrix's products give it (one block of the inner
//! index, the same terms in the same order, plus zeros from the discarded columns), added
//! in the order of the taps as `col2im_padded` adds them: the same bits, which the tests
//! check.

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::compute::{product_rows, RowsB};
use crate::float::Float;
use crate::layers::conv_direct::{self as direct, Plane};
use crate::layers::patches::Patches;

/// `dL/dx` of one image, for stride 1 and at most `KC` output channels, without the patch
/// matrix's gradient: `D` is spread to the plane's stride (`d_wide` holds it, its rows
/// at `wide_rows`), then for each tap `t = (i, j)`, one product with `beta = 1` adds
/// `sum_o W[o, c, t] D[o, q]` into the padded planes `dpad` where the tap reads:
/// `dpad[c, tap_t + q] += ...`. Each sum is the one `W^T D` gives row `(c, t)` of the
/// patch gradient (one block of the inner index: `c_out <= KC`), added to `dpad` in the
/// order of the taps, as `col2im_padded` adds them: the same bits (the columns past `ow`
/// add zeros).
pub(super) fn input_grad_by_taps<T: Float>(
    g: &Patches,
    plane: &Plane,
    w_t: ArrayView2<T>,
    (d, d_wide, wide_rows): (&[T], &mut [T], &[usize]),
    dpad: &mut [T],
    dx: &mut [T],
) {
    let (taps, c_out) = (g.kh * g.kw, w_t.ncols());
    direct::spread(g, plane, d, d_wide);
    dpad.fill(T::zero());
    let d_w = RowsB::new(d_wide, wide_rows, plane.out);
    let w_t = w_t.to_slice().expect("W^T in standard layout");
    for t in 0..taps {
        let a = ArrayView2::from_shape((g.c, c_out).strides((taps * c_out, 1)), &w_t[t * c_out..])
            .expect("tap t of W^T");
        let at = plane.tap(g, t);
        let mut c =
            ArrayViewMut2::from_shape((g.c, plane.out).strides((plane.len, 1)), &mut dpad[at..])
                .expect("the planes from tap t");
        product_rows(T::one(), &a, &d_w, T::one(), &mut c);
    }
    direct::unpad_image(g, plane, dpad, dx);
}

/// `dL/dW^T += X_col D^T` for one image, for stride 1 and at most `KC` positions at the
/// plane's stride, without the patch matrix: `D^T` is written at the plane's stride
/// (`d_t` `(oh wp, c_out)`, its rows at `wide_positions`, the columns past `ow` 0), then
/// for each tap `t`, one product adds `sum_q pad[c, tap_t + q] D^T[q, o]` to row `(c, t)`
/// of `dw_t` `(c_in kh kw, c_out)`. Each sum is the one the patch matrix gives (one block
/// of the inner index, the same terms in the same order, and zeros): the same bits.
pub(super) fn weight_grad_by_taps<T: Float>(
    g: &Patches,
    plane: &Plane,
    pad: &[T],
    (d, d_t, wide_positions): (&[T], &mut [T], &[usize]),
    mut dw_t: ArrayViewMut2<T>,
) {
    let (taps, c_out) = (g.kh * g.kw, dw_t.ncols());
    spread_t(g, plane, d, d_t);
    let d_t = RowsB::new(d_t, wide_positions, c_out);
    for t in 0..taps {
        let at = plane.tap(g, t);
        let a = ArrayView2::from_shape((g.c, plane.out).strides((plane.len, 1)), &pad[at..])
            .expect("the planes from tap t");
        let mut c = dw_t.slice_mut(ndarray::s![t..;taps, ..]);
        product_rows(T::one(), &a, &d_t, T::one(), &mut c);
    }
}

/// The output gradient `d` `(c_out, oh ow)` at the plane's stride and transposed, `dt`
/// `(out, c_out)`, with the discarded positions 0.
fn spread_t<T: Float>(g: &Patches, p: &Plane, d: &[T], dt: &mut [T]) {
    let c_out = d.len() / (g.oh * g.ow);
    for (q, row) in dt.chunks_exact_mut(c_out).enumerate() {
        let (y, x) = (q / p.wp, q % p.wp);
        if x < g.ow {
            let at = y * g.ow + x;
            row.iter_mut()
                .enumerate()
                .for_each(|(o, v)| *v = d[o * g.oh * g.ow + at]);
        } else {
            row.fill(T::zero());
        }
    }
}

#[cfg(all(test, not(feature = "blas")))]
mod tests {
    use super::*;
    use crate::compute::product;
    use crate::layers::patches::{unpatch_into, PaddedPatches};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Both products by taps against the patch matrix's (written from the planes, then
    /// `product` and `col2im_padded`), in `f32` where sums in another order round
    /// differently: the same bits, over paddings, kernels, channel counts on each side of
    /// the tile's width, and a start of the weight gradient that is not 0. (Not with `blas`:
    /// the system library blocks its sums its own way for each shape, so the two only
    /// agree to rounding; the gradient checks cover that build.)
    #[test]
    fn the_products_by_taps_have_the_patch_matrixs_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (c, h, w, kh, kw, [top, bottom, left, right], c_out) in [
            (3, 7, 7, 3, 3, [1, 1, 1, 1], 32),
            (2, 14, 14, 3, 3, [1, 1, 1, 1], 40),
            (4, 9, 8, 2, 3, [0, 2, 1, 0], 33),
            (1, 5, 6, 1, 1, [0, 0, 0, 0], 7),
            (5, 4, 4, 3, 3, [2, 2, 2, 2], 3),
            (8, 16, 16, 3, 3, [0, 0, 0, 0], 16),
        ] {
            let g = Patches::unit_stride(c, [h, w], [kh, kw], [top, bottom, left, right]);
            let plane = Plane::of(&g).expect("stride 1");
            let (k, p, out) = (g.rows(), g.positions(), plane.out);
            let mut random =
                |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
            let (x, d) = (random(c * h * w), random(c_out * p));
            let w_t = Array2::from_shape_vec((k, c_out), random(k * c_out)).expect("k c_out");
            let dw0 = Array2::from_shape_vec((c_out, k), random(c_out * k)).expect("c_out k");
            let mut pad = vec![f32::NAN; c * plane.len];
            direct::pad_image(&g, &plane, &x, &mut pad);
            let dm = ArrayView2::from_shape((c_out, p), &d).expect("c_out p");
            let what = format!("{c}x{h}x{w}, kernel {kh}x{kw}, {c_out} out");

            let mut cols = vec![f32::NAN; k * p];
            PaddedPatches::new(&g, &plane, &pad).write(&mut cols);
            let cm = ArrayView2::from_shape((k, p), &cols).expect("k p");
            let mut want = dw0.clone();
            product(1.0, &cm, &dm.t(), 1.0, &mut want.view_mut().reversed_axes());
            let mut got = dw0.clone();
            let positions: Vec<usize> = (0..out).map(|q| q * c_out).collect();
            let mut d_t = vec![f32::NAN; out * c_out];
            let d_t = (d.as_slice(), d_t.as_mut_slice(), positions.as_slice());
            weight_grad_by_taps(&g, &plane, &pad, d_t, got.view_mut().reversed_axes());
            assert_eq!(
                bits(got.as_slice().unwrap()),
                bits(want.as_slice().unwrap()),
                "dW {what}"
            );

            let mut d_cols = vec![f32::NAN; k * p];
            let mut dcm = ArrayViewMut2::from_shape((k, p), &mut d_cols).expect("k p");
            product(1.0, &w_t.view(), &dm, 0.0, &mut dcm);
            let (mut want, mut got) = (vec![f32::NAN; c * h * w], vec![f32::NAN; c * h * w]);
            let mut dpad = vec![f32::NAN; c * plane.len];
            unpatch_into(&g, Some(&plane), &d_cols, &mut dpad, &mut want);
            let rows: Vec<usize> = (0..c_out).map(|o| o * out).collect();
            let mut d_wide = vec![f32::NAN; c_out * out];
            let d_wide = (d.as_slice(), d_wide.as_mut_slice(), rows.as_slice());
            input_grad_by_taps(&g, &plane, w_t.view(), d_wide, &mut dpad, &mut got);
            assert_eq!(bits(&got), bits(&want), "dx {what}");
        }
    }
}
