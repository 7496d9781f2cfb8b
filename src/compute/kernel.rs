//! The matrix product's micro-kernels: one `MR x NR` tile of `C = alpha A B + beta C` from
//! a sliver of `A` and a packed sliver of `B` (`gemm.rs` does the blocking, packing and
//! threads around them).
//!
//! Every tile is two SIMD vectors wide: with AVX-512F, 8 x 32 (`f32`) or 8 x 16 (`f64`) in
//! 512-bit vectors; with AVX2 and FMA, 6 x 16 or 6 x 8 in 256-bit ones;
//! elsewhere (or when `AUTOENCODER_PORTABLE` is set, `simd.rs`) a portable kernel of the
//! 256-bit shape that fuses its multiply-adds the same way (`fma.rs`). All give the same
//! bits: each element of `C` sees the same chain of fused multiply-adds whatever the tile's
//! width, so the width only changes how many elements run side by side.

use super::fma::FusedMulAdd;
#[cfg(target_arch = "x86_64")]
use super::simd::{avx2_fma, avx512};
#[cfg(target_arch = "x86_64")]
use x86::{avx2, avx512};

#[cfg(target_arch = "x86_64")]
mod x86;
use crate::float::Float;

/// Micro-kernel: `C[i, j] = alpha * sum_p a[i, p] b[p, j] + beta * C[i, j]` over one tile.
/// `a` is a sliver with strides `(ars, acs)` (packed: `(1, MR)`), `b` a packed sliver
/// `(kc, NR)`; `beta == 0` writes without reading `C`. Every kernel rounds the same way, so
/// all give the same bits: the sum is a chain of fused multiply-adds in increasing `p` from
/// zero, `acc = a[i, p] b[p, j] + acc` rounded once per step; the final scaling is a
/// multiply then an add (never fused), as in the edge-tile path of `gemm.rs`.
pub(super) type Kernel<T> =
    unsafe fn(usize, *const T, isize, isize, *const T, T, T, *mut T, isize, isize);

/// [`Kernel`] with `B` read where it is: step `p` of `B` is the `NR` values at
/// `b + b_rows[p]` (`kc` offsets), as rows of a matrix or the taps of a convolution into an
/// image's planes (`rows.rs`). The arithmetic, and so the bits, are [`Kernel`]'s.
pub(super) type RowsKernel<T> =
    unsafe fn(usize, *const T, isize, isize, *const T, *const usize, T, T, *mut T, isize, isize);

/// Where a kernel finds step `p` of its sliver of `B`: `NR` contiguous values.
pub(super) trait SliverB<T>: Copy {
    /// The first of step `p`'s values.
    ///
    /// # Safety
    /// `p` is a step of the sliver.
    unsafe fn row(self, p: usize) -> *const T;
}

/// A packed sliver, `(kc, NR)` row-major.
#[derive(Clone, Copy)]
pub(super) struct Packed<T, const NR: usize>(pub *const T);

impl<T: Copy, const NR: usize> SliverB<T> for Packed<T, NR> {
    #[inline(always)]
    unsafe fn row(self, p: usize) -> *const T {
        // SAFETY: as the caller promised.
        unsafe { self.0.add(p * NR) }
    }
}

/// Rows in place: step `p` at `base + offsets[p]`.
#[derive(Clone, Copy)]
pub(super) struct Rows<T>(pub *const T, pub *const usize);

impl<T: Copy> SliverB<T> for Rows<T> {
    #[inline(always)]
    unsafe fn row(self, p: usize) -> *const T {
        // SAFETY: as the caller promised.
        unsafe { self.0.add(*self.1.add(p)) }
    }
}

/// Which tile the fastest kernel for this CPU uses: two 512-bit vectors wide
/// ([`Tile::Wide`]) when AVX-512F may run, else two 256-bit vectors ([`Tile::Narrow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "blas", allow(dead_code))] // the system library multiplies instead
pub(super) enum Tile {
    /// 6 x 16 (`f32`) or 6 x 8 (`f64`): the AVX2 + FMA kernel, or the portable one.
    Narrow,
    /// 8 x 32 (`f32`) or 8 x 16 (`f64`): the AVX-512F kernel.
    Wide,
}

