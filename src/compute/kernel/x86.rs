//! The x86-64 micro-kernels: one generic body per instruction set and element type,
//! compiled with AVX2 + FMA (6 x 16 `f32`, 6 x 8 `f64`) and with AVX-512F (8 x 32, 8 x 16);
//! each in two forms, `B` packed and `B` read in place (see `kernel.rs`).

/// A micro-kernel of `$rows` rows by two SIMD vectors (`2 $rows` accumulators), compiled
/// for the instructions `$feature` with the vector operations given: a module `$name` with the
/// kernel of packed slivers of `B` (`packed`, a [`Kernel`]) and the one that reads `B`'s
/// rows where they are (`rows`, a [`RowsKernel`]), both the one generic body.
macro_rules! kernel {
    ($feature:literal, $name:ident, $t:ty, $rows:expr, $lanes:expr, $zero:ident, $load:ident,
     $store:ident, $splat:ident, $fma:ident, $mul:ident, $add:ident) => {
        pub(in crate::compute) mod $name {
            use crate::compute::kernel::{Packed, Rows, SliverB};
            use std::arch::x86_64::*;

            /// See `Kernel`: `MR = rows`, `NR = 2 * lanes`.
            ///
            /// # Safety
            /// The CPU has the instructions the kernel is compiled for; pointers as `Kernel`
            /// says.
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub(in crate::compute) unsafe fn packed(
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
                let b = Packed::<$t, { 2 * $lanes }>(b);
                // SAFETY: as the caller promised.
                unsafe { body(kc, a, ars, acs, b, alpha, beta, c, rsc, csc) }
            }

            /// See `RowsKernel`: `MR = rows`, `NR = 2 * lanes`.
            ///
            /// # Safety
            /// The CPU has the instructions the kernel is compiled for; pointers as
            /// `RowsKernel` says.
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub(in crate::compute) unsafe fn rows(
                kc: usize,
                a: *const $t,
                ars: isize,
                acs: isize,
                b: *const $t,
                b_rows: *const usize,
                alpha: $t,
                beta: $t,
                c: *mut $t,
                rsc: isize,
                csc: isize,
            ) {
                let b = Rows(b, b_rows);
                // SAFETY: as the caller promised.
                unsafe { body(kc, a, ars, acs, b, alpha, beta, c, rsc, csc) }
            }

            #[target_feature(enable = $feature)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn body<B: SliverB<$t>>(
                kc: usize,
                a: *const $t,
                ars: isize,
                acs: isize,
                b: B,
                alpha: $t,
                beta: $t,
                c: *mut $t,
                rsc: isize,
                csc: isize,
            ) {
                const L: usize = $lanes;
                let mut acc = [[$zero(); 2]; $rows];
                let rows: [*const $t; $rows] =
                    std::array::from_fn(|i| a.wrapping_offset(i as isize * ars));
                for p in 0..kc {
                    // SAFETY: step p of both slivers.
                    unsafe {
                        let bp = b.row(p);
                        let b0 = $load(bp);
                        let b1 = $load(bp.add(L));
                        let off = p as isize * acs;
                        for i in 0..$rows {
                            let ai = $splat(*rows[i].offset(off));
                            acc[i][0] = $fma(ai, b0, acc[i][0]);
                            acc[i][1] = $fma(ai, b1, acc[i][1]);
                        }
                    }
                }
                let va = $splat(alpha);
                let vb = $splat(beta);
                for i in 0..$rows {
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
        }
    };
}

/// The AVX2 + FMA micro-kernels: 6 rows by two 256-bit vectors.
pub(super) mod avx2 {
    kernel!(
        "avx2,fma",
        kernel_f32,
        f32,
        6,
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
        6,
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

/// The AVX-512F micro-kernels: 8 rows by two 512-bit vectors (16 accumulators of the 32
/// registers: no edge tile for the 32 channels of a convolution).
pub(super) mod avx512 {
    kernel!(
        "avx512f",
        kernel_f32,
        f32,
        8,
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
