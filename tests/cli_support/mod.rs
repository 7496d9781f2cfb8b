//! What the tests of the `autoencoder` tool share: a folder per test, running the tool,
//! its output, the shape of a failure, and a small data set.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A fresh folder for one test.
pub fn folder(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs the tool with `args` in `dir`.
pub fn tool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoencoder"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the tool runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the run failed with `code` and its error as the last line on standard error, the
/// only one starting with `error:`, containing `needle`. (Lines before it are the run's
/// own: what was read, the settings.)
pub fn failed(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    assert_eq!(err.trim_end().lines().last(), Some(errors[0]), "{err}");
    assert!(errors[0].contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// 400 rows of 12 columns near a 3-dimensional subspace, not in [0, 1] (so the tool picks
/// MSE, an identity output and standard scaling).
pub fn data() -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut normal =
        |r, c| Array2::from_shape_simple_fn((r, c), || StandardNormal.sample(&mut rng));
    let (z, w, e): (Array2<f64>, Array2<f64>, Array2<f64>) =
        (normal(400, 3), normal(3, 12), normal(400, 12));
    z.dot(&w) * 3.0 + e * 0.1 + 5.0
}
