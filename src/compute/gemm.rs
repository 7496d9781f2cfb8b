//! Matrix products, `C = alpha A B + beta C`: the crate's own, so that a training step
//! allocates nothing.
//!
//! `ndarray`'s `general_mat_mul` (matrixmultiply) takes a packing buffer from the allocator
//! on every call. This product packs into a buffer that belongs to the calling thread and
//! lives as long as the thread, allocated at the thread's first product (the pool's helper
//! threads: when they start): a fixed size set by the block sizes, not by the matrices
//! (`pack.rs`). The algorithm is the usual one (BLIS, Goto):
//! blocks of `KC` inner indices and `NC` columns of `B` are packed into slivers `NR`
//! columns wide; blocks of `MC` rows of `A` are packed into slivers `MR` rows tall (or read
//! in place when `A`'s rows are contiguous); a micro-kernel multiplies one sliver of each
//! into an `MR x NR` tile of `C` held in registers (`kernel.rs`). On x86-64 the kernels use
//! AVX-512F (`f32`: 8 x 32, `f64`: 8 x 16) or AVX2 and FMA (6 x 16, 6 x 8) when the CPU has
//! them; elsewhere a portable kernel of the AVX2 shape runs. Each element of `C` gets the
//! same bits from all of them.
//!
//! Threads: a product large enough to pay for waking a thread is split into one block of
//! rows (or of columns, when `B` is wider than `A` is tall) per thread, on boundaries of the
//! tile grid, and each thread runs the whole algorithm on the blocks it claims, with its
//! own buffer (see `threads::run_parallel`).
//! Every element of `C` then sees the same sums in the same order whatever the thread
//! count, so results are identical bit for bit for any number of threads.
//!
//! With the `blas` feature, products go to the system OpenBLAS through `general_mat_mul`
//! (and the code below is not used).
#![cfg_attr(feature = "blas", allow(dead_code))]

use ndarray::{ArrayView2, ArrayViewMut2};

use super::kernel::{is_f32, kernel, Kernel, RowsKernel};
#[cfg(not(feature = "blas"))]
use super::kernel::{tile, Tile};
#[cfg(not(feature = "blas"))]
use super::operand::{InPlace, Strided};
use super::operand::{RowsB, SourceB};
use super::pack::{pack, with_packing_buffer, PACK_BYTES};
#[cfg(not(feature = "blas"))]
use super::threads::{run_parallel, threads};
use crate::error::{Error, Result};
use crate::float::Float;

/// `C = alpha A B + beta C`, for `A` `(m, k)`, `B` `(k, n)` and `C` `(m, n)` of any strides.
///
/// The crate's matrix product (the one every layer uses), as `ndarray`'s `general_mat_mul`
/// but allocation-free after the calling thread's first call, and split over
/// [`threads`](super::threads::threads()) threads when the product is large. With
/// `beta == 0`, `C`'s old values are not read (NaN in `C` does not leak into the result).
/// Results are the same bits for any thread count.
///
/// ```
/// use ndarray::array;
/// # fn main() -> autoencoder::Result<()> {
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let b = array![[1.0f32, 0.0], [0.0, 1.0]];
/// let mut c = array![[1.0f32, 1.0], [1.0, 1.0]];
/// autoencoder::compute::gemm(2.0, &a.view(), &b.view(), 1.0, &mut c.view_mut())?;
/// assert_eq!(c, array![[3.0, 5.0], [7.0, 9.0]]);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] unless `A` is `(m, k)`, `B` is `(k, n)` and `C` is `(m, n)`.
pub fn gemm<T: Float>(
    alpha: T,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    beta: T,
    c: &mut ArrayViewMut2<T>,
) -> Result<()> {
    if a.ncols() != b.nrows() || c.dim() != (a.nrows(), b.ncols()) {
        return Err(Error::ShapeMismatch {
            context: "gemm",
            expected: "A (m, k), B (k, n), C (m, n)".into(),
            found: format!("A {:?}, B {:?}, C {:?}", a.dim(), b.dim(), c.dim()),
        });
    }
    product(alpha, a, b, beta, c);
    Ok(())
}

