//! Variational autoencoder, tied weights and stacked (greedy layer-wise) training:
//! gradient checks and behaviour.

mod common;

use autoencoder::gradcheck::check_model;
use autoencoder::{
    Activation, Adam, Autoencoder, Error, Init, Latent, Loss, Penalty, Result, Trainer, Tying,
};
use ndarray::{s, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Same bound and step as tests/gradients.rs: relative error |a - n| / max(|a| + |n|, 1e-4)
/// below 1e-6, central differences with h = 1e-5, in f64.
const H: f64 = 1e-5;
const BOUND: f64 = 1e-6;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn vae(n_in: usize, hidden: usize, k: usize, seed: u64) -> Result<Autoencoder<f64>> {
    Autoencoder::builder(n_in)
        .hidden(hidden, Activation::Tanh)
        .gaussian_latent(k)
        .output(Activation::Sigmoid)
        .build(&mut rng(seed))
}

#[test]
fn vae_gradient_through_the_sampling_step_matches_finite_differences() -> Result<()> {
    for seed in 0..3u64 {
        let mut model = vae(7, 5, 3, seed)?;
        assert_eq!(model.latent(), Latent::Gaussian);
        assert_eq!(model.sizes(), vec![7, 5, 6, 5, 7]); // code layer: mu and log-variance
        assert_eq!(model.n_latent(), 3);
        let x = common::structured(4, 7, 2, 0.1, seed);
        for beta in [1.0, 4.0] {
            let kl = Penalty::gaussian_kl(beta)?;
            let report = check_model(
                &mut model,
                x.view(),
                x.view(),
                Loss::BinaryCrossEntropySum,
                &[kl.into()],
                H,
            )?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed}, beta {beta}: {report:?}"
            );
        }
        // With other penalties on top.
        let more: [Penalty; 2] = [
            Penalty::gaussian_kl(1.0)?.into(),
            Penalty::l2_weights(1e-2)?.into(),
        ];
        let report = check_model(
            &mut model,
            x.view(),
            x.view(),
            Loss::MeanSquaredError,
            &more,
            H,
        )?;
        assert!(report.max_rel_error < BOUND, "seed {seed}: {report:?}");
    }
    Ok(())
}

#[test]
fn tied_gradient_sums_both_uses_and_matches_finite_differences() -> Result<()> {
    for seed in 0..3u64 {
        for hidden in [Activation::Sigmoid, Activation::Tanh] {
            let mut model = Autoencoder::<f64>::builder(6)
                .hidden(5, hidden)
                .latent(3, hidden)
                .output(Activation::Sigmoid)
                .tying(Tying::Tied)
                .build(&mut rng(seed))?;
            let untied_params = 6 * 5 + 5 + 5 * 3 + 3 + 3 * 5 + 5 + 5 * 6 + 6;
            assert_eq!(model.n_params(), untied_params - (5 * 3 + 6 * 5));
            let dec = &model.layers()[3];
            assert_eq!(dec.weights(), model.layers()[0].weights().t());
            let x = common::structured(5, 6, 2, 0.1, seed);
            let penalties: [Penalty; 2] = [
                Penalty::l2_weights(1e-2)?.into(),
                Penalty::contractive(0.1)?.into(),
            ];
            for p in [&[][..], &penalties[..]] {
                let report = check_model(
                    &mut model,
                    x.view(),
                    x.view(),
                    Loss::BinaryCrossEntropy,
                    p,
                    H,
                )?;
                assert!(
                    report.max_rel_error < BOUND,
                    "seed {seed}, {hidden:?}, {p:?}: {report:?}"
                );
                assert_eq!(report.n_checked, model.n_params());
            }
        }
    }
    Ok(())
}

