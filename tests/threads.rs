//! Same seed, same weights, bit for bit, for any number of matrix-product threads.
//!
//! `set_threads` applies from the next matrix product, so the count changes inside this
//! process; a test running beside it may see the count change, which by the property under
//! test changes none of its results.

mod common;

use autoencoder::compute::gemm;
use autoencoder::{Activation, Adam, Autoencoder, Init, Loss, Result, Trainer};
use common::param_bits;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Data and a model whose matrix products are large enough to be split over threads.
fn setup() -> Result<(Array2<f32>, Autoencoder<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = Array2::from_shape_fn((512, 256), |_| rng.random::<f32>());
    let ae = Autoencoder::<f32>::builder(256)
        .hidden(192, Activation::Relu)
        .latent(32, Activation::Relu)
        .output(Activation::Sigmoid)
        .init(Init::GlorotUniform)
        .build(&mut rng)?;
    Ok((x, ae))
}

/// Trains the model of [`setup`] for two epochs; returns its weights' bits.
fn train() -> Result<Vec<u32>> {
    let (x, mut ae) = setup()?;
    Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(2)
        .batch_size(256)
        .seed(3)
        .fit(&mut ae, x.view(), None)?;
    Ok(param_bits(&ae))
}

/// Products of odd shapes (split along rows and along columns), in the layouts a layer
/// uses, as bits.
fn products() -> Result<Vec<u64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut bits = Vec::new();
    for (m, k, n) in [(301, 517, 45), (37, 263, 611), (256, 784, 128)] {
        let a = Array2::from_shape_fn((m, k), |_| rng.random_range(-1.0..1.0));
        let b = Array2::from_shape_fn((n, k), |_| rng.random_range(-1.0..1.0));
        let mut c = Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0..1.0));
        gemm(0.5, &a.view(), &b.t(), 1.0, &mut c.view_mut())?; // C += A B^T / 2
        let mut d = Array2::<f64>::zeros((k, n));
        gemm(1.0, &a.t(), &c.view(), 0.0, &mut d.view_mut())?; // D = A^T C
        bits.extend(c.iter().chain(&d).map(|v| v.to_bits()));
    }
    Ok(bits)
}

#[test]
fn weights_do_not_depend_on_the_thread_count() -> Result<()> {
    let counts = [1, 2, 3, 1, 2];
    let mut runs = Vec::new();
    for n in counts {
        autoencoder::set_threads(n)?;
        let expected = if cfg!(any(feature = "threading", feature = "blas")) {
            n
        } else {
            1
        };
        assert_eq!(
            autoencoder::threads(),
            expected,
            "set_threads({n}) took effect"
        );
        runs.push((train()?, products()?));
    }
    for (n, run) in counts.iter().zip(&runs) {
        assert!(
            run.0 == runs[0].0,
            "{n} threads: other weights than 1 thread"
        );
        // OpenBLAS (the `blas` feature) splits some shapes along the inner index, so its
        // products are the same bits for any thread count only for some shapes.
        assert!(
            run.1 == runs[0].1 || cfg!(feature = "blas"),
            "{n} threads: other products than 1 thread"
        );
    }
    // The model trained: most weights moved from their initial values.
    let start = param_bits(&setup()?.1);
    let moved = start.iter().zip(&runs[0].0).filter(|(a, b)| a != b).count();
    assert!(
        moved > start.len() / 2,
        "only {moved} weights changed in training"
    );
    Ok(())
}

/// Two models trained at once from two threads share the pool (one gets it, the other runs
/// its parts itself): both come out as a model trained alone.
#[test]
fn models_trained_at_once_match_one_trained_alone() -> Result<()> {
    let alone = train()?;
    let runs = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2).map(|_| scope.spawn(train)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("training thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    for (i, run) in runs.iter().enumerate() {
        assert!(*run == alone, "model {i} trained beside another differs");
    }
    Ok(())
}