/// [`gemm`] without the shape check, for the layers (which check shapes once per call).
///
/// # Panics
/// If the shapes disagree (an internal invariant).
pub(crate) fn product<T: Float>(
    alpha: T,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    beta: T,
    c: &mut ArrayViewMut2<T>,
) {
    assert!(
        a.ncols() == b.nrows() && c.dim() == (a.nrows(), b.ncols()),
        "gemm shapes: A {:?}, B {:?}, C {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    #[cfg(feature = "blas")]
    {
        ndarray::linalg::general_mat_mul(alpha, a, b, beta, c);
    }
    #[cfg(not(feature = "blas"))]
    {
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        let [rsa, csa] = [a.strides()[0], a.strides()[1]];
        let [rsb, csb] = [b.strides()[0], b.strides()[1]];
        let [rsc, csc] = [c.strides()[0], c.strides()[1]];
        let mats = Mats {
            m,
            k,
            n,
            a: (a.as_ptr(), rsa, csa),
            b: Strided(b.as_ptr(), rsb, csb),
            c: (c.as_mut_ptr(), rsc, csc),
        };
        // SAFETY: the pointers and strides come from live views of the checked shapes, and
        // `C` is borrowed mutably, so it does not overlap `A` or `B`.
        unsafe { dispatch(alpha, beta, &mats) }
    }
}

/// [`product`] with a `B` read where it lies (see [`RowsB`]): `C = alpha A B + beta C`,
/// the same bits as with `B` written out.
///
/// With the `blas` feature, `B` is written out (into the thread's packing buffer, which
/// the system library does not use; a `B` larger than it, into a buffer allocated for the
/// call) and passed to the system library.
///
/// # Panics
/// If the shapes disagree (an internal invariant).
pub(crate) fn product_rows<T: Float>(
    alpha: T,
    a: &ArrayView2<T>,
    b: &RowsB<'_, T>,
    beta: T,
    c: &mut ArrayViewMut2<T>,
) {
    let (k, n) = b.shape();
    assert!(
        a.ncols() == k && c.dim() == (a.nrows(), n),
        "gemm shapes: A {:?}, B {:?}, C {:?}",
        a.dim(),
        (k, n),
        c.dim()
    );
    #[cfg(feature = "blas")]
    {
        // `B` written out into this thread's packing buffer (unused by the system
        // library), or into a buffer of its own when larger.
        let elements = k * n;
        let mut run = |whole: &mut [T]| {
            for (p, dst) in whole.chunks_exact_mut(n.max(1)).enumerate().take(k) {
                dst.copy_from_slice(b.row(p));
            }
            let whole = ArrayView2::from_shape((k, n), &*whole).expect("k n elements");
            ndarray::linalg::general_mat_mul(alpha, a, &whole, beta, c);
        };
        if elements * std::mem::size_of::<T>() <= PACK_BYTES {
            with_packing_buffer(|base| {
                // SAFETY: the buffer holds PACK_BYTES bytes, aligned to 64, that nothing
                // else uses while this product runs; every element is written before read.
                let whole = unsafe { std::slice::from_raw_parts_mut(base.cast::<T>(), elements) };
                run(whole)
            });
        } else {
            run(&mut vec![T::zero(); elements]);
        }
    }
    #[cfg(not(feature = "blas"))]
    {
        let [rsa, csa] = [a.strides()[0], a.strides()[1]];
        let [rsc, csc] = [c.strides()[0], c.strides()[1]];
        let mats = Mats {
            m: a.nrows(),
            k,
            n,
            a: (a.as_ptr(), rsa, csa),
            b: InPlace::of(b),
            c: (c.as_mut_ptr(), rsc, csc),
        };
        // SAFETY: the pointers and strides come from live views of the checked shapes (and
        // `RowsB` checked its rows), and `C` is borrowed mutably, so it does not overlap
        // `A`; `B` is only read.
        unsafe { dispatch(alpha, beta, &mats) }
    }
}

/// A product's operands: `A` and `C` as raw parts, `(pointer, row stride, column stride)`
/// in elements, and `B` as a [`SourceB`].
#[derive(Clone, Copy)]
struct Mats<T, B> {
    m: usize,
    k: usize,
    n: usize,
    a: (*const T, isize, isize),
    b: B,
    c: (*mut T, isize, isize),
}

// SAFETY: a product's threads write disjoint blocks of `C` and only read `A` and `B`.
unsafe impl<T: Sync, B: Sync> Sync for Mats<T, B> {}

/// A kernel and the block sizes that go with it (the tile, `MR x NR`, is a const parameter
/// of the functions that use the plan).
struct Plan<T> {
    kernel: Kernel<T>,
    rows: RowsKernel<T>,
    mc: usize,
    kc: usize,
    nc: usize,
}

/// The largest `MR * NR` of any plan (edge tiles go through a stack tile this big).
const MAX_TILE: usize = 256;

/// The plans' block sizes: `MC` rows of `A`, `KC` inner indices, `NC` columns of `B`
/// (`f32`, `f64`); tiles are `MR = 6` or 8 rows tall (`TILE_ROWS`: the most).
const MC: usize = 96;
pub(crate) const KC: usize = 256;
const NC_F32: usize = 1024;
const NC_F64: usize = 512;
const TILE_ROWS: usize = 8;

// Each plan's packing regions (a block of each operand and an edge sliver of `A`,
// `(MC + MR) * KC + KC * NC` elements) fit in the thread's packing buffer.
const _: () = assert!(
    ((MC + TILE_ROWS) * KC + KC * NC_F32) * 4 <= PACK_BYTES
        && ((MC + TILE_ROWS) * KC + KC * NC_F64) * 8 <= PACK_BYTES
);

/// The plan for `T` and tiles `NR` wide: its micro-kernel (see `kernel.rs`) and block
/// sizes.
fn plan<T: Float, const NR: usize>() -> Plan<T> {
    let kernels = kernel::<T, NR>();
    Plan {
        kernel: kernels.packed,
        rows: kernels.rows,
        mc: MC,
        kc: KC,
        nc: if is_f32::<T>() { NC_F32 } else { NC_F64 },
    }
}

/// Below this many multiply-adds (`m * k * n`) a product runs on the calling thread alone:
/// about 20 microseconds of work, a few times what waking a thread costs.
const PARALLEL_WORK: usize = 1 << 20;

/// Splits the product over threads (see the module docs) and runs each block.
///
/// # Safety
/// `mats` describes live matrices of its shapes; `C` overlaps neither `A` nor `B`.
#[cfg(not(feature = "blas"))]
unsafe fn dispatch<T: Float, B: SourceB<T> + Sync>(alpha: T, beta: T, mats: &Mats<T, B>) {
    // SAFETY: as the caller promised.
    unsafe {
        match (is_f32::<T>(), tile()) {
            (true, Tile::Narrow) => split::<T, B, 6, 16>(alpha, beta, mats),
            (true, Tile::Wide) => split::<T, B, 8, 32>(alpha, beta, mats),
            (false, Tile::Narrow) => split::<T, B, 6, 8>(alpha, beta, mats),
            (false, Tile::Wide) => split::<T, B, 8, 16>(alpha, beta, mats),
        }
    }
}

/// [`dispatch`] for tiles of `MR x NR`.
///
/// # Safety
/// As [`dispatch`].
#[cfg(not(feature = "blas"))]
unsafe fn split<T: Float, B: SourceB<T> + Sync, const MR: usize, const NR: usize>(
    alpha: T,
    beta: T,
    mats: &Mats<T, B>,
) {
    let plan = plan::<T, NR>();
    let Mats { m, k, n, .. } = *mats;
    if m == 0 || n == 0 {
        return;
    }
    let threads = threads();
    let work = m.saturating_mul(k).saturating_mul(n);
    // Split the longer side of C, in whole tiles.
    let (len, unit) = if m >= n { (m, MR) } else { (n, NR) };
    let tiles = len.div_ceil(unit);
    let parts = if work < PARALLEL_WORK {
        1
    } else {
        threads.min(tiles)
    };
    if parts <= 1 {
        // SAFETY: as the caller promised.
        unsafe { serial::<T, B, MR, NR>(&plan, alpha, beta, mats) };
        return;
    }
    let block = |part: usize| {
        let first = tiles * part / parts * unit;
        let end = (tiles * (part + 1) / parts * unit).min(len);
        let mut sub = *mats;
        if m >= n {
            sub.m = end - first;
            sub.a.0 = mats.a.0.wrapping_offset(first as isize * mats.a.1);
            sub.c.0 = mats.c.0.wrapping_offset(first as isize * mats.c.1);
        } else {
            sub.n = end - first;
            sub.b = mats.b.skip_columns(first);
            sub.c.0 = mats.c.0.wrapping_offset(first as isize * mats.c.2);
        }
        // SAFETY: `sub` is a block of the caller's matrices; blocks of C are disjoint.
        unsafe { serial::<T, B, MR, NR>(&plan, alpha, beta, &sub) };
    };
    run_parallel(parts, &block);
}

/// The whole product on this thread: loops over blocks of columns, inner index and rows.
///
/// # Safety
/// As [`dispatch`].
unsafe fn serial<T: Float, B: SourceB<T>, const MR: usize, const NR: usize>(
    plan: &Plan<T>,
    alpha: T,
    beta: T,
    mats: &Mats<T, B>,
) {
    let Mats { m, k, n, .. } = *mats;
    let (c, rsc, csc) = mats.c;
    if k == 0 {
        for i in 0..m as isize {
            for j in 0..n as isize {
                // SAFETY: (i, j) is inside C.
                unsafe {
                    let cij = c.offset(i * rsc + j * csc);
                    *cij = if beta == T::zero() {
                        T::zero()
                    } else {
                        beta * *cij
                    };
                }
            }
        }
        return;
    }
    with_packing_buffer(|base| {
        let base = base.cast::<T>();
        // Layout: B block (KC x NC), A block (MC x KC), an edge sliver of A (MR x KC).
        let packed_b = base;
        let packed_a = base.wrapping_add(plan.kc * plan.nc);
        let edge_a = packed_a.wrapping_add(plan.mc * plan.kc);
        let regions = [packed_b, packed_a, edge_a];
        // SAFETY: the three regions fit in PACK_BYTES for every plan; the caller's promise.
        unsafe { blocks::<T, B, MR, NR>(plan, alpha, beta, mats, regions) }
    })
}

/// The blocked loops of [`serial`], given its packing regions: a block of `B`, a block of
/// `A` and an edge sliver of `A`.
///
/// # Safety
/// As [`dispatch`]; the regions hold `KC * NC`, `MC * KC` and `MR * KC` elements.
unsafe fn blocks<T: Float, B: SourceB<T>, const MR: usize, const NR: usize>(
    plan: &Plan<T>,
    alpha: T,
    beta: T,
    mats: &Mats<T, B>,
    [packed_b, packed_a, edge_a]: [*mut T; 3],
) {
    let Plan {
        kernel,
        rows,
        mc,
        kc,
        nc,
    } = *plan;
    let (mr, nr) = (MR, NR);
    let Mats { m, k, n, .. } = *mats;
    let (a, rsa, csa) = mats.a;
    let (c, rsc, csc) = mats.c;
    // Rows of A contiguous in the inner index: the kernel reads them in place.
    let a_in_place = csa == 1;
    let at = |i: usize, p: usize| a.wrapping_offset(i as isize * rsa + p as isize * csa);
    let mut tile = [T::zero(); MAX_TILE];
    for jc in (0..n).step_by(nc) {
        let ncb = nc.min(n - jc);
        for pc in (0..k).step_by(kc) {
            let kcb = kc.min(k - pc);
            // Later blocks of the inner index add to what the first wrote.
            let beta = if pc == 0 { beta } else { T::one() };
            // SAFETY: the block is inside B; the region holds KC * NC elements.
            unsafe { mats.b.pack_block::<NR>((pc, kcb), (jc, ncb), packed_b) };
            for ic in (0..m).step_by(mc) {
                let mcb = mc.min(m - ic);
                let edge_rows = mcb % mr;
                if !a_in_place {
                    // SAFETY: the block is inside A; the region holds MC * KC elements.
                    unsafe { pack::<T, MR>(mcb, kcb, at(ic, pc), rsa, csa, packed_a) };
                } else if edge_rows > 0 {
                    // The last rows, fewer than MR: packed with zero padding, so the kernel
                    // reads nothing outside A.
                    let first = ic + mcb - edge_rows;
                    // SAFETY: those rows are inside A; the region holds MR * KC elements.
                    unsafe { pack::<T, MR>(edge_rows, kcb, at(first, pc), rsa, csa, edge_a) };
                }
                for jr in (0..ncb).step_by(nr) {
                    let nrb = nr.min(ncb - jr);
                    let b_sliver = packed_b.wrapping_add(jr * kcb);
                    let in_place = (nrb == nr).then(|| mats.b.in_place(pc, jc + jr)).flatten();
                    // The sliver's kernel: `B` read in place, or packed.
                    let run = |a_sliver, ars, acs, alpha, beta, c, rsc, csc| match in_place {
                        // SAFETY: as for the packed sliver: a full sliver of B, in place.
                        Some((base, offsets)) => unsafe {
                            rows(
                                kcb, a_sliver, ars, acs, base, offsets, alpha, beta, c, rsc, csc,
                            )
                        },
                        // SAFETY: slivers of KC x MR and KC x NR, a tile of C.
                        None => unsafe {
                            kernel(kcb, a_sliver, ars, acs, b_sliver, alpha, beta, c, rsc, csc)
                        },
                    };
                    for ir in (0..mcb).step_by(mr) {
                        let mrb = mr.min(mcb - ir);
                        let (a_sliver, ars, acs) = if !a_in_place {
                            (packed_a.wrapping_add(ir * kcb) as *const T, 1, mr as isize)
                        } else if mrb == mr {
                            (at(ic + ir, pc), rsa, 1)
                        } else {
                            (edge_a as *const T, 1, mr as isize)
                        };
                        let c_tile =
                            c.wrapping_offset((ic + ir) as isize * rsc + (jc + jr) as isize * csc);
                        if mrb == mr && nrb == nr {
                            run(a_sliver, ars, acs, alpha, beta, c_tile, rsc, csc);
                        } else {
                            // The stack tile holds MR x NR (<= MAX_TILE) elements.
                            let t = tile.as_mut_ptr();
                            run(a_sliver, ars, acs, T::one(), T::zero(), t, nr as isize, 1);
                            for i in 0..mrb {
                                for j in 0..nrb {
                                    // SAFETY: (i, j) is inside the edge tile of C.
                                    unsafe {
                                        let cij =
                                            c_tile.offset(i as isize * rsc + j as isize * csc);
                                        let r = tile[i * nr + j] * alpha;
                                        *cij = if beta == T::zero() {
                                            r
                                        } else {
                                            r + *cij * beta
                                        };
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The naive triple loop, in f64.
    fn reference(
        alpha: f64,
        a: &ArrayView2<f64>,
        b: &ArrayView2<f64>,
        beta: f64,
        c: &Array2<f64>,
    ) -> Array2<f64> {
        let mut out = c.mapv(|v| v * beta);
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                let dot: f64 = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
                out[[i, j]] += alpha * dot;
            }
        }
        out
    }

    /// Every layout a layer uses (plain, transposed A, transposed B), odd sizes on each side
    /// of the tile and block sizes, alpha and beta, against the triple loop.
    #[test]
    fn matches_the_triple_loop() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (case, &(m, k, n)) in [
            (1, 1, 1),
            (6, 256, 16),
            (7, 257, 17),
            (97, 300, 5),
            (5, 17, 300),
            (257, 95, 33),
            (300, 7, 97),
            (13, 0, 9),
            (40, 1030, 30),
        ]
        .iter()
        .enumerate()
        {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_store = Array2::from_shape_fn(if ta { (k, m) } else { (m, k) }, |_| {
                    rng.random_range(-1.0..1.0)
                });
                let b_store = Array2::from_shape_fn(if tb { (n, k) } else { (k, n) }, |_| {
                    rng.random_range(-1.0..1.0)
                });
                let a = if ta { a_store.t() } else { a_store.view() };
                let b = if tb { b_store.t() } else { b_store.view() };
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                    let c0 = Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0..1.0));
                    let expected = reference(alpha, &a, &b, beta, &c0);
                    let mut c = c0.clone();
                    if beta == 0.0 {
                        c.fill(f64::NAN); // not read when beta is 0
                    }
                    gemm(alpha, &a, &b, beta, &mut c.view_mut())?;
                    let worst = (&c - &expected).iter().fold(0.0f64, |w, d| w.max(d.abs()));
                    assert!(
                        worst < 1e-12 * (k as f64 + 1.0),
                        "case {case} {ta} {tb}: {worst}"
                    );
                    // f32, against the same reference.
                    let mut c32 = c0.mapv(|v| v as f32);
                    let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
                    gemm(
                        alpha as f32,
                        &a32.view(),
                        &b32.view(),
                        beta as f32,
                        &mut c32.view_mut(),
                    )?;
                    let worst = (&c32.mapv(|v| v as f64) - &expected)
                        .iter()
                        .fold(0.0f64, |w, d| w.max(d.abs()));
                    assert!(
                        worst < 1e-5 * (k as f64 + 1.0),
                        "f32 case {case} {ta} {tb}: {worst}"
                    );
                }
            }
        }
        // Negative strides: A with its rows reversed, B with its columns reversed.
        let a = Array2::from_shape_fn((40, 300), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Array2::from_shape_fn((300, 50), |(i, j)| ((i + 2 * j) % 7) as f64 - 3.0);
        let (ra, rb) = (a.slice(s![..;-1, ..]), b.slice(s![.., ..;-1]));
        let mut c = Array2::zeros((40, 50));
        gemm(1.0, &ra, &rb, 0.0, &mut c.view_mut())?;
        assert_eq!(c, ra.dot(&rb));
        // A strided (every other column) output view.
        let a = Array2::from_shape_fn((9, 4), |(i, j)| (i + j) as f64);
        let b = Array2::from_shape_fn((4, 5), |(i, j)| i as f64 - j as f64);
        let mut wide = Array2::zeros((9, 10));
        gemm(
            1.0,
            &a.view(),
            &b.view(),
            0.0,
            &mut wide.slice_mut(s![.., ..;2]),
        )?;
        assert_eq!(wide.slice(s![.., ..;2]), a.dot(&b));
        assert!(wide.slice(s![.., 1..;2]).iter().all(|&v| v == 0.0));
        Ok(())
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let a = Array2::<f32>::zeros((3, 4));
        let b = Array2::<f32>::zeros((5, 2));
        let mut c = Array2::<f32>::zeros((3, 2));
        let err = gemm(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut());
        assert!(
            matches!(
                err,
                Err(Error::ShapeMismatch {
                    context: "gemm",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
