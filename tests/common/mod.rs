//! Data shared by the integration tests.
#![allow(dead_code)]

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `n` samples of `d` features in (0, 1) with `k`-dimensional structure:
/// `x = sigmoid(c U + noise)`, `c ~ N(0, I_k)`, `U` `(k, d)` fixed by the seed.
pub fn structured(n: usize, d: usize, k: usize, noise: f64, seed: u64) -> Array2<f64> {
    let (c, u, e) = parts(n, d, k, seed);
    (c.dot(&u) + e * noise).mapv(|v| 1.0 / (1.0 + (-v).exp()))
}

/// `n` samples of `d` features lying near a `k`-dimensional linear subspace:
/// `x = c U + noise e`.
pub fn linear(n: usize, d: usize, k: usize, noise: f64, seed: u64) -> Array2<f64> {
    let (c, u, e) = parts(n, d, k, seed);
    c.dot(&u) + e * noise
}

fn parts(n: usize, d: usize, k: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal =
        |r, c| Array2::from_shape_simple_fn((r, c), || StandardNormal.sample(&mut rng));
    let u = normal(k, d);
    let c = normal(n, k);
    let e = normal(n, d);
    (c, u, e)
}

/// Mean squared difference.
pub fn mse(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).mapv(|v| v * v).mean().unwrap()
}

/// The folder holding the MNIST files: `$MNIST_DIR` if set, else `../shared/data/mnist`
/// relative to the crate root. `None` (after printing why, so a skipped test says so) if
/// the four files are not all there.
pub fn mnist_dir() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("MNIST_DIR").filter(|d| !d.is_empty()) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"),
    };
    let missing = autoencoder::data::mnist::missing_files(&dir);
    if missing.is_empty() {
        Some(dir)
    } else {
        let names: Vec<&str> = missing.iter().map(|f| f.name).collect();
        eprintln!(
            "SKIPPED: MNIST files {names:?} not in {} (set MNIST_DIR to the folder holding them)",
            dir.display()
        );
        None
    }
}

/// The bits of every weight and bias, layer by layer: equal vectors mean equal models.
pub fn param_bits(ae: &autoencoder::Autoencoder<f32>) -> Vec<u32> {
    ae.layers()
        .iter()
        .flat_map(|l| {
            l.weights()
                .iter()
                .chain(l.bias())
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        })
        .collect()
}