/// The tile of the fastest kernel the CPU has (and the portable kernels are not forced).
#[cfg_attr(feature = "blas", allow(dead_code))]
pub(super) fn tile() -> Tile {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        return Tile::Wide;
    }
    Tile::Narrow
}

/// A tile's two kernels: `B` packed, and `B` read in place.
#[derive(Clone, Copy)]
pub(super) struct TileKernels<T> {
    /// `B` packed ([`Kernel`]).
    pub packed: Kernel<T>,
    /// `B` in rows ([`RowsKernel`]).
    pub rows: RowsKernel<T>,
}

/// The micro-kernels for `T` and tiles `NR` wide: the AVX-512F ones for a wide tile when
/// the CPU has it, the AVX2 + FMA ones for a narrow tile when it has those, else the
/// portable kernels of that shape.
pub(super) fn kernel<T: Float, const NR: usize>() -> TileKernels<T> {
    let wide = NR * std::mem::size_of::<T>() == 128;
    simd_kernel::<T>(wide).unwrap_or_else(|| {
        if wide {
            for_type(portable_pair::<f32, 8, 32>(), portable_pair::<f64, 8, 16>())
        } else {
            for_type(portable_pair::<f32, 6, 16>(), portable_pair::<f64, 6, 8>())
        }
    })
}

/// The portable kernels of tiles `MR x NR`.
fn portable_pair<T: Float + FusedMulAdd, const MR: usize, const NR: usize>() -> TileKernels<T> {
    TileKernels {
        packed: kernel_portable::<T, MR, NR>,
        rows: rows_portable::<T, MR, NR>,
    }
}

/// `f32_kernels` or `f64_kernels`, whichever are `T`'s.
fn for_type<T: Float>(
    f32_kernels: TileKernels<f32>,
    f64_kernels: TileKernels<f64>,
) -> TileKernels<T> {
    let (packed, rows): (*const (), *const ()) = if is_f32::<T>() {
        (f32_kernels.packed as _, f32_kernels.rows as _)
    } else {
        (f64_kernels.packed as _, f64_kernels.rows as _)
    };
    // SAFETY: `T` is `f32` exactly when `is_f32` (Float is sealed to f32 and f64), so the
    // chosen kernels' signatures are `Kernel<T>` and `RowsKernel<T>`.
    unsafe {
        TileKernels {
            packed: std::mem::transmute::<*const (), Kernel<T>>(packed),
            rows: std::mem::transmute::<*const (), RowsKernel<T>>(rows),
        }
    }
}

/// Whether `T` is `f32` (`Float` is sealed to `f32` and `f64`).
pub(super) fn is_f32<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// The SIMD kernels for `T` of the wide (AVX-512F) or narrow (AVX2 + FMA) tile, when the
/// CPU has those instructions and the portable kernels are not forced.
#[cfg(target_arch = "x86_64")]
fn simd_kernel<T: Float>(wide: bool) -> Option<TileKernels<T>> {
    macro_rules! pair {
        ($m:ident) => {
            for_type(
                TileKernels {
                    packed: $m::kernel_f32::packed,
                    rows: $m::kernel_f32::rows,
                },
                TileKernels {
                    packed: $m::kernel_f64::packed,
                    rows: $m::kernel_f64::rows,
                },
            )
        };
    }
    if wide {
        avx512().then(|| pair!(avx512))
    } else {
        avx2_fma().then(|| pair!(avx2))
    }
}

/// No SIMD kernel off x86-64: the portable ones run.
#[cfg(not(target_arch = "x86_64"))]
fn simd_kernel<T: Float>(_wide: bool) -> Option<TileKernels<T>> {
    None
}

