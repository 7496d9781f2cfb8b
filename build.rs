//! Links the system OpenBLAS when the optional `blas` feature is on (ndarray's BLAS backend
//! needs a library providing `cblas_sgemm` / `cblas_dgemm`). The default build links
//! nothing beyond the Rust standard library.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_some() {
        // Debian/Ubuntu: `apt-get install libopenblas-dev`.
        println!("cargo:rustc-link-lib=openblas");
    }
}
