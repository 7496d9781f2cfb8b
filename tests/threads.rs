//! Same seed, same weights, bit for bit, for any number of matrix-product threads.
//!
//! matrixmultiply reads its thread count once per process, so the test runs this binary
//! again as a child process per thread count (`MATMUL_NUM_THREADS` set, and the child test
//! selected by name), and compares the fingerprints of the trained weights they print.

use std::process::Command;

use autoencoder::{Activation, Adam, Autoencoder, Init, Loss, Result, Trainer};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CHILD: &str = "AUTOENCODER_THREADS_CHILD";

/// Trains a model whose matrix products are large enough to be split over threads and
/// returns every weight and bias as bits.
fn train() -> Result<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = Array2::from_shape_fn((512, 256), |_| rng.random::<f32>());
    let mut ae = Autoencoder::<f32>::builder(256)
        .hidden(192, Activation::Relu)
        .latent(32, Activation::Relu)
        .output(Activation::Sigmoid)
        .init(Init::GlorotUniform)
        .build(&mut rng)?;
    Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(2)
        .batch_size(256)
        .seed(3)
        .fit(&mut ae, x.view(), None)?;
    Ok(ae
        .layers()
        .iter()
        .flat_map(|l| {
            l.weights()
                .iter()
                .chain(l.bias())
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        })
        .collect())
}

/// Run as a child only: prints the weights' bits as one line.
#[test]
fn child_prints_weights() -> Result<()> {
    if std::env::var_os(CHILD).is_some() {
        let bits = train()?;
        println!(
            "\nWEIGHTS {} {:016x} {}",
            autoencoder::threads(),
            fingerprint(&bits),
            bits.len()
        );
    }
    Ok(())
}

/// FNV-1a over the bits: equal fingerprints mean equal weights (up to a 2^-64 chance).
fn fingerprint(bits: &[u32]) -> u64 {
    bits.iter()
        .flat_map(|b| b.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, byte| {
            (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

fn weights_with_threads(n: usize) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "child_prints_weights",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MATMUL_NUM_THREADS", n.to_string())
        .env("OPENBLAS_NUM_THREADS", n.to_string())
        .output()
        .expect("the test binary runs as a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("WEIGHTS ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("child with {n} threads printed no weights: {stdout}"));
    let (threads, bits) = line.split_once(' ').expect("thread count, then bits");
    let expected = if cfg!(any(feature = "threading", feature = "blas")) {
        n
    } else {
        1
    };
    assert_eq!(
        threads,
        expected.to_string(),
        "the child used the requested threads"
    );
    bits.to_string()
}

#[test]
fn weights_do_not_depend_on_the_thread_count() -> Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return Ok(());
    }
    let one = weights_with_threads(1);
    let two = weights_with_threads(2);
    let again = weights_with_threads(2);
    assert_eq!(two, again, "two runs with 2 threads differ");
    assert_eq!(one, two, "1 and 2 threads give different weights");
    assert!(one.ends_with(&format!(" {}", train()?.len())));
    Ok(())
}