#[test]
fn tied_weights_stay_tied_through_training() -> Result<()> {
    let x = common::structured(200, 10, 2, 0.1, 1);
    let mut model = Autoencoder::<f64>::builder(10)
        .latent(3, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .tying(Tying::Tied)
        .build(&mut rng(2))?;
    let before = model.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)?;
    Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(5)
        .fit(&mut model, x.view(), None)?;
    assert_eq!(model.layers()[1].weights(), model.layers()[0].weights().t());
    assert!(model.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)? < before);
    // Tying refuses decoders that do not mirror.
    let bad = Autoencoder::<f64>::builder(10)
        .hidden(6, Activation::Relu)
        .latent(3, Activation::Sigmoid)
        .decoder_hidden(&[(4, Activation::Relu)])
        .tying(Tying::Tied)
        .build(&mut rng(2));
    assert!(matches!(bad, Err(Error::InvalidConfig(_))));
    Ok(())
}

/// Mean per feature, `(1, d)`.
fn pixel_means(x: &Array2<f64>) -> Array2<f64> {
    x.mean_axis(Axis(0)).unwrap().insert_axis(Axis(0))
}

#[test]
fn vae_elbo_improves_and_samples_resemble_the_data() -> Result<()> {
    // Binary data drawn from a 2-factor model, as VAEs on binarized images.
    // Per-feature offsets from -2 to 2 give each pixel its own mean.
    let offsets = Array2::from_shape_fn((1, 20), |(_, j)| -2.0 + 4.0 * j as f64 / 19.0);
    let probs = (common::linear(2000, 20, 2, 0.2, 3) + &offsets).mapv(|v| 1.0 / (1.0 + (-v).exp()));
    let mut draw = rng(30);
    let x = probs.mapv(|p| {
        if rand::Rng::random::<f64>(&mut draw) < p {
            1.0
        } else {
            0.0
        }
    });
    let (train, test) = (x.slice(s![..1600, ..]), x.slice(s![1600.., ..]).to_owned());
    let mut model = vae(20, 16, 2, 4)?;
    let untrained = model.clone();
    let history = Trainer::new(Adam::new(3e-3))
        .loss(Loss::BinaryCrossEntropySum)
        .penalty(Penalty::gaussian_kl(1.0)?.warmup(3))
        .epochs(40)
        .batch_size(64)
        .seed(5)
        .fit(&mut model, train, Some(test.view()))?;
    assert_eq!(history.penalty_names, vec!["gaussian-kl"]);
    // Negative ELBO per example (nats) = reconstruction + KL, on the test set.
    let kl = [Penalty::gaussian_kl(1.0)?.into()];
    let before = untrained.clone();
    let first = before
        .objective(
            test.view(),
            test.view(),
            Loss::BinaryCrossEntropySum,
            &kl,
            1,
        )?
        .total();
    let last = model
        .objective(
            test.view(),
            test.view(),
            Loss::BinaryCrossEntropySum,
            &kl,
            1,
        )?
        .total();
    eprintln!("test negative ELBO per example: untrained {first:.3} nats, trained {last:.3} nats");
    assert!(last < first - 1.0, "negative ELBO {first} -> {last}");
    let epoch_elbo = |r: &autoencoder::EpochRecord| r.train_reconstruction + r.train_penalties[0];
    assert!(epoch_elbo(history.last().unwrap()) < epoch_elbo(&history.epochs[3]));
    // Warm-up: in epoch 0 the KL weight is 1/3, so the reported KL term is a third of beta's.
    assert!(history.epochs[0].train_penalties[0] > 0.0);

    // Samples (decoded Bernoulli means of z ~ N(0, I)) have per-pixel means close to the
    // test set's; the untrained decoder's are not.
    let mean = pixel_means(&test);
    let distance = |m: &Autoencoder<f64>| -> Result<f64> {
        Ok(common::mse(
            &pixel_means(&m.sample(2000, &mut rng(6))?),
            &mean,
        ))
    };
    let (trained_d, untrained_d) = (distance(&model)?, distance(&untrained)?);
    eprintln!(
        "per-pixel mean distance of samples: trained {trained_d:.5}, untrained {untrained_d:.5}"
    );
    assert!(
        trained_d < 0.2 * untrained_d,
        "sample statistics: trained {trained_d}, untrained {untrained_d}"
    );

    // encode gives mu; encode_distribution gives mu and log-variance.
    let (mu, logvar) = model.encode_distribution(test.view())?;
    assert_eq!(mu, model.encode(test.view())?);
    assert_eq!(logvar.dim(), (400, 2));
    // Interpolation runs from one reconstruction to the other.
    let path = model.interpolate(test.row(0), test.row(1), 5)?;
    assert_eq!(path.dim(), (5, 20));
    let ends = model.reconstruct(test.slice(s![..2, ..]))?;
    assert!((&path.row(0) - &ends.row(0))
        .iter()
        .all(|d| d.abs() < 1e-12));
    assert!((&path.row(4) - &ends.row(1))
        .iter()
        .all(|d| d.abs() < 1e-12));
    Ok(())
}

