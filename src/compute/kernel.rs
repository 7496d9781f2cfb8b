//! The matrix product's micro-kernels: one `MR x NR` tile of `C = alpha A B + beta C` from
//! a sliver of `A` and a packed sliver of `B` (`gemm.rs` does the blocking, packing and
//! threads around them).
//!
//! Every tile is 6 rows tall and two SIMD vectors wide: with AVX-512F, 6 x 32 (`f32`) or
//! 6 x 16 (`f64`) in 512-bit vectors; with AVX2 and FMA, 6 x 16 or 6 x 8 in 256-bit ones;
//! elsewhere (or when `AUTOENCODER_PORTABLE` is set, `simd.rs`) a portable kernel of the
//! 256-bit shape that fuses its multiply-adds the same way (`fma.rs`). All give the same
//! bits: each element of `C` sees the same chain of fused multiply-adds whatever the tile's
//! width, so the width only changes how many elements run side by side.

use super::fma::FusedMulAdd;
#[cfg(target_arch = "x86_64")]
use super::simd::{avx2_fma, avx512};
use crate::float::Float;

/// Micro-kernel: `C[i, j] = alpha * sum_p a[i, p] b[p, j] + beta * C[i, j]` over one tile.
/// `a` is a sliver with strides `(ars, acs)` (packed: `(1, MR)`), `b` a packed sliver
/// `(kc, NR)`; `beta == 0` writes without reading `C`. Every kernel rounds the same way, so
/// all give the same bits: the sum is a chain of fused multiply-adds in increasing `p` from
/// zero, `acc = a[i, p] b[p, j] + acc` rounded once per step; the final scaling is a
/// multiply then an add (never fused), as in the edge-tile path of `gemm.rs`.
pub(super) type Kernel<T> =
    unsafe fn(usize, *const T, isize, isize, *const T, T, T, *mut T, isize, isize);