/// The portable micro-kernel (see [`Kernel`]): the arithmetic of the AVX2 + FMA kernel in
/// plain code, so that both give the same bits. Each element of the tile accumulates
/// `acc = a[i, p] b[p, j] + acc`, rounded once (a fused multiply-add, [`FusedMulAdd`]), for
/// `p = 0, 1, ..., kc - 1` in order, from `acc = 0`; then `C[i, j] = acc alpha`, or
/// `C[i, j] = acc alpha + C[i, j] beta` (multiplies, then an add: three roundings) when
/// `beta != 0`.
///
/// # Safety
/// See [`Kernel`]: slivers of `kc` steps, a tile of `C` at `c` with strides `(rsc, csc)`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel_portable<T: Float + FusedMulAdd, const MR: usize, const NR: usize>(
    kc: usize,
    a: *const T,
    ars: isize,
    acs: isize,
    b: *const T,
    alpha: T,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
) {
    let b = Packed::<T, NR>(b);
    // SAFETY: as the caller promised.
    unsafe { portable::<T, _, MR, NR>(kc, (a, ars, acs), b, (alpha, beta), (c, rsc, csc)) }
}

/// [`kernel_portable`] reading `B` in place (see [`RowsKernel`]).
///
/// # Safety
/// See [`RowsKernel`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn rows_portable<T: Float + FusedMulAdd, const MR: usize, const NR: usize>(
    kc: usize,
    a: *const T,
    ars: isize,
    acs: isize,
    b: *const T,
    b_rows: *const usize,
    alpha: T,
    beta: T,
    c: *mut T,
    rsc: isize,
    csc: isize,
) {
    let b = Rows(b, b_rows);
    // SAFETY: as the caller promised.
    unsafe { portable::<T, _, MR, NR>(kc, (a, ars, acs), b, (alpha, beta), (c, rsc, csc)) }
}

