//! Where the matrix product's `B` comes from: a strided matrix ([`Strided`]), packed by
//! `pack.rs`, or rows read where they lie ([`RowsB`], through [`InPlace`]), as the patches
//! of a convolution in the image's padded planes. `gemm.rs` is generic over the two
//! ([`SourceB`]).

#![cfg_attr(feature = "blas", allow(dead_code))]

use super::pack::pack;
use crate::float::Float;

/// Where the product's `B` comes from: a strided matrix, packed, or rows read in place.
pub(super) trait SourceB<T>: Copy {
    /// Packs rows `pc .. pc + kcb` and columns `jc .. jc + ncb` into slivers `NR` wide, as
    /// [`pack`] does.
    ///
    /// # Safety
    /// The block is inside `B`; `out` holds `ceil(ncb / NR) NR kcb` elements.
    unsafe fn pack_block<const NR: usize>(
        &self,
        rows: (usize, usize),
        cols: (usize, usize),
        out: *mut T,
    );

    /// The same operand without its first `first` columns.
    fn skip_columns(self, first: usize) -> Self;

    /// Where the kernel may read the sliver of rows `pc ..` and columns `col .. col + NR`
    /// in place, `(base, offsets)`: step `p` at `base + offsets[p]` (see `RowsKernel`);
    /// `None` when the sliver must be packed.
    fn in_place(&self, _pc: usize, _col: usize) -> Option<(*const T, *const usize)> {
        None
    }
}

/// `B` as `(pointer, row stride, column stride)`, in elements.
#[derive(Clone, Copy)]
pub(super) struct Strided<T>(pub *const T, pub isize, pub isize);

// SAFETY: the product only reads `B`.
unsafe impl<T: Sync> Sync for Strided<T> {}

impl<T: Float> SourceB<T> for Strided<T> {
    unsafe fn pack_block<const NR: usize>(
        &self,
        (pc, kcb): (usize, usize),
        (jc, ncb): (usize, usize),
        out: *mut T,
    ) {
        let Strided(b, rsb, csb) = *self;
        let block = b.wrapping_offset(pc as isize * rsb + jc as isize * csb);
        // SAFETY: as the caller promised.
        unsafe { pack::<T, NR>(ncb, kcb, block, csb, rsb, out) };
    }

    fn skip_columns(self, first: usize) -> Self {
        let Strided(b, rsb, csb) = self;
        Strided(b.wrapping_offset(first as isize * csb), rsb, csb)
    }
}

/// A `(k, n)` operand `B` read where it lies: row `p` is the `n` values at
/// `data[offsets[p]..]`. The rows of a matrix in place (`offsets[p] = p * stride`), or the
/// patch matrix of a stride-1 convolution read from the image's padded planes (one offset
/// per tap: the patches over a row of the padded width are a run of the plane). Full
/// slivers go to the kernel unpacked; only a last sliver narrower than the tile is packed.
/// The same bits as the product of `B` written out.
#[derive(Clone, Copy)]
pub(crate) struct RowsB<'a, T> {
    data: &'a [T],
    offsets: &'a [usize],
    n: usize,
}

impl<'a, T> RowsB<'a, T> {
    /// Rows `data[offsets[p]..][..n]`.
    ///
    /// # Panics
    /// If a row runs past the end of `data` (an internal invariant of the callers).
    pub(crate) fn new(data: &'a [T], offsets: &'a [usize], n: usize) -> Self {
        let end = offsets.iter().map(|&o| o + n).max().unwrap_or(0);
        assert!(
            end <= data.len(),
            "rows of B run to {end}, past {}",
            data.len()
        );
        RowsB { data, offsets, n }
    }

    /// `(k, n)`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.offsets.len(), self.n)
    }

    /// Row `p` of `B`.
    #[cfg(any(test, feature = "blas"))]
    pub(crate) fn row(&self, p: usize) -> &[T] {
        &self.data[self.offsets[p]..][..self.n]
    }
}

/// A [`RowsB`] as the product reads it, from its column `first` on.
#[derive(Clone, Copy)]
pub(super) struct InPlace<T> {
    pub data: *const T,
    pub offsets: *const usize,
    pub first: usize,
}

// SAFETY: the product only reads `B`.
unsafe impl<T: Sync> Sync for InPlace<T> {}

impl<T: Float> InPlace<T> {
    pub(super) fn of(b: &RowsB<'_, T>) -> Self {
        InPlace {
            data: b.data.as_ptr(),
            offsets: b.offsets.as_ptr(),
            first: 0,
        }
    }
}

impl<T: Float> SourceB<T> for InPlace<T> {
    /// Packs only the block's last sliver, if it is narrower than `NR` (the others are
    /// read in place): at its place in the packed block, with zeros past the last column.
    unsafe fn pack_block<const NR: usize>(
        &self,
        (pc, kcb): (usize, usize),
        (jc, ncb): (usize, usize),
        out: *mut T,
    ) {
        let full = ncb / NR * NR;
        let live = ncb - full;
        if live == 0 {
            return;
        }
        for p in 0..kcb {
            // SAFETY: row pc + p is inside B, its columns up to jc + ncb inside the row (as
            // `RowsB::new` checked); the sliver's step p is inside `out`.
            unsafe {
                let row = self
                    .data
                    .add(*self.offsets.add(pc + p) + self.first + jc + full);
                let dst = out.add(full * kcb + p * NR);
                std::ptr::copy_nonoverlapping(row, dst, live);
                std::slice::from_raw_parts_mut(dst.add(live), NR - live).fill(T::zero());
            }
        }
    }

    fn skip_columns(self, first: usize) -> Self {
        InPlace {
            first: self.first + first,
            ..self
        }
    }

    fn in_place(&self, pc: usize, col: usize) -> Option<(*const T, *const usize)> {
        Some((
            self.data.wrapping_add(self.first + col),
            self.offsets.wrapping_add(pc),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::gemm::{product, product_rows};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `B` read in place, its rows anywhere in a buffer (overlapping, as a convolution's
    /// taps do): the bits of the plain product with `B` written out, for blocks of rows
    /// and columns past `KC` and `NC`, last slivers narrower than the tile, and products
    /// split over threads.
    #[test]
    fn rows_in_place_give_the_plain_products_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (m, k, n) in [
            (1, 1, 1),
            (7, 257, 17),
            (32, 288, 196),
            (5, 300, 1100),
            (70, 9, 784),
            (40, 33, 2100),
        ] {
            let data: Vec<f32> = (0..3 * n + 50)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let offsets: Vec<usize> = (0..k).map(|_| rng.random_range(0..=2 * n + 50)).collect();
            let rows = RowsB::new(&data, &offsets, n);
            let b = Array2::from_shape_fn((k, n), |(p, j)| rows.row(p)[j]);
            let a = Array2::from_shape_fn((m, k), |_| rng.random_range(-1.0f32..1.0));
            let c0 = Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0f32..1.0));
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                let (mut want, mut got) = (c0.clone(), c0.clone());
                product(alpha, &a.view(), &b.view(), beta, &mut want.view_mut());
                product_rows(alpha, &a.view(), &rows, beta, &mut got.view_mut());
                let bits = |c: &Array2<f32>| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "({m}, {k}, {n}), beta {beta}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "rows of B run to")]
    fn rows_past_the_buffer_are_refused() {
        let data = [0.0f32; 10];
        let _ = RowsB::new(&data, &[0, 4], 7);
    }
}
