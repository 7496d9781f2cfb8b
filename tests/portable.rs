//! Same seed, same weights, bit for bit, on the SIMD kernels and on the portable ones: what
//! a CPU without AVX2 and FMA (or one that is not x86) runs.
//!
//! `AUTOENCODER_PORTABLE=1` forces the portable kernels, read once per process; the
//! in-process switch `compute::set_kernels` is a hidden test hook. The first test trains
//! twice in this process, once on each; the second trains in a child process with the
//! variable set and compares with this process's default run. The tests take turns on a
//! lock, so that each default run is one.
//!
//! Not covered: the system's `libm`. Both runs call the same one, but glibc picks FMA code
//! for `f64` `exp`, `ln`, `tanh`, `exp_m1` and `ln_1p` by CPU, so an `f64` model (whose
//! sigmoid and cross-entropy call `exp` and `ln`) can still differ on a CPU without FMA.
//! The `f32` hot loops use the crate's own `exp` and `ln`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use autoencoder::compute::{kernels, set_kernels, Kernels};
use autoencoder::{Activation, Adam, Autoencoder, Float, Init, Loss, Penalty, Result, Trainer};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Taken by each test while it sets the kernels and trains.
static SWITCH: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    SWITCH.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether this CPU runs SIMD kernels by default; if not, both runs below are portable and
/// the comparison shows less (it still passes).
fn simd_by_default() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// 800 rows of 300 random features in [0, 1), and a 300-130-37-130-300 model: widths off
/// the kernels' 16 and 8 columns and 6 rows, so products have full and edge tiles.
fn setup<T: Float>() -> Result<(Array2<T>, Autoencoder<T>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let x = Array2::from_shape_simple_fn((800, 300), || T::cast(rng.random::<f64>()));
    let ae = Autoencoder::<T>::builder(300)
        .hidden(130, Activation::Relu)
        .latent(37, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .init(Init::GlorotUniform)
        .build(&mut rng)?;
    Ok((x, ae))
}

/// 300 rows of random 1x7x7 images and a small convolutional model that runs every image
/// kernel with SIMD twins: a convolution through im2col and the product (8 channels), 2x2
/// max pooling with a partial window (ceil mode), 2x upsampling and a direct-kernel
/// convolution (1 channel, 'valid').
fn conv_setup<T: Float>() -> Result<(Array2<T>, Autoencoder<T>)> {
    use autoencoder::Padding::{Same, Valid};
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let x = Array2::from_shape_simple_fn((300, 49), || T::cast(rng.random::<f64>()));
    let ae = Autoencoder::<T>::sequence([1, 7, 7])
        .conv(8, 3, Same, Activation::Relu)
        .max_pool(2, autoencoder::Rounding::Ceil) // 8x4x4
        .code()
        .upsample(2) // 8x8x8
        .conv(1, 2, Valid, Activation::Sigmoid) // 1x7x7
        .build(&mut rng)?;
    Ok((x, ae))
}

/// The bits of every weight and bias, layer by layer (as `f64`, exact for `f32`).
fn param_bits<T: Float>(ae: &Autoencoder<T>) -> Vec<u64> {
    let layer_bits = |l: &autoencoder::Layer<T>| -> Vec<u64> {
        l.weights()
            .iter()
            .chain(l.bias())
            .map(|v| v.as_f64().to_bits())
            .collect()
    };
    ae.layers().iter().flat_map(layer_bits).collect()
}

/// Trains the model of [`setup`] with the kernels `kernels`: batches of 350 (a last batch
/// of 100; the larger products split over threads), 3 epochs, Adam, binary cross-entropy,
/// an L2 weight penalty and gradient clipping. Returns the weights' and biases' bits and
/// the epochs' loss bits.
fn train<T: Float>(kernels: Kernels) -> Result<Vec<u64>> {
    train_on(kernels, setup::<T>()?)
}

/// [`train`] for the model and data of `setup`.
fn train_on<T: Float>(
    kernels: Kernels,
    (x, mut ae): (Array2<T>, Autoencoder<T>),
) -> Result<Vec<u64>> {
    set_kernels(kernels);
    let history = Trainer::new(Adam::new(1e-3))
        .loss(Loss::BinaryCrossEntropy)
        .penalty(Penalty::l2_weights(1e-4)?)
        .clip_grad_norm(5.0)
        .epochs(3)
        .batch_size(350)
        .seed(4)
        .fit(&mut ae, x.view(), None)?;
    let mut bits = param_bits(&ae);
    bits.extend(history.epochs.iter().map(|e| e.train_loss.to_bits()));
    Ok(bits)
}

/// How many of the values differ, of how many (`(0, n)` when all agree).
fn differ(a: &[u64], b: &[u64]) -> (usize, usize) {
    assert_eq!(a.len(), b.len(), "runs of different lengths");
    (a.iter().zip(b).filter(|(a, b)| a != b).count(), a.len())
}

#[test]
fn weights_are_the_same_bits_on_the_portable_kernels() -> Result<()> {
    same_bits_on_both_kernels(setup::<f32>, setup::<f64>)
}

/// The same for a convolutional model (the image layers' own SIMD twins: pooling, the
/// direct kernels, the bias and activation over image rows).
#[test]
fn conv_weights_are_the_same_bits_on_the_portable_kernels() -> Result<()> {
    same_bits_on_both_kernels(conv_setup::<f32>, conv_setup::<f64>)
}

/// A function that makes the data and the model to train.
type Setup<T> = fn() -> Result<(Array2<T>, Autoencoder<T>)>;

/// Trains the model and data of the setups on each kernel set, in `f32` and `f64`, and
/// asserts that the bits agree and that training moved most weights (a run that did nothing
/// would agree trivially).
fn same_bits_on_both_kernels(setup_f32: Setup<f32>, setup_f64: Setup<f64>) -> Result<()> {
    let _turn = lock();
    let before = kernels();
    let runs = [
        (
            train_on(Kernels::Fastest, setup_f32()?)?,
            train_on(Kernels::Portable, setup_f32()?)?,
        ),
        (
            train_on(Kernels::Fastest, setup_f64()?)?,
            train_on(Kernels::Portable, setup_f64()?)?,
        ),
    ];
    set_kernels(before);
    if !simd_by_default() {
        eprintln!("NOTE: no AVX2 + FMA on this CPU: both runs used the portable kernels");
    }
    for ((fast, portable), name) in runs.iter().zip(["f32", "f64"]) {
        let (n_differ, n) = differ(fast, portable);
        assert_eq!(n_differ, 0, "{name}: {n_differ} of {n} values differ");
    }
    let start = param_bits(&setup_f32()?.1);
    let (moved, n) = differ(&start, &runs[0].0[..start.len()]);
    assert!(
        moved > n / 2,
        "only {moved} of {n} parameters changed in training"
    );
    Ok(())
}

const CHILD_OUT: &str = "AE_PORTABLE_CHILD_OUT";

#[test]
fn the_environment_variable_forces_the_portable_kernels() -> TestResult {
    let _turn = lock();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portable-child.bits");
    let _ = std::fs::remove_file(&out);
    let child = Command::new(std::env::current_exe()?)
        .args(["--exact", "child_process", "--ignored", "--test-threads=1"])
        .env("AUTOENCODER_PORTABLE", "1")
        .env(CHILD_OUT, &out)
        .output()?;
    assert!(
        child.status.success(),
        "the child process failed: {}\n{}{}",
        child.status,
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let bytes = std::fs::read(&out)?;
    let child: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let before = kernels();
    let mut fast = train::<f32>(Kernels::Fastest)?;
    fast.extend(train::<f64>(Kernels::Fastest)?);
    set_kernels(before);
    let (n_differ, n) = differ(&fast, &child);
    assert_eq!(n_differ, 0, "{n_differ} of {n} values differ");
    std::fs::remove_file(&out)?;
    Ok(())
}

/// The child of the test above: with `AUTOENCODER_PORTABLE=1` the kernels are the portable
/// ones; trains both models on them (as the environment set them) and writes the bits.
#[test]
#[ignore = "run as a child process by the_environment_variable_forces_the_portable_kernels"]
fn child_process() -> TestResult {
    let Some(out) = std::env::var_os(CHILD_OUT) else {
        return Ok(()); // run by hand with --ignored: nothing to do
    };
    assert_eq!(
        kernels(),
        Kernels::Portable,
        "AUTOENCODER_PORTABLE=1 was not read"
    );
    let mut bits = train::<f32>(kernels())?;
    bits.extend(train::<f64>(kernels())?);
    let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    std::fs::write(out, bytes)?;
    Ok(())
}
