//! The matrix product's micro-kernels: one `MR x NR` tile of `C = alpha A B + beta C` from
//! a sliver of `A` and a packed sliver of `B` (`gemm.rs` does the blocking, packing and
//! threads around them).
//!
//! Two kernels of the same shape (`f32`: 6 x 16, `f64`: 6 x 8): the AVX2 + FMA one, picked
//! at run time when the CPU has both, and a portable one that runs elsewhere.

use crate::float::Float;

/// Micro-kernel: `C[i, j] = alpha * sum_p a[i, p] b[p, j] + beta * C[i, j]` over one tile.
/// `a` is a sliver with strides `(ars, acs)` (packed: `(1, MR)`), `b` a packed sliver
/// `(kc, NR)`; `beta == 0` writes without reading `C`. The final scaling is a multiply then
/// an add (never fused), the same in every kernel and in the edge-tile path.
pub(super) type Kernel<T> =
    unsafe fn(usize, *const T, isize, isize, *const T, T, T, *mut T, isize, isize);

/// The micro-kernel for `T`: the AVX2 + FMA one when the CPU has both, else the portable
/// one; tiles of 6 x 16 (`f32`) or 6 x 8 (`f64`), two 256-bit vectors wide.
pub(super) fn kernel<T: Float>() -> Kernel<T> {
    let portable: Kernel<T> = if is_f32::<T>() {
        kernel_portable::<T, 6, 16>
    } else {
        kernel_portable::<T, 6, 8>
    };
    simd_kernel::<T>().unwrap_or(portable)
}

/// Whether `T` is `f32` (`Float` is sealed to `f32` and `f64`).
pub(super) fn is_f32<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// The AVX2 + FMA kernel for `T`, when the CPU has both.
#[cfg(target_arch = "x86_64")]
fn simd_kernel<T: Float>() -> Option<Kernel<T>> {
    if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
        return None;
    }
    let fast: *const () = if is_f32::<T>() {
        avx2::kernel_f32 as *const ()
    } else {
        avx2::kernel_f64 as *const ()
    };
    // SAFETY: `T` is `f32` exactly when `is_f32` (Float is sealed to f32 and f64), so the
    // chosen kernel's signature is `Kernel<T>`.
    Some(unsafe { std::mem::transmute::<*const (), Kernel<T>>(fast) })
}

/// No SIMD kernel off x86-64: the portable one runs.
#[cfg(not(target_arch = "x86_64"))]
fn simd_kernel<T: Float>() -> Option<Kernel<T>> {
    None
}

/// The portable micro-kernel (see [`Kernel`]): plain multiplies and adds over an
/// `MR x NR` accumulator.
///
/// # Safety
/// See [`Kernel`]: slivers of `kc` steps, a tile of `C` at `c` with strides `(rsc, csc)`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel_portable<T: Float, const MR: usize, const NR: usize>(
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
            let bp = b.add(p * NR);
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = *a.offset(i as isize * ars + p as isize * acs);
                for (j, cell) in row.iter_mut().enumerate() {
                    *cell += ai * *bp.add(j);
                }
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

/// The AVX2 + FMA micro-kernels: 6 rows by two 256-bit vectors, 12 accumulators.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    macro_rules! kernel {
        ($name:ident, $t:ty, $lanes:expr, $zero:ident, $load:ident, $store:ident, $splat:ident,
         $fma:ident, $mul:ident, $add:ident) => {
            /// See `Kernel`: `MR = 6`, `NR = 2 * lanes`.
            ///
            /// # Safety
            /// The CPU has AVX2 and FMA; pointers as `Kernel` says.
            #[target_feature(enable = "avx2,fma")]
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
                let rows: [*const $t; 6] =
                    std::array::from_fn(|i| a.wrapping_offset(i as isize * ars));
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

    kernel!(
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
