//! The variants on real MNIST images (found where the examples look; without them each
//! test fails when `CI` is set and otherwise prints a visible SKIPPED line, see
//! `common::mnist_dir`): denoising on held-out test images, and KL sparsity reaching its
//! target.

mod common;

use autoencoder::data::Mnist;
use autoencoder::{corrupt, Activation, Adam, Autoencoder, Loss, Noise, Penalty, Result, Trainer};
use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn psnr(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let mse = (a - b).mapv(|v| f64::from(v * v)).mean().unwrap();
    10.0 * (1.0 / mse).log10()
}

#[test]
fn denoising_gains_at_least_6_db_on_held_out_test_images() -> Result<()> {
    let Some(dir) = common::mnist_dir()? else {
        return Ok(());
    };
    let data = Mnist::<f32>::load(&dir)?;
    let train = data.train_images.slice(s![..20_000, ..]);
    let test = data.test_images.slice(s![..2_000, ..]).to_owned();
    let noise = Noise::Gaussian {
        std: 0.5,
        clip: Some((0.0, 1.0)),
    };
    let mut ae = Autoencoder::<f32>::builder(784)
        .hidden(128, Activation::Relu)
        .latent(32, Activation::Relu)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(1))?;
    Trainer::new(Adam::new(2e-3))
        .loss(Loss::BinaryCrossEntropy)
        .noise(noise)
        .epochs(12)
        .batch_size(128)
        .fit(&mut ae, train, None)?;
    let noisy = corrupt(test.view(), noise, &mut ChaCha8Rng::seed_from_u64(2))?;
    let denoised = ae.reconstruct(noisy.view())?;
    let (before, after) = (psnr(&noisy, &test), psnr(&denoised, &test));
    eprintln!("MNIST denoising: PSNR noisy {before:.2} dB, denoised {after:.2} dB");
    assert!(
        after - before >= 6.0,
        "PSNR noisy {before:.2} dB, denoised {after:.2} dB"
    );
    Ok(())
}

#[test]
fn kl_sparsity_on_mnist_reaches_rho() -> Result<()> {
    let Some(dir) = common::mnist_dir()? else {
        return Ok(());
    };
    let data = Mnist::<f32>::load(&dir)?;
    let train = data.train_images.slice(s![..10_000, ..]);
    let test = data.test_images.slice(s![..2_000, ..]);
    let rho = 0.05;
    let mean_code = |penalty: Option<Penalty>| -> Result<f64> {
        let mut ae = Autoencoder::<f32>::builder(784)
            .latent(64, Activation::Sigmoid)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(3))?;
        let mut trainer = Trainer::new(Adam::new(3e-3))
            .loss(Loss::BinaryCrossEntropy)
            .epochs(8)
            .batch_size(128);
        if let Some(p) = penalty {
            trainer = trainer.penalty(p);
        }
        trainer.fit(&mut ae, train, None)?;
        Ok(f64::from(ae.encode(test)?.mean().unwrap()))
    };
    let (without, with) = (
        mean_code(None)?,
        mean_code(Some(Penalty::kl_sparsity(rho, 1.0)?.into()))?,
    );
    eprintln!(
        "MNIST KL sparsity: mean code activation {with:.4} (rho {rho}), {without:.4} without"
    );
    assert!(
        (with - rho).abs() <= 0.25 * rho,
        "mean activation {with} vs rho {rho}"
    );
    assert!(without > 4.0 * rho, "{without}");
    Ok(())
}
