//! Compute plumbing: the matrix product, the thread pool, SIMD dispatch and the one
//! fixed-order sum.
//!
//! - `gemm.rs`: [`gemm()`], `C = alpha A B + beta C`, packed and blocked (BLIS), split over
//!   the pool's threads when large, allocation-free after a thread's first product; the
//!   crate's layers call it without the shape check (`product`).
//! - `kernel.rs`: the product's micro-kernels, one tile of `C` each: AVX-512F, AVX2 + FMA,
//!   and portable, which rounds the same way (same bits).
//! - `operand.rs`: where the product's `B` comes from, a strided matrix (packed) or rows
//!   read where they lie (`RowsB`: a convolution's patches in the image's padded planes).
//! - `fma.rs`: the portable kernel's fused multiply-add, `a b + c` rounded once also where
//!   the CPU has no FMA instruction.
//! - `threads.rs`: the pool ([`set_threads`], [`threads()`], [`MAX_THREADS`]) and element-wise
//!   work over a batch cut into 8 fixed blocks of rows (`for_each_block`, `row_blocks`, ...).
//! - `pack.rs`: each thread's packing buffer, used by the product and reserved by the pool
//!   when a helper thread starts (its own file, so neither of those two imports the other),
//!   and the packing of a block of an operand into it.
//! - `simd.rs`: `simd_dispatch!`, a kernel compiled for AVX-512F, AVX2 and as built,
//!   picked at run time, and the switch to the portable kernels.
//! - `sum.rs`: the one 8-lane fixed-order sum (`lane_sum` and its slice and buffered forms).
//!
//! Every result here has the same bits for any thread count and instruction set. The rest
//! of the crate imports these names from `crate::compute`, never from the files.
//!
//! `AUTOENCODER_PORTABLE=1` in the environment (read once, at the first kernel call) turns
//! off every SIMD path, the product's AVX-512F and AVX2 + FMA micro-kernels and the
//! AVX-512F and AVX2 twins of the element-wise kernels, as on a CPU without AVX2: the same
//! results, more slowly (the portable product about 15 times: see `fma.rs`).
//!
//! The module is public for [`gemm()`] alone (with the pool's settings, also at the crate
//! root): the benchmarks (`cargo bench`, group `gemm`) and the `throughput` example measure
//! it, and a user who wants a matrix product that allocates nothing can call it. Everything
//! else here is internal.

mod fma;
mod gemm;
mod kernel;
mod operand;
mod pack;
mod simd;
mod sum;
mod threads;

pub use gemm::gemm;
pub use threads::{set_threads, threads, MAX_THREADS};

pub(crate) use gemm::{product, product_rows, KC};
pub(crate) use operand::RowsB;
pub(crate) use simd::simd_dispatch;
#[cfg(target_arch = "x86_64")]
pub(crate) use simd::{avx2, avx512};
#[doc(hidden)]
pub use simd::{kernels, set_kernels, Kernels};
pub(crate) use sum::{lane_dots, lane_sum, lane_sum_buffered, lane_sum_slice};
pub(crate) use threads::{
    for_each_block, row_blocks, row_blocks_mut, slice_blocks, slice_blocks_mut, zip_blocks,
    ROW_BLOCKS,
};
