//! Compute plumbing: the matrix product and the thread pool.

pub(crate) mod gemm;
pub(crate) mod threads;