/// The portable kernels' one body.
///
/// # Safety
/// See [`Kernel`].
#[inline]
unsafe fn portable<T: Float + FusedMulAdd, B: SliverB<T>, const MR: usize, const NR: usize>(
    kc: usize,
    (a, ars, acs): (*const T, isize, isize),
    b: B,
    (alpha, beta): (T, T),
    (c, rsc, csc): (*mut T, isize, isize),
) {
    let mut acc = [[T::zero(); NR]; MR];
    for p in 0..kc {
        // SAFETY: step p of both slivers.
        unsafe {
            let bp = &*b.row(p).cast::<[T; NR]>();
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = *a.offset(i as isize * ars + p as isize * acs);
                T::fused_row(ai, bp, row);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            // SAFETY: (i, j) is inside the tile.
            unsafe {
                let cij = c.offset(i as isize * rsc + j as isize * csc);
                let r = v * alpha;
                *cij = if beta == T::zero() {
                    r
                } else {
                    r + *cij * beta
                };
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One tile through `kernel`: `a` read with strides `(ars, acs)`, `C` with `(rsc, csc)`,
    /// starting from `c0`; returns the tile's bits in row-major order.
    #[allow(clippy::too_many_arguments)]
    fn tile<T: Float, const MR: usize, const NR: usize>(
        kernel: Kernel<T>,
        kc: usize,
        a: &[T],
        (ars, acs): (isize, isize),
        b: &[T],
        (alpha, beta): (T, T),
        c0: &[T],
        (rsc, csc): (isize, isize),
    ) -> Vec<T> {
        let mut c = c0.to_vec();
        // SAFETY: `a` holds MR x kc elements at those strides, `b` kc x NR, `c` MR x NR.
        unsafe {
            kernel(
                kc,
                a.as_ptr(),
                ars,
                acs,
                b.as_ptr(),
                alpha,
                beta,
                c.as_mut_ptr(),
                rsc,
                csc,
            )
        };
        (0..MR * NR)
            .map(|t| c[(t / NR) * rsc as usize + (t % NR) * csc as usize])
            .collect()
    }

    /// The portable kernel computes a SIMD kernel's bits: every sliver layout, both
    /// ways of writing `C`, alpha and beta, inner lengths from 0 up, on values whose sums
    /// round differently with and without fusing.
    fn same_bits_as_simd<T: Float, const MR: usize, const NR: usize>(
        portable: Kernel<T>,
        simd: Kernel<T>,
        bits: impl Fn(T) -> u64,
    ) -> usize {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut differ = 0;
        for kc in [0, 1, 2, 7, 64, 255, 300] {
            let a: Vec<T> = (0..MR * kc.max(1))
                .map(|_| T::cast(rng.random_range(-1.0..1.0)))
                .collect();
            let b: Vec<T> = (0..kc.max(1) * NR)
                .map(|_| T::cast(rng.random_range(-1.0..1.0)))
                .collect();
            let c0: Vec<T> = (0..MR * NR)
                .map(|_| T::cast(rng.random_range(-1.0..1.0)))
                .collect();
            // Packed (1, MR), and read in place from a row-major (MR, kc) block.
            for a_strides in [(1, MR as isize), (kc.max(1) as isize, 1)] {
                // Row-major (contiguous rows), and column-major (the strided store).
                for c_strides in [(NR as isize, 1), (1, MR as isize)] {
                    for scale in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                        let scale = (T::cast(scale.0), T::cast(scale.1));
                        let run =
                            |k| tile::<T, MR, NR>(k, kc, &a, a_strides, &b, scale, &c0, c_strides);
                        let (p, v) = (run(portable), run(simd));
                        differ += p
                            .iter()
                            .zip(&v)
                            .filter(|(p, v)| bits(**p) != bits(**v))
                            .count();
                    }
                }
            }
        }
        differ
    }

    /// The elements that differ between the portable kernels of tiles `NR32` (`f32`) and
    /// `NR64` (`f64`) wide and the SIMD kernels `simd`, `(f32, f64)`.
    fn differing<const MR: usize, const NR32: usize, const NR64: usize>(
        simd: (Kernel<f32>, Kernel<f64>),
    ) -> (usize, usize) {
        let f32_bits = |v: f32| v.to_bits().into();
        (
            same_bits_as_simd::<f32, MR, NR32>(kernel_portable::<f32, MR, NR32>, simd.0, f32_bits),
            same_bits_as_simd::<f64, MR, NR64>(
                kernel_portable::<f64, MR, NR64>,
                simd.1,
                f64::to_bits,
            ),
        )
    }

    #[test]
    fn portable_kernel_has_the_bits_of_the_avx2_kernel() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            eprintln!("SKIPPED: this CPU has no AVX2 + FMA kernel to compare with");
            return;
        }
        let differ = differing::<6, 16, 8>((avx2::kernel_f32::packed, avx2::kernel_f64::packed));
        assert_eq!(differ, (0, 0), "elements that differ, f32 and f64");
    }

    #[test]
    fn portable_kernel_has_the_bits_of_the_avx512_kernel() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("SKIPPED: this CPU has no AVX-512F kernel to compare with");
            return;
        }
        let differ =
            differing::<8, 32, 16>((avx512::kernel_f32::packed, avx512::kernel_f64::packed));
        assert_eq!(differ, (0, 0), "elements that differ, f32 and f64");
    }
}

/// The whole product (blocking, packing, edge tiles, threads) on the default and on the
/// forced-portable path.
#[cfg(all(test, target_arch = "x86_64"))]
mod product_tests {
    use crate::compute::{gemm, kernels, set_kernels, Kernels};
    use crate::error::Result;
    use crate::float::Float;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Restores the kernels in use when dropped, also when a test fails.
    struct Restore(Kernels);

    impl Drop for Restore {
        fn drop(&mut self) {
            set_kernels(self.0);
        }
    }

