//! What the image layers (convolutions, pooling, upsampling) share: an image row as a flat
//! slice, copies of short image rows, the bias and activation over channels, the bias
//! gradient, the 8 row blocks' plumbing, and inference through any kind.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::activation::Activation;
use crate::compute::{for_each_block, row_blocks, row_blocks_mut, simd_dispatch, ROW_BLOCKS};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::LayerKind;

/// A row of the model's buffers as a flat slice.
///
/// # Panics
/// If the row is not contiguous (the model's buffers always are).
pub(super) fn flat<'a, T>(row: ArrayView1<'a, T>) -> &'a [T] {
    row.to_slice().expect("image layers read contiguous rows")
}

/// [`flat`] of a mutable row.
pub(super) fn flat_mut<'a, T>(row: ArrayViewMut1<'a, T>) -> &'a mut [T] {
    row.into_slice()
        .expect("image layers write contiguous rows")
}

/// `dst.copy_from_slice(src)` for the short rows of images (a few to a few dozen values),
/// without a call to `memcpy` per row: copies of 8 values, the last one overlapping the one
/// before (the same values land twice), inlined. Measured: `memcpy`'s call and dispatch
/// cost more than the copy itself at these lengths, and image layers copy rows by the
/// thousand per batch.
///
/// # Panics
/// If the lengths differ (an internal invariant).
#[inline(always)]
pub(super) fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    const LANES: usize = 8;
    let n = src.len();
    assert_eq!(dst.len(), n, "rows of equal length");
    if n < LANES {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s;
        }
        return;
    }
    let mut at = 0;
    loop {
        let chunk: [T; LANES] = src[at..at + LANES].try_into().expect("8 values");
        dst[at..at + LANES].copy_from_slice(&chunk);
        if at + LANES == n {
            return;
        }
        at = (at + LANES).min(n - LANES);
    }
}

/// `z[c, q] += b[c]` for each channel `c` of a row `(channels, q)`, then `a = s(z)`.
pub(super) fn bias_activate<T: Float>(
    bias: &[T],
    activation: Activation,
    z: &mut [T],
    a: &mut [T],
) {
    bias_activate_wide(bias, activation, z, a);
}

simd_dispatch! {
    /// [`bias_activate_plain`], for AVX-512F or AVX2 when available.
    fn bias_activate_wide / bias_activate_plain<T>(
        bias: &[T],
        activation: Activation,
        z: &mut [T],
        a: &mut [T],
    )
    where T: Float
}

#[inline(always)]
fn bias_activate_plain<T: Float>(bias: &[T], activation: Activation, z: &mut [T], a: &mut [T]) {
    let q = z.len() / bias.len().max(1);
    for ((zc, ac), &b) in z.chunks_exact_mut(q).zip(a.chunks_exact_mut(q)).zip(bias) {
        match activation {
            Activation::Identity => zc.iter_mut().zip(ac).for_each(|(z, a)| {
                *z += b;
                *a = *z;
            }),
            Activation::Relu => zc.iter_mut().zip(ac).for_each(|(z, a)| {
                *z += b;
                *a = if *z > T::zero() { *z } else { T::zero() };
            }),
            other => zc.iter_mut().zip(ac).for_each(|(z, a)| {
                *z += b;
                *a = other.value(*z);
            }),
        }
    }
}

/// `a = s(z)` over a row.
pub(super) fn activate<T: Float>(activation: Activation, z: &[T], a: &mut [T]) {
    match activation {
        Activation::Identity => a.copy_from_slice(z), // one long row: memcpy is right
        other => a.iter_mut().zip(z).for_each(|(a, &z)| *a = other.value(z)),
    }
}

/// The bias gradient's part from one row `d` `(c, q)` flat: each channel's sum over its
/// positions, from zero, in order, into `sums` `(c)`. Eight channels' sums run side by side
/// (each waits only on its own additions), with the bits of one at a time. Added to the
/// gradient in the batch's row order ([`add_channel_sums`]), these give
/// `dL/db_c = sum over rows and positions of d_z[row, (c, q)]`.
pub(super) fn channel_sums<T: Float>(d: &[T], sums_out: &mut [T]) {
    let q = d.len() / sums_out.len().max(1);
    let mut channels = d.chunks_exact(q);
    let mut outs = sums_out.chunks_exact_mut(8);
    for out in &mut outs {
        let d: [&[T]; 8] = std::array::from_fn(|_| channels.next().expect("8 channels"));
        out.copy_from_slice(&sums(d));
    }
    for (out, d) in outs.into_remainder().iter_mut().zip(channels) {
        *out = sums([d])[0];
    }
}

/// Adds rows of channel sums `sums` `(rows, c)` flat into `grad` `(c)`, in row order.
pub(super) fn add_channel_sums<T: Float>(sums: &[T], grad: &mut [T]) {
    for row in sums.chunks_exact(grad.len().max(1)) {
        grad.iter_mut().zip(row).for_each(|(g, &s)| *g += s);
    }
}

/// `[sum of d[0], ..., sum of d[N - 1]]`, each from zero in order (`fold(0, +)`), side by
/// side; the slices have equal lengths.
#[inline(always)]
fn sums<T: Float, const N: usize>(d: [&[T]; N]) -> [T; N] {
    let n = d[0].len();
    let d = d.map(|d| &d[..n]);
    let mut s = [T::zero(); N];
    for i in 0..n {
        for (s, d) in s.iter_mut().zip(&d) {
            *s += d[i];
        }
    }
    s
}

