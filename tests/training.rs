//! Training behaviour: the loss falls, a linear autoencoder reaches PCA, seeds reproduce,
//! early stopping, callbacks, partial batches, clipping and divergence work.

mod common;

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use autoencoder::{
    Activation, Adam, Autoencoder, EarlyStopping, Error, Init, Loss, Pca, Restore, Result, Sgd,
    StopReason, Trainer,
};
use common::param_bits;
use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn training_cuts_the_loss_on_structured_data() -> Result<()> {
    let x = common::structured(600, 24, 3, 0.05, 1);
    let mut ae = Autoencoder::<f64>::builder(24)
        .hidden(16, Activation::Tanh)
        .latent(3, Activation::Identity)
        .output(Activation::Sigmoid)
        .build(&mut rng(2))?;
    let before = ae.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?;
    let history = Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(40)
        .batch_size(32)
        .fit(&mut ae, x.view(), None)?;
    let after = ae.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?;
    // Stated factor: the reconstruction MSE falls at least 10-fold.
    assert!(after * 10.0 < before, "MSE before {before}, after {after}");
    let first = history.epochs[0].train_loss;
    assert!(history.last().unwrap().train_loss < first);
    Ok(())
}

#[test]
fn linear_autoencoder_reaches_pca() -> Result<()> {
    // A linear autoencoder with k code units and MSE can at best match PCA with k
    // components; trained well, it comes within a few percent.
    let (n, d, k) = (400, 10, 3);
    let x = common::linear(n, d, k, 0.1, 3);
    let pca = Pca::fit(x.view(), k)?;
    let pca_mse = common::mse(&pca.reconstruct(x.view())?, &x);
    let mut ae = Autoencoder::<f64>::builder(d)
        .latent(k, Activation::Identity)
        .output(Activation::Identity)
        .build(&mut rng(4))?;
    Trainer::new(Adam::new(1e-2))
        .loss(Loss::MeanSquaredError)
        .epochs(1000)
        .batch_size(100)
        .schedule(autoencoder::Schedule::Cosine { min_lr: 1e-4 })
        .fit(&mut ae, x.view(), None)?;
    let ae_mse = common::mse(&ae.reconstruct(x.view())?, &x);
    eprintln!("linear AE MSE {ae_mse}, PCA {pca_mse}");
    assert!(
        ae_mse >= pca_mse * (1.0 - 1e-6),
        "the AE cannot beat PCA: {ae_mse} < {pca_mse}"
    );
    assert!(
        ae_mse <= pca_mse * 1.03,
        "linear AE MSE {ae_mse} vs PCA-{k} {pca_mse}"
    );
    Ok(())
}

fn train_once(build_seed: u64, train_seed: u64) -> Result<Autoencoder<f32>> {
    let x = common::structured(200, 12, 2, 0.1, 5).mapv(|v| v as f32);
    let mut ae = Autoencoder::<f32>::builder(12)
        .hidden(8, Activation::Relu)
        .latent(2, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut rng(build_seed))?;
    Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .noise(autoencoder::Noise::Masking { fraction: 0.2 })
        .epochs(3)
        .batch_size(16)
        .seed(train_seed)
        .fit(&mut ae, x.view(), None)?;
    Ok(ae)
}

#[test]
fn same_seed_same_weights_bit_for_bit_and_different_seeds_differ() -> Result<()> {
    let a = param_bits(&train_once(1, 2)?);
    assert_eq!(a, param_bits(&train_once(1, 2)?));
    assert_ne!(a, param_bits(&train_once(9, 2)?), "another build seed");
    assert_ne!(a, param_bits(&train_once(1, 9)?), "another training seed");
    // f32 and f64 models from one seed hold the same weights up to rounding.
    let m32 = Autoencoder::<f32>::builder(5)
        .latent(2, Activation::Tanh)
        .build(&mut rng(3))?;
    let m64 = Autoencoder::<f64>::builder(5)
        .latent(2, Activation::Tanh)
        .build(&mut rng(3))?;
    for (l32, l64) in m32.layers().iter().zip(m64.layers()) {
        for (&a, &b) in l32.weights().iter().zip(l64.weights().iter()) {
            assert_eq!(a, b as f32);
        }
    }
    Ok(())
}

#[test]
fn early_stopping_stops_and_restores_the_best_weights() -> Result<()> {
    let x = common::structured(300, 10, 2, 0.1, 6);
    let (train, valid) = (x.slice(s![..200, ..]), x.slice(s![200.., ..]));
    let mut ae = Autoencoder::<f64>::builder(10)
        .latent(2, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut rng(7))?;
    // A min_delta no epoch can meet: the first epoch stays best, training stops after
    // `patience` more epochs, and the model goes back to epoch 0's weights.
    let history = Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(50)
        .early_stopping(EarlyStopping::new(3).min_delta(10.0).restore(Restore::Best))
        .fit(&mut ae, train, Some(valid))?;
    assert_eq!(history.stop, StopReason::EarlyStopped);
    assert_eq!(history.epochs.len(), 4);
    assert_eq!(history.best_epoch, Some(0));
    let restored = ae.evaluate(valid, valid, Loss::BinaryCrossEntropy)?;
    let best = history.epochs[0].valid_loss.unwrap();
    assert!(
        (restored - best).abs() < 1e-12,
        "restored {restored} vs best {best}"
    );
    assert!(
        history.epochs[3].valid_loss.unwrap() < best,
        "later epochs were better but below min_delta"
    );
    Ok(())
}

