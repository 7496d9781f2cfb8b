//! Each kind of autoencoder does what it is for, measured against the same model without
//! it (same seeds): sparse (KL, L1), weight-regularized, denoising, contractive.
//! On a structured synthetic set (32 features in (0, 1) from a 4-dimensional latent
//! factor), so the suite stays fast; the MNIST versions are in tests/mnist_variants.rs.

mod common;

use autoencoder::{Activation, Adam, Autoencoder, Loss, Noise, Penalty, Result, Trainer};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn data() -> Array2<f64> {
    common::structured(1200, 32, 4, 0.05, 11)
}

fn build(code: Activation, width: usize) -> Result<Autoencoder<f64>> {
    Autoencoder::builder(32)
        .latent(width, code)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(12))
}

fn train(
    ae: &mut Autoencoder<f64>,
    x: &Array2<f64>,
    penalties: &[Penalty],
    epochs: usize,
) -> Result<()> {
    let mut trainer = Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(epochs)
        .batch_size(64)
        .seed(13);
    for &p in penalties {
        trainer = trainer.penalty(p);
    }
    trainer.fit(ae, x.view(), None)?;
    Ok(())
}

fn mean_code(ae: &Autoencoder<f64>, x: &Array2<f64>) -> Result<f64> {
    Ok(ae.encode(x.view())?.mean().unwrap())
}

#[test]
fn kl_sparsity_drives_the_mean_activation_to_rho() -> Result<()> {
    let x = data();
    let rho = 0.05;
    let mut plain = build(Activation::Sigmoid, 24)?;
    train(&mut plain, &x, &[], 30)?;
    let mut sparse = build(Activation::Sigmoid, 24)?;
    train(
        &mut sparse,
        &x,
        &[Penalty::kl_sparsity(rho, 3.0)?.into()],
        30,
    )?;
    let (without, with) = (mean_code(&plain, &x)?, mean_code(&sparse, &x)?);
    eprintln!("KL: mean code activation {with:.4} (rho {rho}), without the penalty {without:.4}");
    assert!(
        (with - rho).abs() <= 0.25 * rho,
        "mean code activation {with} vs rho {rho}"
    );
    assert!(
        without > 4.0 * rho,
        "without the penalty the mean sits far above: {without}"
    );
    // Per unit too: every unit's mean is within a factor 2 of rho.
    let per_unit = sparse.encode(x.view())?.mean_axis(Axis(0)).unwrap();
    assert!(
        per_unit.iter().all(|&m| m > rho / 2.0 && m < rho * 2.0),
        "{per_unit}"
    );
    Ok(())
}

#[test]
fn l1_activity_raises_the_fraction_of_near_zero_codes() -> Result<()> {
    let x = data();
    let near_zero = |ae: &Autoencoder<f64>| -> Result<f64> {
        let codes = ae.encode(x.view())?;
        Ok(codes.iter().filter(|&&c| c.abs() < 1e-3).count() as f64 / codes.len() as f64)
    };
    let mut plain = build(Activation::Relu, 24)?;
    train(&mut plain, &x, &[], 20)?;
    let mut sparse = build(Activation::Relu, 24)?;
    train(&mut sparse, &x, &[Penalty::l1_activity(1e-2)?.into()], 20)?;
    let (without, with) = (near_zero(&plain)?, near_zero(&sparse)?);
    eprintln!("L1: near-zero code fraction {with:.3}, without the penalty {without:.3}");
    assert!(
        with > without + 0.2,
        "near-zero fraction {with} with L1 vs {without} without"
    );
    assert!(mean_code(&sparse, &x)? < mean_code(&plain, &x)?);
    Ok(())
}

#[test]
fn l2_weight_decay_lowers_the_weight_norm() -> Result<()> {
    let x = data();
    let norm = |ae: &Autoencoder<f64>| -> f64 {
        ae.layers()
            .iter()
            .map(|l| l.weights().mapv(|w| w * w).sum())
            .sum::<f64>()
            .sqrt()
    };
    let mut plain = build(Activation::Sigmoid, 8)?;
    train(&mut plain, &x, &[], 20)?;
    let mut decayed = build(Activation::Sigmoid, 8)?;
    train(&mut decayed, &x, &[Penalty::l2_weights(1e-3)?.into()], 20)?;
    eprintln!(
        "L2: weight norm {:.3}, without decay {:.3}",
        norm(&decayed),
        norm(&plain)
    );
    assert!(
        norm(&decayed) < 0.8 * norm(&plain),
        "norm {} with decay vs {}",
        norm(&decayed),
        norm(&plain)
    );
    Ok(())
}

