//! Where the matrix product's `B` comes from: a strided matrix ([`Strided`]), packed by
//! `pack.rs`, or an operand that packs itself ([`PackB`], through [`Packing`]), as the
//! patches of a convolution do. `gemm.rs` is generic over the two ([`SourceB`]).

#![cfg_attr(feature = "blas", allow(dead_code))]

use std::ops::Range;

use super::pack::pack;
use crate::float::Float;

/// A `(k, n)` operand `B` that writes its own packed blocks, so that a caller whose `B` is
/// computed from other data (the patches of a convolution, read from the image) skips
/// writing `B` out and copying it again into the packing buffer. The product's other
/// arithmetic is unchanged: the same bits as `product` with `B` written out.
pub(crate) trait PackB<T>: Sync {
    /// `(k, n)`.
    fn shape(&self) -> (usize, usize);

    /// Packs rows `rows` and columns `cols` of `B` into slivers `nr` columns wide:
    /// `out[(s kc + p) nr + i] = B[rows.start + p, cols.start + s nr + i]` for the block's
    /// `kc = rows.len()` rows, with zeros past the block's last column. `out` holds
    /// `ceil(cols.len() / nr) nr kc` elements.
    fn pack(&self, rows: Range<usize>, cols: Range<usize>, nr: usize, out: &mut [T]);
}

/// Where the product's `B` comes from: a strided matrix, or an operand that packs itself.
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

/// A [`PackB`] operand, from its column `.1` on.
pub(super) struct Packing<'a, B>(pub &'a B, pub usize);

impl<B> Clone for Packing<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for Packing<'_, B> {}

impl<T: Float, B: PackB<T>> SourceB<T> for Packing<'_, B> {
    unsafe fn pack_block<const NR: usize>(
        &self,
        (pc, kcb): (usize, usize),
        (jc, ncb): (usize, usize),
        out: *mut T,
    ) {
        let Packing(b, first) = *self;
        let len = ncb.div_ceil(NR) * NR * kcb;
        // SAFETY: the caller promised `out` holds this many elements, in the packing
        // buffer, which nothing else borrows while the product runs.
        let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
        b.pack(pc..pc + kcb, first + jc..first + jc + ncb, NR, out);
    }

    fn skip_columns(self, first: usize) -> Self {
        Packing(self.0, self.1 + first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::gemm::{product, product_packing};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A `B` that packs itself by reading a matrix: the product then has the bits of the
    /// plain one, for blocks of rows and columns past `KC` and `NC`, split over threads.
    struct SelfPacking(Array2<f32>);

    impl PackB<f32> for SelfPacking {
        fn shape(&self) -> (usize, usize) {
            self.0.dim()
        }

        fn pack(&self, rows: Range<usize>, cols: Range<usize>, nr: usize, out: &mut [f32]) {
            let kc = rows.len();
            for (i, v) in out.iter_mut().enumerate() {
                let (s, rest) = (i / (nr * kc), i % (nr * kc));
                let (p, j) = (rows.start + rest / nr, cols.start + s * nr + rest % nr);
                *v = if j < cols.end { self.0[[p, j]] } else { 0.0 };
            }
        }
    }

    #[test]
    fn a_self_packing_operand_gives_the_plain_products_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (m, k, n) in [
            (1, 1, 1),
            (7, 257, 17),
            (32, 288, 196),
            (5, 300, 1100),
            (70, 9, 784),
        ] {
            let a = Array2::from_shape_fn((m, k), |_| rng.random_range(-1.0f32..1.0));
            let b = SelfPacking(Array2::from_shape_fn((k, n), |_| {
                rng.random_range(-1.0..1.0)
            }));
            let c0 = Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0f32..1.0));
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0)] {
                let (mut want, mut got) = (c0.clone(), c0.clone());
                product(alpha, &a.view(), &b.0.view(), beta, &mut want.view_mut());
                product_packing(alpha, &a.view(), &b, beta, &mut got.view_mut());
                let bits = |c: &Array2<f32>| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "({m}, {k}, {n}), beta {beta}");
            }
        }
    }
}
