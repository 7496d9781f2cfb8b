//! Data shared by the integration tests.
#![allow(dead_code)]

pub mod idx;

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

/// The folder holding the MNIST files: the first of
/// [`autoencoder::data::mnist::search_dirs`] that holds all four, so the tests look exactly
/// where the examples look: `$MNIST_DIR`, then `./data/mnist`, then `../shared/data/mnist`
/// (relative to the crate root, where `cargo test` runs the tests). Nothing is downloaded.
///
/// If no folder holds them:
/// - with `CI` set (to anything but empty, `0` or `false`): `Err(Error::MissingData)`,
///   saying where it looked and what to do, and the test fails: a CI run must not pass
///   without having run the MNIST tests;
/// - otherwise `Ok(None)`: the test returns early and passes, after writing a `SKIPPED`
///   line that a person running `cargo test` sees.
///
/// How that line gets seen: the test harness captures what `println!` and `eprintln!`
/// write and shows it only for a failing test (or with `--nocapture`), which is how the
/// skip notes used to vanish behind an "ok" in 0.00 s. The capture works through those
/// macros only. A write to the `std::io::stderr()` handle goes straight to the process's
/// standard error, which `cargo test` passes through to the terminal (or the CI log), so
/// the line appears in a plain `cargo test` run beside the test's "ok". (Not `/dev/tty`: it
/// is missing in CI logs, editors and pipes.)
pub fn mnist_dir() -> autoencoder::Result<Option<std::path::PathBuf>> {
    use autoencoder::data::mnist;
    let dirs = mnist::search_dirs();
    if let Some(dir) = dirs.iter().find(|d| mnist::missing_files(d).is_empty()) {
        // A `MNIST_DIR` without the files is worth a word, once per test binary, even
        // though the next folder has them (the examples would use that one too).
        let set = std::env::var_os(mnist::DIR_VAR).filter(|d| !d.is_empty());
        if let Some(set) = set.filter(|d| std::path::Path::new(d) != dir) {
            static NOTE: std::sync::Once = std::sync::Once::new();
            NOTE.call_once(|| {
                let line = format!(
                    "note: {}={} does not hold the MNIST files; the tests use {}, the next \
                     place the examples look too\n",
                    mnist::DIR_VAR,
                    set.to_string_lossy(),
                    dir.display()
                );
                use std::io::Write;
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            });
        }
        return Ok(Some(dir.clone()));
    }
    let cwd = std::env::current_dir().map_or("?".into(), |d| d.display().to_string());
    let looked = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let files = mnist::FILES.map(|f| f.name).join(", ");
    let what_to_do = format!(
        "set {} to the folder that holds them (.ci/run uses ../shared/data/mnist), or run \
         `cargo run --release --example mnist_ae` once to download them into ./{}",
        mnist::DIR_VAR,
        mnist::DEFAULT_DIR
    );
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if ci {
        // The harness prints a failing test's result with `{:?}`; the readable form goes to
        // the captured output, which it shows for a failing test.
        eprintln!("MNIST test data not found in {looked} (relative to {cwd}); {what_to_do}");
        return Err(autoencoder::Error::MissingData {
            what: format!(
                "MNIST test data not found: none of {looked} (relative to {cwd}) holds all of \
                 {files}. CI is set, so a missing data set fails the MNIST tests instead of \
                 skipping them."
            ),
            help: format!("To fix: {what_to_do}."),
        });
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("an MNIST test")
        .to_string();
    let line = format!(
        "SKIPPED {test}: MNIST not found in {looked} (relative to {cwd}); {what_to_do} \
         (with CI set this fails instead)\n"
    );
    // One write of the whole line: standard error is unbuffered, and a `writeln!` of a
    // format string writes piece by piece, between the harness's own lines.
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    Ok(None)
}

/// Every weight and bias, layer by layer.
pub fn params<T: autoencoder::Float>(ae: &autoencoder::Autoencoder<T>) -> Vec<T> {
    ae.layers()
        .iter()
        .flat_map(|l| {
            l.weights()
                .iter()
                .chain(l.bias())
                .copied()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The bits of every weight and bias, layer by layer: equal vectors mean equal models.
pub fn param_bits(ae: &autoencoder::Autoencoder<f32>) -> Vec<u32> {
    params(ae).iter().map(|v| v.to_bits()).collect()
}