/// Peak signal-to-noise ratio in dB for signals in [0, 1]: `10 log10(1 / MSE)`.
fn psnr(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    10.0 * (1.0 / common::mse(a, b)).log10()
}

#[test]
fn denoising_output_is_closer_to_clean_than_the_noisy_input() -> Result<()> {
    // 64 features from a 4-dimensional factor: enough redundancy to remove most noise.
    let x = common::structured(5000, 64, 4, 0.05, 11);
    let (train_x, test_x) = (
        x.slice(ndarray::s![..4500, ..]).to_owned(),
        x.slice(ndarray::s![4500.., ..]).to_owned(),
    );
    let noise = Noise::Gaussian {
        std: 0.5,
        clip: Some((0.0, 1.0)),
    };
    let mut ae = Autoencoder::<f64>::builder(64)
        .hidden(32, Activation::Relu)
        .latent(4, Activation::Identity)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(14))?;
    Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .noise(noise)
        .epochs(40)
        .batch_size(64)
        .fit(&mut ae, train_x.view(), Some(test_x.view()))?;
    let noisy = autoencoder::corrupt(test_x.view(), noise, &mut ChaCha8Rng::seed_from_u64(15))?;
    let denoised = ae.reconstruct(noisy.view())?;
    let (before, after) = (psnr(&noisy, &test_x), psnr(&denoised, &test_x));
    eprintln!("denoising: PSNR noisy {before:.2} dB, denoised {after:.2} dB");
    assert!(
        after - before >= 6.0,
        "PSNR noisy {before:.2} dB, denoised {after:.2} dB"
    );
    Ok(())
}

#[test]
fn contractive_penalty_lowers_the_jacobian_norm() -> Result<()> {
    let x = data();
    let mut plain = build(Activation::Sigmoid, 8)?;
    train(&mut plain, &x, &[], 20)?;
    let mut contractive = build(Activation::Sigmoid, 8)?;
    train(
        &mut contractive,
        &x,
        &[Penalty::contractive(0.1)?.into()],
        20,
    )?;
    let (without, with) = (
        plain.jacobian_norm(x.view())?,
        contractive.jacobian_norm(x.view())?,
    );
    eprintln!("contractive: ||J||_F^2 {with:.4}, without the penalty {without:.4}");
    assert!(
        with < 0.7 * without,
        "||J||_F^2 {with} with the penalty vs {without} without"
    );
    Ok(())
}

#[test]
fn all_penalties_compose_in_one_denoising_run() -> Result<()> {
    let x = data();
    let mut ae = build(Activation::Sigmoid, 16)?;
    let before = ae.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)?;
    let history = Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .noise(Noise::Masking { fraction: 0.2 })
        .penalty(Penalty::kl_sparsity(0.1, 1.0)?)
        .penalty(Penalty::l2_weights(1e-4)?)
        .penalty(Penalty::contractive(1e-2)?)
        .epochs(10)
        .batch_size(64)
        .fit(&mut ae, x.view(), Some(x.view()))?;
    assert_eq!(
        history.penalty_names,
        vec!["kl", "l2-weights", "contractive"]
    );
    let after = ae.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)?;
    assert!(after < before, "reconstruction {before} -> {after}");
    let (first, last) = (&history.epochs[0], history.last().unwrap());
    assert!(
        last.train_penalties[0] < first.train_penalties[0],
        "KL term falls"
    );
    Ok(())
}

#[test]
fn jacobian_norm_matches_finite_differences() -> Result<()> {
    // The measured norm is itself checked: finite differences of the code in each input.
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let ae = Autoencoder::<f64>::builder(5)
        .hidden(4, Activation::Tanh)
        .latent(3, Activation::Sigmoid)
        .build(&mut rng)?;
    let x = common::structured(3, 5, 2, 0.1, 17);
    let mut expected = 0.0;
    let h = 1e-6;
    for r in 0..x.nrows() {
        for i in 0..5 {
            let (mut plus, mut minus) = (
                x.row(r).to_owned().insert_axis(Axis(0)),
                x.row(r).to_owned().insert_axis(Axis(0)),
            );
            plus[[0, i]] += h;
            minus[[0, i]] -= h;
            let d = (ae.encode(plus.view())? - ae.encode(minus.view())?) / (2.0 * h);
            expected += d.mapv(|v| v * v).sum();
        }
    }
    expected /= x.nrows() as f64;
    let measured = ae.jacobian_norm(x.view())?;
    assert!(
        (measured - expected).abs() < 1e-6 * expected,
        "{measured} vs {expected}"
    );
    Ok(())
}