/// Which tile the fastest kernel for this CPU uses: two 512-bit vectors wide
/// ([`Tile::Wide`]) when AVX-512F may run, else two 256-bit vectors ([`Tile::Narrow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "blas", allow(dead_code))] // the system library multiplies instead
pub(super) enum Tile {
    /// 6 x 16 (`f32`) or 6 x 8 (`f64`): the AVX2 + FMA kernel, or the portable one.
    Narrow,
    /// 6 x 32 (`f32`) or 6 x 16 (`f64`): the AVX-512F kernel.
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

/// The micro-kernel for `T` and tiles `NR` wide: the AVX-512F one for a wide tile when the
/// CPU has it, the AVX2 + FMA one for a narrow tile when it has those, else the portable
/// kernel of that shape.
pub(super) fn kernel<T: Float, const NR: usize>() -> Kernel<T> {
    let wide = NR * std::mem::size_of::<T>() == 128;
    simd_kernel::<T>(wide).unwrap_or_else(|| {
        if wide {
            for_type(kernel_portable::<f32, 6, 32>, kernel_portable::<f64, 6, 16>)
        } else {
            for_type(kernel_portable::<f32, 6, 16>, kernel_portable::<f64, 6, 8>)
        }
    })
}

/// `f32_kernel` or `f64_kernel`, whichever is `T`'s.
fn for_type<T: Float>(f32_kernel: Kernel<f32>, f64_kernel: Kernel<f64>) -> Kernel<T> {
    let kernel: *const () = if is_f32::<T>() {
        f32_kernel as *const ()
    } else {
        f64_kernel as *const ()
    };
    // SAFETY: `T` is `f32` exactly when `is_f32` (Float is sealed to f32 and f64), so the
    // chosen kernel's signature is `Kernel<T>`.
    unsafe { std::mem::transmute::<*const (), Kernel<T>>(kernel) }
}

/// Whether `T` is `f32` (`Float` is sealed to `f32` and `f64`).
pub(super) fn is_f32<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// The SIMD kernel for `T` of the wide (AVX-512F) or narrow (AVX2 + FMA) tile, when the CPU
/// has those instructions and the portable kernels are not forced.
#[cfg(target_arch = "x86_64")]
fn simd_kernel<T: Float>(wide: bool) -> Option<Kernel<T>> {
    if wide {
        avx512().then(|| for_type(avx512::kernel_f32, avx512::kernel_f64))
    } else {
        avx2_fma().then(|| for_type(avx2::kernel_f32, avx2::kernel_f64))
    }
}

/// No SIMD kernel off x86-64: the portable one runs.
#[cfg(not(target_arch = "x86_64"))]
fn simd_kernel<T: Float>(_wide: bool) -> Option<Kernel<T>> {
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
    let mut acc = [[T::zero(); NR]; MR];
    for p in 0..kc {
        // SAFETY: step p of both slivers.
        unsafe {
            let bp = &*b.add(p * NR).cast::<[T; NR]>();
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

/// A micro-kernel of 6 rows by two SIMD vectors (12 accumulators), compiled for the
/// instructions `$feature` with the vector operations given.
#[cfg(target_arch = "x86_64")]
macro_rules! kernel {
    ($feature:literal, $name:ident, $t:ty, $lanes:expr, $zero:ident, $load:ident, $store:ident, $splat:ident,
     $fma:ident, $mul:ident, $add:ident) => {
        /// See `Kernel`: `MR = 6`, `NR = 2 * lanes`.
        ///
        /// # Safety
        /// The CPU has the instructions the kernel is compiled for; pointers as `Kernel` says.
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $name(
            kc: usize,
            a: *const $t,
            ars: isize,
            acs: isize,
            b: *const $t,
            alpha: $t,
            beta: $t,
            c: *mut $t,
            rsc: isize,
            csc: isize,
        ) {
            const L: usize = $lanes;
            let mut acc = [[$zero(); 2]; 6];
            let rows: [*const $t; 6] = std::array::from_fn(|i| a.wrapping_offset(i as isize * ars));
            for p in 0..kc {
                // SAFETY: step p of both slivers.
                unsafe {
                    let bp = b.add(p * 2 * L);
                    let b0 = $load(bp);
                    let b1 = $load(bp.add(L));
                    let off = p as isize * acs;
                    for i in 0..6 {
                        let ai = $splat(*rows[i].offset(off));
                        acc[i][0] = $fma(ai, b0, acc[i][0]);
                        acc[i][1] = $fma(ai, b1, acc[i][1]);
                    }
                }
            }
            let va = $splat(alpha);
            let vb = $splat(beta);
            for i in 0..6 {
                for h in 0..2 {
                    let r = $mul(acc[i][h], va);
                    // SAFETY: the tile's row i, lanes h * L .. h * L + L.
                    unsafe {
                        let ci = c.offset(i as isize * rsc + (h * L) as isize * csc);
                        if csc == 1 {
                            let r = if beta == 0.0 {
                                r
                            } else {
                                $add(r, $mul($load(ci), vb))
                            };
                            $store(ci, r);
                        } else {
                            let mut t = [0.0; L];
                            $store(t.as_mut_ptr(), r);
                            for (j, &v) in t.iter().enumerate() {
                                let cij = ci.offset(j as isize * csc);
                                *cij = if beta == 0.0 { v } else { v + *cij * beta };
                            }
                        }
                    }
                }
            }
        }
    };
}

/// The AVX2 + FMA micro-kernels: 6 rows by two 256-bit vectors.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    kernel!(
        "avx2,fma",
        kernel_f32,
        f32,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_mul_ps,
        _mm256_add_ps
    );
    kernel!(
        "avx2,fma",
        kernel_f64,
        f64,
        4,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd,
        _mm256_mul_pd,
        _mm256_add_pd
    );
}

/// The AVX-512F micro-kernels: 6 rows by two 512-bit vectors.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    kernel!(
        "avx512f",
        kernel_f32,
        f32,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_mul_ps,
        _mm512_add_ps
    );
    kernel!(
        "avx512f",
        kernel_f64,
        f64,
        8,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_mul_pd,
        _mm512_add_pd
    );
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
    fn differing<const NR32: usize, const NR64: usize>(
        simd: (Kernel<f32>, Kernel<f64>),
    ) -> (usize, usize) {
        let f32_bits = |v: f32| v.to_bits().into();
        (
            same_bits_as_simd::<f32, 6, NR32>(kernel_portable::<f32, 6, NR32>, simd.0, f32_bits),
            same_bits_as_simd::<f64, 6, NR64>(
                kernel_portable::<f64, 6, NR64>,
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
        let differ = differing::<16, 8>((avx2::kernel_f32, avx2::kernel_f64));
        assert_eq!(differ, (0, 0), "elements that differ, f32 and f64");
    }

    #[test]
    fn portable_kernel_has_the_bits_of_the_avx512_kernel() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("SKIPPED: this CPU has no AVX-512F kernel to compare with");
            return;
        }
        let differ = differing::<32, 16>((avx512::kernel_f32, avx512::kernel_f64));
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
    /// alpha/beta pairs (beta = 0 over a `C` of NaN, not read), once with `kernels`; the
    /// results' bits, in order.
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