    /// `C = alpha op(A) op(B) + beta C` for shapes off the tile and block sizes (the last
    /// large enough to split over threads), `A` and `B` plain and transposed, three
    /// alpha/beta pairs (beta = 0 over a `C` of NaN, not read), and with a plain `B` also
    /// read in place (`product_rows`), once with `kernels`; the results' bits, in order.
    fn products<T: Float>(kernels: Kernels, bits: impl Fn(T) -> u64) -> Result<Vec<u64>> {
        set_kernels(kernels);
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mut out = Vec::new();
        let shapes = [
            (1, 1, 1),
            (7, 257, 17),
            (97, 300, 5),
            (5, 17, 300),
            (13, 0, 9),
            (40, 1030, 30),
            (301, 517, 45),
        ];
        for (m, k, n) in shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut random = |shape| {
                    Array2::from_shape_simple_fn(shape, || T::cast(rng.random_range(-1.0..1.0)))
                };
                let a_store = random(if ta { (k, m) } else { (m, k) });
                let b_store = random(if tb { (n, k) } else { (k, n) });
                let c0 = random((m, n));
                let a = if ta { a_store.t() } else { a_store.view() };
                let b = if tb { b_store.t() } else { b_store.view() };
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                    let mut c = if beta == 0.0 {
                        c0.mapv(|_| T::nan())
                    } else {
                        c0.clone()
                    };
                    gemm(T::cast(alpha), &a, &b, T::cast(beta), &mut c.view_mut())?;
                    out.extend(c.iter().map(|&v| bits(v)));
                    if !tb {
                        // `B`'s rows read in place (the rows kernels).
                        let data = b_store.as_slice().expect("standard layout");
                        let offsets: Vec<usize> = (0..k).map(|p| p * n).collect();
                        let rows = crate::compute::RowsB::new(data, &offsets, n);
                        let mut c = c0.clone();
                        let (alpha, beta) = (T::cast(alpha), T::cast(beta));
                        crate::compute::product_rows(alpha, &a, &rows, beta, &mut c.view_mut());
                        out.extend(c.iter().map(|&v| bits(v)));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Same products, same bits, whichever kernels run; and the switch switches.
    #[test]
    fn products_have_the_same_bits_on_the_portable_path() -> Result<()> {
        let _restore = Restore(kernels());
        for (kernels, want_simd) in [(Kernels::Portable, false), (Kernels::Fastest, true)] {
            set_kernels(kernels);
            let narrow = want_simd
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma");
            let wide = want_simd && std::is_x86_feature_detected!("avx512f");
            for (wide_tile, simd) in [(false, narrow), (true, wide)] {
                assert_eq!(
                    super::simd_kernel::<f32>(wide_tile).is_some(),
                    simd,
                    "{kernels:?}, wide {wide_tile}"
                );
                assert_eq!(
                    super::simd_kernel::<f64>(wide_tile).is_some(),
                    simd,
                    "{kernels:?}, wide {wide_tile}"
                );
            }
            let want = if wide {
                super::Tile::Wide
            } else {
                super::Tile::Narrow
            };
            assert_eq!(super::tile(), want, "{kernels:?}");
        }
        let f32_bits = |v: f32| u64::from(v.to_bits());
        let (fast, portable) = (
            products(Kernels::Fastest, f32_bits)?,
            products(Kernels::Portable, f32_bits)?,
        );
        let differ = fast.iter().zip(&portable).filter(|(f, p)| f != p).count();
        assert_eq!(
            (differ, fast.len()),
            (0, portable.len()),
            "f32 elements that differ, of"
        );
        let (fast, portable) = (
            products(Kernels::Fastest, f64::to_bits)?,
            products(Kernels::Portable, f64::to_bits)?,
        );
        let differ = fast.iter().zip(&portable).filter(|(f, p)| f != p).count();
        assert_eq!(
            (differ, fast.len()),
            (0, portable.len()),
            "f64 elements that differ, of"
        );
        Ok(())
    }
}