#[test]
fn vae_configuration_errors() -> Result<()> {
    let plain = Autoencoder::<f64>::builder(5)
        .latent(2, Activation::Sigmoid)
        .build(&mut rng(0))?;
    assert!(matches!(
        Penalty::gaussian_kl(1.0)?.validate(plain.architecture()),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        plain.sample(3, &mut rng(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(Penalty::gaussian_kl(-1.0).is_err());
    let tied_vae = Autoencoder::<f64>::builder(5)
        .gaussian_latent(2)
        .tying(Tying::Tied)
        .build(&mut rng(0));
    assert!(matches!(tied_vae, Err(Error::InvalidConfig(_))));
    Ok(())
}

#[test]
fn stacked_pretraining_composes_the_stages_and_fine_tuning_lowers_the_loss() -> Result<()> {
    let x = common::structured(800, 24, 3, 0.1, 7);
    let fit = |ae: &mut Autoencoder<f64>, data: &Array2<f64>, epochs| -> Result<()> {
        Trainer::new(Adam::new(1e-2))
            .loss(Loss::MeanSquaredError)
            .noise(autoencoder::Noise::Masking { fraction: 0.1 })
            .epochs(epochs)
            .batch_size(32)
            .fit(ae, data.view(), None)
            .map(|_| ())
    };
    // Stage 1: 24-12-24 on x; stage 2: 12-4-12 on stage 1's codes.
    let mut first = Autoencoder::<f64>::builder(24)
        .latent(12, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .init(Init::GlorotUniform)
        .build(&mut rng(8))?;
    fit(&mut first, &x, 10)?;
    let codes = first.encode(x.view())?;
    let mut second = Autoencoder::<f64>::builder(12)
        .latent(4, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .build(&mut rng(9))?;
    fit(&mut second, &codes, 10)?;

    let mut deep = Autoencoder::stack(&[first.clone(), second.clone()])?;
    assert_eq!(deep.sizes(), vec![24, 12, 4, 12, 24]);
    // Before fine-tuning: exactly the composition of the stages.
    let composed = first.decode(second.reconstruct(first.encode(x.view())?.view())?.view())?;
    assert_eq!(deep.reconstruct(x.view())?, composed);
    let before = deep.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?;
    Trainer::new(Adam::new(3e-3))
        .loss(Loss::MeanSquaredError)
        .epochs(10)
        .batch_size(32)
        .fit(&mut deep, x.view(), None)?;
    let after = deep.evaluate(x.view(), x.view(), Loss::MeanSquaredError)?;
    assert!(after < 0.9 * before, "fine-tuning: {before} -> {after}");
    // Stages must chain.
    assert!(matches!(
        Autoencoder::stack(&[second, first]),
        Err(Error::ShapeMismatch { .. })
    ));
    Ok(())
}

/// A tied model with non-zero biases everywhere (sigmoid hidden and code layers).
fn tied_with_biases(seed: u64) -> Result<Autoencoder<f64>> {
    let built = Autoencoder::<f64>::builder(6)
        .hidden(5, Activation::Sigmoid)
        .latent(3, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .tying(Tying::Tied)
        .build(&mut rng(seed))?;
    let mut layers = built.layers().to_vec();
    for (l, layer) in layers.iter_mut().enumerate() {
        let dense = layer
            .as_dense_mut()
            .expect("the builder makes dense layers");
        let n = dense.bias().len();
        dense.bias_mut().assign(
            &Array2::from_shape_fn((1, n), |(_, j)| 0.1 * (l + 1) as f64 - 0.05 * j as f64).row(0),
        );
    }
    let decoder = layers.split_off(built.code_layer() + 1);
    Autoencoder::assemble(layers, decoder, Latent::Deterministic, Tying::Tied)
}

/// With tied weights, a weight penalty `.with_biases()` covers every bias, the decoder's
/// included, and each shared matrix once: the value against a hand computation (which
/// fails if the decoder biases are left out, as they were before the penalty went through
/// the model's one list of parameters), the gradient by finite differences.
#[test]
fn tied_weight_penalty_with_biases_covers_the_decoder_biases() -> Result<()> {
    let lambda = 0.3;
    for seed in 0..3u64 {
        let mut model = tied_with_biases(seed)?;
        let x = common::structured(5, 6, 2, 0.1, seed);
        let squares = |a: ndarray::ArrayView2<f64>| a.iter().map(|v| v * v).sum::<f64>();
        let abs = |a: ndarray::ArrayView2<f64>| a.iter().map(|v| v.abs()).sum::<f64>();
        let (mut w2, mut w1, mut b2, mut b1, mut dec_b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (l, layer) in model.layers().iter().enumerate() {
            let bias = layer.bias().insert_axis(Axis(0));
            if l < model.encoder().len() {
                w2 += squares(layer.weights()); // decoder weights are these, transposed
                w1 += abs(layer.weights());
            } else {
                dec_b2 += squares(bias);
            }
            b2 += squares(bias);
            b1 += abs(bias);
        }
        assert!(
            dec_b2 > 0.1,
            "the decoder biases must weigh in the test: {dec_b2}"
        );
        for (penalty, hand) in [
            (
                Penalty::l2_weights(lambda)?.with_biases(),
                lambda * (w2 + b2),
            ),
            (
                Penalty::l1_weights(lambda)?.with_biases(),
                lambda * (w1 + b1),
            ),
            (Penalty::l2_weights(lambda)?, lambda * w2),
        ] {
            let penalties = [penalty.into()];
            let terms =
                model.objective(x.view(), x.view(), Loss::MeanSquaredError, &penalties, 0)?;
            let value = terms.penalties[0];
            assert!(
                (value - hand).abs() <= 1e-12 * hand,
                "seed {seed}, {penalty:?}: {value} against {hand} by hand"
            );
            let report = check_model(
                &mut model,
                x.view(),
                x.view(),
                Loss::BinaryCrossEntropy,
                &penalties,
                H,
            )?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed}, {penalty:?}: {report:?}"
            );
        }
    }
    Ok(())
}

/// Gradient clipping on a tied model scales the one list of parameters, where the shared
/// matrix counts once: after one plain SGD step (lr 1) clipped to norm `c`, the change of
/// the encoder weights and every bias has norm `c`, and the decoder still holds the
/// transposes.
#[test]
fn clipping_a_tied_model_counts_the_shared_matrix_once() -> Result<()> {
    let clip = 1e-3;
    let mut model = tied_with_biases(5)?;
    let before = model.clone();
    let x = common::structured(8, 6, 2, 0.1, 5);
    let mut trainer = Trainer::new(autoencoder::Sgd::new(1.0))
        .loss(Loss::BinaryCrossEntropy)
        .clip_grad_norm(clip);
    trainer.step(&mut model, x.view(), x.view())?;
    let mut squares = 0.0;
    for (l, (new, old)) in model.layers().iter().zip(before.layers()).enumerate() {
        if l < model.encoder().len() {
            squares += (&new.weights() - &old.weights()).mapv(|d| d * d).sum();
        }
        squares += (&new.bias() - &old.bias()).mapv(|d| d * d).sum();
    }
    let moved = squares.sqrt();
    assert!(
        (moved - clip).abs() < 1e-9 * clip,
        "the step moved {moved}, clipped to {clip}"
    );
    for l in 0..model.encoder().len() {
        let dec = &model.layers()[model.layers().len() - 1 - l];
        assert_eq!(dec.weights(), model.layers()[l].weights().t());
    }
    Ok(())
}
