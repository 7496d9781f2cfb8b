//! Compute plumbing: the matrix product, the thread pool and each thread's packing buffer
//! (its own file, used by both, so that neither imports the other).

pub(crate) mod gemm;
mod pack;
pub(crate) mod threads;
