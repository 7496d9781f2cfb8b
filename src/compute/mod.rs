//! Compute plumbing: the matrix product, the thread pool, each thread's packing buffer
//! (its own file, used by both, so that neither imports the other), SIMD dispatch and the
//! one fixed-order 8-lane sum.

pub(crate) mod gemm;
mod pack;
pub(crate) mod simd;
pub(crate) mod sum;
pub(crate) mod threads;
