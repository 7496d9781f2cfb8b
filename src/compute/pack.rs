//! Packing for the matrix product: each thread's packing buffer, a fixed-size block of
//! memory that belongs to the thread, allocated at its first product (the pool's helper
//! threads: when they start) and kept for the thread's life, so that products allocate
//! nothing; and [`pack`], which copies a block of an operand into it.
//!
//! It has its own file so that the pool (`threads.rs`, which reserves the buffer when a
//! helper starts) and the product (`gemm.rs`, which packs into it) both use it without
//! importing each other.

use std::cell::RefCell;

use crate::float::Float;

/// The buffer's size in bytes: the largest `(MC + MR) * KC + KC * NC` elements of the
/// product's plans (`f64`: `MC` 96, `MR` 8, `KC` 256, `NC` 512; `f32`, with `NC` 1024,
/// needs a little less). `gemm.rs` checks at compile time that each of its plans fits.
pub(crate) const PACK_BYTES: usize = ((96 + 8) * 256 + 256 * 512) * 8;

thread_local! {
    /// This thread's packing buffer, empty until reserved.
    static PACK: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// 64 bytes, 64-aligned: the buffer's unit, so packed slivers start on cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Allocates this thread's packing buffer now, if it has none yet: the pool's helper
/// threads do it when they start, so that their first product, whenever it comes, does not
/// allocate.
pub(crate) fn reserve_packing_buffer() {
    PACK.with(|pack| reserve(&mut pack.borrow_mut()));
}

/// Runs `f` with the start of this thread's packing buffer ([`PACK_BYTES`] bytes, aligned
/// to 64), allocating the buffer first if the thread has none yet.
///
/// # Panics
/// If `f` calls `with_packing_buffer` again (the buffer is borrowed while `f` runs; an
/// internal invariant).
pub(crate) fn with_packing_buffer<R>(f: impl FnOnce(*mut u8) -> R) -> R {
    PACK.with(|pack| {
        let mut pack = pack.borrow_mut();
        reserve(&mut pack);
        f(pack.as_mut_ptr().cast())
    })
}

fn reserve(pack: &mut Vec<Line>) {
    if pack.is_empty() {
        pack.resize(PACK_BYTES.div_ceil(64), Line([0; 64]));
    }
}

/// Packs `rows x kc` of a matrix `M` into slivers of `R` rows, `out[s][p][i] =
/// M[s * R + i, p]`, padding the last sliver's missing rows with zeros. Packs `A` (`M = A`,
/// `R = MR`) and `B` (`M = B^T`, `R = NR`: strides swapped).
///
/// # Safety
/// The block is inside `M`; `out` holds `ceil(rows / R) * R * kc` elements.
pub(crate) unsafe fn pack<T: Float, const R: usize>(
    rows: usize,
    kc: usize,
    m: *const T,
    rs: isize,
    cs: isize,
    out: *mut T,
) {
    for s in 0..rows.div_ceil(R) {
        let dst = out.wrapping_add(s * R * kc);
        let live = R.min(rows - s * R);
        let src = m.wrapping_offset((s * R) as isize * rs);
        // SAFETY: reads inside the block, writes inside the sliver.
        unsafe {
            if live == R && rs == 1 {
                // The sliver's R elements at each p are contiguous: plain copies.
                for p in 0..kc {
                    let col = src.offset(p as isize * cs);
                    for i in 0..R {
                        *dst.add(p * R + i) = *col.add(i);
                    }
                }
            } else if live == R && cs == 1 {
                // Each of the R rows is contiguous (a transposed operand, as `D^T` in the
                // convolutions' weight gradients): read row by row.
                for i in 0..R {
                    let row = src.offset(i as isize * rs);
                    for p in 0..kc {
                        *dst.add(p * R + i) = *row.add(p);
                    }
                }
            } else {
                for p in 0..kc {
                    for i in 0..R {
                        *dst.add(p * R + i) = if i < live {
                            *src.offset(i as isize * rs + p as isize * cs)
                        } else {
                            T::zero()
                        };
                    }
                }
            }
        }
    }
}
