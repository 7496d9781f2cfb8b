//! Finite-difference gradient checks (f64, central differences, h = 1e-5) of every backward
//! pass, loss and penalty, over random shapes and several seeds.
//!
//! Bound: relative error |a - n| / max(|a| + |n|, 1e-4) below 1e-6 everywhere (the floor
//! 1e-4 is `gradcheck::TINY`; see there why). A correct hand-derived gradient gives about
//! 1e-9 here; a wrong factor or sign gives 1e-2 or more.

use autoencoder::gradcheck::{check_dense, check_loss, check_model};
use autoencoder::{Activation, Autoencoder, Dense, Init, Loss, Penalty, Result};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-5;
const BOUND: f64 = 1e-6;

const ACTIVATIONS: [Activation; 8] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Softplus,
    Activation::Elu(1.0),
    Activation::Gelu,
];

/// Values in [-2, 2] kept at least 0.05 away from 0 (the kink of ReLU, leaky ReLU, ELU,
/// and of L1 terms), so that a perturbation of h never crosses it.
fn away_from_zero(rng: &mut ChaCha8Rng) -> f64 {
    let v: f64 = rng.random_range(0.05..2.0);
    if rng.random::<bool>() {
        v
    } else {
        -v
    }
}

fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || away_from_zero(rng))
}

fn unit(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(0.02..0.98))
}

#[test]
fn dense_backward_matches_finite_differences_for_every_activation() -> Result<()> {
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for activation in ACTIVATIONS {
            let (batch, n_in, n_out) = (
                rng.random_range(1..6),
                rng.random_range(1..7),
                rng.random_range(1..7),
            );
            let mut layer = Dense::random(n_in, n_out, activation, Init::GlorotNormal, &mut rng)?;
            layer
                .bias_mut()
                .mapv_inplace(|_| 0.3 * away_from_zero(&mut rng));
            let mut input = random(batch, n_in, &mut rng);
            // Keep pre-activations away from ReLU-family kinks: nudge inputs until |z| > 1e-3.
            for _ in 0..100 {
                let z = input.dot(&layer.weights()) + layer.bias();
                if z.iter().all(|z| z.abs() > 1e-3) {
                    break;
                }
                input = random(batch, n_in, &mut rng);
            }
            let upstream = random(batch, n_out, &mut rng);
            let report = check_dense(&mut layer, input.view(), upstream.view(), H)?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed}, {activation:?}, shape ({batch}, {n_in}) -> {n_out}: {report:?}"
            );
            assert_eq!(report.n_checked, batch * n_in + n_in * n_out + n_out);
        }
    }
    Ok(())
}