#[test]
fn callbacks_see_every_batch_and_can_stop_training() -> Result<()> {
    // 10 rows in batches of 4: 3 batches of 4, 4 and 2 rows per epoch.
    let x = common::structured(10, 6, 2, 0.1, 8);
    let mut ae = Autoencoder::<f64>::builder(6)
        .latent(2, Activation::Tanh)
        .build(&mut rng(1))?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in = Arc::clone(&seen);
    let history = Trainer::new(Sgd::new(0.05))
        .epochs(10)
        .batch_size(4)
        .on_batch(move |p| {
            seen_in
                .lock()
                .unwrap()
                .push((p.epoch, p.batch, p.n_batches, p.samples))
        })
        .on_epoch(|r| {
            if r.epoch == 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .fit(&mut ae, x.view(), None)?;
    assert_eq!(history.stop, StopReason::Callback);
    assert_eq!(history.epochs.len(), 2);
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            (0, 1, 3, 4),
            (0, 2, 3, 8),
            (0, 3, 3, 10),
            (1, 1, 3, 4),
            (1, 2, 3, 8),
            (1, 3, 3, 10)
        ]
    );
    Ok(())
}

#[test]
fn gradient_clipping_bounds_each_step() -> Result<()> {
    // Plain SGD with lr 1 and clipping at 1e-3 moves the parameters by at most 1e-3 per step.
    let x = common::structured(8, 5, 2, 0.1, 9);
    let mut ae = Autoencoder::<f64>::builder(5)
        .latent(2, Activation::Tanh)
        .build(&mut rng(2))?;
    let before = ae.clone();
    Trainer::new(Sgd::new(1.0))
        .epochs(1)
        .batch_size(8)
        .clip_grad_norm(1e-3)
        .fit(&mut ae, x.view(), None)?;
    let moved: f64 = ae
        .layers()
        .iter()
        .zip(before.layers())
        .map(|(a, b)| {
            (&a.weights() - &b.weights()).mapv(|v| v * v).sum()
                + (&a.bias() - &b.bias()).mapv(|v| v * v).sum()
        })
        .sum::<f64>()
        .sqrt();
    assert!(moved > 0.0 && moved <= 1e-3 + 1e-15, "moved {moved}");
    Ok(())
}

#[test]
fn divergence_returns_an_error_and_keeps_finite_weights() -> Result<()> {
    let x = Array2::from_shape_fn((64, 4), |(i, j)| (i as f64 - 32.0) * (j as f64 + 1.0));
    let mut ae = Autoencoder::<f64>::builder(4)
        .latent(2, Activation::Identity)
        .init(Init::GlorotUniform)
        .build(&mut rng(3))?;
    let err = Trainer::new(Sgd::new(10.0))
        .epochs(50)
        .batch_size(8)
        .fit(&mut ae, x.view(), None)
        .unwrap_err();
    match err {
        Error::Diverged {
            epoch,
            batch,
            what,
            value,
        } => {
            assert!(
                !value.is_finite(),
                "{what} = {value} at epoch {epoch}, batch {batch}"
            );
        }
        other => panic!("expected Diverged, got {other}"),
    }
    assert!(ae
        .layers()
        .iter()
        .all(|l| l.weights().iter().all(|w| w.is_finite())));
    assert!(ae.reconstruct(x.view())?.iter().all(|v| v.is_finite()));
    Ok(())
}

#[test]
fn history_reports_each_penalty_and_the_reconstruction() -> Result<()> {
    let x = common::structured(64, 8, 2, 0.1, 10);
    let mut ae = Autoencoder::<f64>::builder(8)
        .latent(4, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut rng(4))?;
    let history = Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .penalty(autoencoder::Penalty::kl_sparsity(0.05, 1.0)?)
        .penalty(autoencoder::Penalty::l2_weights(1e-3)?)
        .epochs(2)
        .fit(&mut ae, x.view(), None)?;
    assert_eq!(history.penalty_names, vec!["kl", "l2-weights"]);
    for r in &history.epochs {
        assert_eq!(r.train_penalties.len(), 2);
        assert!(r.train_penalties.iter().all(|&p| p > 0.0));
        let sum = r.train_reconstruction + r.train_penalties.iter().sum::<f64>();
        assert!((r.train_loss - sum).abs() < 1e-12);
    }
    Ok(())
}