/// The 8 blocks' optional input-gradient views.
pub(super) fn optional_blocks<T>(
    d_input: Option<ArrayViewMut2<'_, T>>,
) -> [Option<ArrayViewMut2<'_, T>>; ROW_BLOCKS] {
    match d_input {
        Some(d) => row_blocks_mut(d).map(Some),
        None => std::array::from_fn(|_| None),
    }
}

/// [`LayerKind::forward`] of a per-row kind: the batch cut into the fixed blocks, each
/// through [`LayerKind::forward_rows`] on the pool's threads (`work`: the pass's size, which
/// decides whether threads are woken).
pub(super) fn forward_by_blocks<T: Float, L: LayerKind<T> + Sync>(
    layer: &L,
    input: ArrayView2<T>,
    mut z: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    work: usize,
) {
    let input = input.as_standard_layout(); // copies only a caller's non-contiguous view
    let blocks = zip3(
        row_blocks(input.view()),
        row_blocks_mut(z.view_mut()),
        row_blocks_mut(a.view_mut()),
    );
    for_each_block(work, indexed(blocks), |(block, (x, z, a))| {
        layer.forward_rows(block, x, z, a);
        0.0
    });
}

/// [`LayerKind::backward`] of a per-row kind: [`LayerKind::backward_begin`], the fixed
/// blocks through [`LayerKind::backward_rows`] on the pool's threads, then
/// [`LayerKind::backward_end`].
pub(super) fn backward_by_blocks<T: Float, L: LayerKind<T> + Sync>(
    layer: &mut L,
    input: ArrayView2<T>,
    d_z: ArrayView2<T>,
    d_input: Option<ArrayViewMut2<T>>,
    work: usize,
) {
    // Copies only a caller's non-contiguous view (the model's buffers are contiguous).
    let (input, d_z) = (input.as_standard_layout(), d_z.as_standard_layout());
    layer.backward_begin();
    let blocks = zip3(
        row_blocks(input.view()),
        row_blocks(d_z.view()),
        optional_blocks(d_input),
    );
    let shared = &*layer;
    for_each_block(work, indexed(blocks), |(block, (x, d_z, d_in))| {
        shared.backward_rows(block, x, d_z, d_in);
        0.0
    });
    layer.backward_end();
}

/// Three arrays of blocks side by side.
pub(super) fn zip3<A, B, C>(
    a: [A; ROW_BLOCKS],
    b: [B; ROW_BLOCKS],
    c: [C; ROW_BLOCKS],
) -> [(A, B, C); ROW_BLOCKS] {
    let (mut b, mut c) = (b.map(Some), c.map(Some));
    let mut i = 0;
    a.map(|a| {
        i += 1;
        let (b, c) = (b[i - 1].take(), c[i - 1].take());
        (a, b.expect("as many blocks"), c.expect("as many blocks"))
    })
}

/// Each block with its index (which picks its scratch buffer).
pub(super) fn indexed<P>(parts: [P; ROW_BLOCKS]) -> [(usize, P); ROW_BLOCKS] {
    let mut i = 0;
    parts.map(|p| {
        i += 1;
        (i - 1, p)
    })
}

/// `a = s(f(input))` for any kind, allocating the outputs, with the input width checked.
pub(super) fn infer_kind<T: Float, L: LayerKind<T>>(
    layer: &L,
    input: ArrayView2<T>,
    context: &'static str,
) -> Result<Array2<T>> {
    if input.ncols() != layer.n_in() {
        return Err(Error::ShapeMismatch {
            context,
            expected: format!("(_, {})", layer.n_in()),
            found: format!("{:?}", input.dim()),
        });
    }
    let mut z = Array2::zeros((input.nrows(), layer.n_out()));
    let mut a = Array2::zeros((input.nrows(), layer.n_out()));
    let input = input.as_standard_layout();
    layer.forward(input.view(), z.view_mut(), a.view_mut());
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `copy_row` copies every value for every length (below, at and between multiples of
    /// its 8-value copies) and touches nothing outside the row.
    #[test]
    fn copy_row_copies_rows_of_any_length() {
        for n in 0..40 {
            let src: Vec<u32> = (1..=n as u32).collect();
            let mut dst = vec![0u32; n + 2];
            copy_row(&mut dst[1..=n], &src);
            assert_eq!(dst[1..=n], src[..], "length {n}");
            assert_eq!((dst[0], dst[n + 1]), (0, 0), "length {n}");
        }
    }

    /// `channel_sums` (eight channels side by side, then the rest) and `add_channel_sums`
    /// give the bits of one channel at a time, each row's sum from zero in order, rows in
    /// order.
    #[test]
    fn bias_grad_adds_in_the_documented_order() {
        let (rows, channels, q) = (3, 11, 37);
        let d = ndarray::Array2::from_shape_fn((rows, channels * q), |(r, i)| {
            ((r * 131 + i * 7919) % 1000) as f32 * if i % 3 == 0 { 10.0 } else { 1e-3 }
        });
        let mut expected = vec![0.5f32; channels];
        for row in d.rows() {
            for (g, part) in expected.iter_mut().zip(flat(row).chunks_exact(q)) {
                *g += part.iter().fold(0.0, |s, &v| s + v);
            }
        }
        let mut sums = vec![f32::NAN; rows * channels];
        for (row, out) in d.rows().into_iter().zip(sums.chunks_exact_mut(channels)) {
            channel_sums(flat(row), out);
        }
        let mut got = vec![0.5f32; channels];
        add_channel_sums(&sums, &mut got);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected));
    }
}