#[test]
fn every_loss_gradient_matches_finite_differences() -> Result<()> {
    let cases = [
        (Loss::MeanSquaredError, Activation::Identity),
        (Loss::MeanSquaredError, Activation::Sigmoid),
        (Loss::MeanSquaredError, Activation::Tanh),
        (Loss::SumSquaredError, Activation::Sigmoid),
        (Loss::SumSquaredError, Activation::Softplus),
        (Loss::BinaryCrossEntropy, Activation::Sigmoid),
        (Loss::MeanAbsoluteError, Activation::Identity),
        (Loss::Huber(0.5), Activation::Identity),
        (Loss::Huber(0.5), Activation::Tanh),
    ];
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        for (loss, activation) in cases {
            let (batch, n) = (rng.random_range(1..6), rng.random_range(1..9));
            let z = random(batch, n, &mut rng);
            let target = unit(batch, n, &mut rng);
            // MAE and Huber have kinks where the residual is 0 or +-delta: keep away from them.
            let a = activation.apply(z.view());
            let r = &a - &target;
            if r.iter()
                .any(|r| r.abs() < 1e-3 || (r.abs() - 0.5).abs() < 1e-3)
            {
                continue;
            }
            let report = check_loss(loss, activation, z.view(), target.view(), H)?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed}, {loss:?} with {activation:?}: {report:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn bce_is_finite_for_saturated_logits() {
    let z = ndarray::array![[-200.0, 200.0, 0.0]];
    let x = ndarray::array![[1.0, 0.0, 0.5]];
    let a = Activation::Sigmoid.apply(z.view());
    let v = Loss::BinaryCrossEntropy.value(z.view(), a.view(), x.view());
    // -ln(sigmoid(-200)) = 200 and -ln(1 - sigmoid(200)) = 200; at z = 0, ln 2.
    assert!(
        (v - (400.0 + std::f64::consts::LN_2) / 3.0).abs() < 1e-9,
        "{v}"
    );
}

/// A random deep model with the given hidden activation, inputs in (0, 1).
fn deep_model(
    seed: u64,
    hidden: Activation,
    output: Activation,
) -> Result<(Autoencoder<f64>, Array2<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_in = rng.random_range(3..9);
    let h1 = rng.random_range(2..7);
    let code = rng.random_range(1..5);
    let batch = rng.random_range(2..7);
    let model = Autoencoder::builder(n_in)
        .hidden(h1, hidden)
        .latent(code, hidden)
        .output(output)
        .init(Init::GlorotNormal)
        .build(&mut rng)?;
    // Non-zero biases keep ReLU pre-activations off the kink at 0 (a dead code would give
    // the next layer z = b = 0 exactly).
    let mut layers = model.layers().to_vec();
    for layer in &mut layers {
        layer
            .as_dense_mut()
            .expect("the builder makes dense layers")
            .bias_mut()
            .mapv_inplace(|_| 0.5 * away_from_zero(&mut rng));
    }
    let decoder = layers.split_off(model.code_layer() + 1);
    let model = Autoencoder::from_layers(layers, decoder)?;
    Ok((model, unit(batch, n_in, &mut rng)))
}

#[test]
fn whole_model_gradient_matches_finite_differences() -> Result<()> {
    let losses = [
        (Loss::BinaryCrossEntropy, Activation::Sigmoid),
        (Loss::MeanSquaredError, Activation::Identity),
        (Loss::SumSquaredError, Activation::Sigmoid),
    ];
    for seed in 0..3u64 {
        for hidden in [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Relu,
            Activation::Elu(1.0),
            Activation::Gelu,
        ] {
            for (loss, output) in losses {
                let (mut model, x) = deep_model(seed, hidden, output)?;
                let report = check_model(&mut model, x.view(), x.view(), loss, &[], H)?;
                assert!(
                    report.max_rel_error < BOUND,
                    "seed {seed}, hidden {hidden:?}, {loss:?}, sizes {:?}: {report:?}",
                    model.sizes()
                );
                assert_eq!(report.n_checked, model.n_params());
            }
        }
    }
    Ok(())
}

#[test]
fn each_penalty_alone_and_all_together_match_finite_differences() -> Result<()> {
    for seed in 0..3u64 {
        // Sigmoid hidden layers allow every penalty.
        let all: [Penalty; 10] = [
            Penalty::l1_activity(0.3)?.into(),
            Penalty::l2_activity(0.2)?.into(),
            Penalty::kl_sparsity(0.1, 2.0)?.into(),
            Penalty::l2_weights(0.05)?.into(),
            Penalty::l2_weights(0.05)?.with_biases().into(),
            Penalty::l1_weights(0.02)?.into(),
            Penalty::l1_weights(0.02)?.with_biases().into(),
            Penalty::contractive(0.5)?.into(),
            Penalty::kl_sparsity(0.2, 1.0)?.on_layer(0).into(),
            Penalty::contractive(0.3)?.on_layer(0).into(),
        ];
        for hidden in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
            let (mut model, x) = deep_model(seed, hidden, Activation::Sigmoid)?;
            let allowed: Vec<Penalty> = all
                .iter()
                .copied()
                .filter(|p| p.validate(model.architecture()).is_ok())
                .collect();
            assert!(
                allowed.len() >= 5,
                "{hidden:?} should allow at least the L1/L2 penalties"
            );
            for penalty in &allowed {
                let report = check_model(
                    &mut model,
                    x.view(),
                    x.view(),
                    Loss::BinaryCrossEntropy,
                    &[*penalty],
                    H,
                )?;
                assert!(
                    report.max_rel_error < BOUND,
                    "seed {seed}, {hidden:?}, {penalty:?}: {report:?}"
                );
            }
            let report = check_model(
                &mut model,
                x.view(),
                x.view(),
                Loss::BinaryCrossEntropy,
                &allowed,
                H,
            )?;
            assert!(
                report.max_rel_error < BOUND,
                "seed {seed}, {hidden:?}, all together: {report:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn denoising_objective_gradient_uses_the_clean_target() -> Result<()> {
    // Denoising trains on g(f(x~)) against x: the checker takes input and target apart.
    let (mut model, x) = deep_model(7, Activation::Tanh, Activation::Sigmoid)?;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let noisy = autoencoder::corrupt(
        x.view(),
        autoencoder::Noise::Gaussian {
            std: 0.3,
            clip: Some((0.0, 1.0)),
        },
        &mut rng,
    )?;
    let penalties: [Penalty; 2] = [
        Penalty::l2_weights(1e-2)?.into(),
        Penalty::contractive(0.1)?.into(),
    ];
    let report = check_model(
        &mut model,
        noisy.view(),
        x.view(),
        Loss::BinaryCrossEntropy,
        &penalties,
        H,
    )?;
    assert!(report.max_rel_error < BOUND, "{report:?}");
    Ok(())
}

#[test]
fn a_wrong_gradient_is_caught() -> Result<()> {
    // The checker itself must be able to fail: compare a correct gradient with a perturbed one.
    assert!(autoencoder::gradcheck::relative_error(1.0, 1.0 + 1e-9) < BOUND);
    assert!(autoencoder::gradcheck::relative_error(1.0, 2.0) > 0.3);
    assert!(autoencoder::gradcheck::relative_error(0.0, 1e-3) > 0.9);
    assert!(autoencoder::gradcheck::relative_error(1e-6, -1e-6) > 1e-3); // sign error, tiny gradient
    Ok(())
}

#[test]
fn more_hidden_activations_and_robust_losses_inside_a_whole_model() -> Result<()> {
    // Losses with kinks (MAE at a zero residual, Huber at +-delta): the random targets sit
    // away from the outputs, so no perturbation of h crosses one.
    let losses = [
        (Loss::MeanAbsoluteError, Activation::Identity),
        (Loss::Huber(0.1), Activation::Identity),
        (Loss::Huber(0.1), Activation::Sigmoid),
        (Loss::MeanSquaredError, Activation::Tanh),
    ];
    for seed in 0..3u64 {
        for hidden in [
            Activation::Identity,
            Activation::LeakyRelu(0.1),
            Activation::Softplus,
            Activation::Elu(0.5),
        ] {
            for (loss, output) in losses {
                let (mut model, x) = deep_model(seed, hidden, output)?;
                let report = check_model(&mut model, x.view(), x.view(), loss, &[], H)?;
                assert!(
                    report.max_rel_error < BOUND,
                    "seed {seed}, hidden {hidden:?}, {loss:?}: {report:?}"
                );
                assert_eq!(report.n_checked, model.n_params());
            }
        }
    }
    Ok(())
}

#[test]
fn activity_penalties_on_a_decoder_hidden_layer() -> Result<()> {
    for seed in 0..3u64 {
        for hidden in [Activation::Sigmoid, Activation::Tanh] {
            let (mut model, x) = deep_model(seed, hidden, Activation::Sigmoid)?;
            let decoder_hidden = model.code_layer() + 1;
            assert!(decoder_hidden < model.layers().len() - 1);
            let mut penalties: Vec<Penalty> = vec![
                Penalty::l1_activity(0.3)?.on_layer(decoder_hidden).into(),
                Penalty::l2_activity(0.2)?.on_layer(decoder_hidden).into(),
                Penalty::contractive(0.4)?.on_layer(decoder_hidden).into(),
            ];
            if hidden == Activation::Sigmoid {
                penalties.push(
                    Penalty::kl_sparsity(0.2, 1.0)?
                        .on_layer(decoder_hidden)
                        .into(),
                );
            }
            for p in &penalties {
                p.validate(model.architecture())?;
            }
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
                "seed {seed}, {hidden:?}: {report:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn a_deeper_vae_with_activity_penalties_on_its_code() -> Result<()> {
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut vae = Autoencoder::<f64>::builder(6)
            .hidden(5, Activation::Tanh)
            .hidden(4, Activation::Softplus)
            .gaussian_latent(2)
            .output(Activation::Sigmoid)
            .build(&mut rng)?;
        assert_eq!(vae.sizes(), vec![6, 5, 4, 4, 4, 5, 6]);
        let x = unit(4, 6, &mut rng);
        // The code layer is [mu, log sigma^2]; L1 and L2 on it sit beside the KL.
        let penalties: [Penalty; 3] = [
            Penalty::gaussian_kl(1.0)?.into(),
            Penalty::l1_activity(0.05)?.into(),
            Penalty::l2_activity(0.1)?.into(),
        ];
        let report = check_model(
            &mut vae,
            x.view(),
            x.view(),
            Loss::BinaryCrossEntropySum,
            &penalties,
            H,
        )?;
        assert!(report.max_rel_error < BOUND, "seed {seed}: {report:?}");
        assert_eq!(report.n_checked, vae.n_params());
    }
    Ok(())
}
