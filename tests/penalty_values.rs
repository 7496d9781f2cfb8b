//! Values the gradient check cannot see: each penalty's value against a hand computation
//! from the model's own codes (a wrong constant factor in a value and its gradient alike
//! would pass a finite-difference check; it does not pass these).

mod common;

use autoencoder::{Activation, Autoencoder, Loss, Penalty, Result};
use ndarray::Axis;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `|a - b| <= 1e-12 max(|a|, |b|)`.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn kl_sparsity_value_is_the_kl_divergence_of_the_mean_code() -> Result<()> {
    let (rho, beta) = (0.1, 2.5);
    for seed in 0..3u64 {
        let ae = Autoencoder::<f64>::builder(8)
            .hidden(6, Activation::Tanh)
            .latent(4, Activation::Sigmoid)
            .output(Activation::Sigmoid)
            .build(&mut rng(seed))?;
        let x = common::structured(30, 8, 3, 0.1, seed);
        let codes = ae.encode(x.view())?; // (30, 4)
        let hand: f64 = codes
            .mean_axis(Axis(0))
            .expect("rows")
            .iter()
            .map(|&m| rho * (rho / m).ln() + (1.0 - rho) * ((1.0 - rho) / (1.0 - m)).ln())
            .sum::<f64>()
            * beta;
        let kl = [Penalty::kl_sparsity(rho, beta)?.into()];
        let value = ae
            .objective(x.view(), x.view(), Loss::MeanSquaredError, &kl, 0)?
            .penalties[0];
        assert!(
            close(value, hand),
            "seed {seed}: {value} against {hand} by hand"
        );
        assert!(hand > 0.0);
    }
    Ok(())
}

#[test]
fn gaussian_kl_value_is_the_closed_form_kl_to_the_prior() -> Result<()> {
    let beta = 0.7;
    for seed in 0..3u64 {
        let vae = Autoencoder::<f64>::builder(7)
            .hidden(6, Activation::Tanh)
            .hidden(5, Activation::Tanh)
            .gaussian_latent(3)
            .output(Activation::Sigmoid)
            .build(&mut rng(seed))?;
        let x = common::structured(20, 7, 2, 0.1, seed);
        let (mu, logvar) = vae.encode_distribution(x.view())?;
        // KL(N(mu, sigma^2) || N(0, 1)) = -1/2 sum_j (1 + log sigma^2 - mu^2 - sigma^2), mean over rows.
        let per_row: f64 = mu
            .iter()
            .zip(&logvar)
            .map(|(&m, &l)| -0.5 * (1.0 + l - m * m - l.exp()))
            .sum::<f64>()
            / x.nrows() as f64;
        let hand = beta * per_row;
        let kl = [Penalty::gaussian_kl(beta)?.into()];
        let value = vae
            .objective(x.view(), x.view(), Loss::MeanSquaredError, &kl, 3)?
            .penalties[0];
        assert!(
            close(value, hand),
            "seed {seed}: {value} against {hand} by hand"
        );
    }
    Ok(())
}

#[test]
fn contractive_value_is_lambda_times_the_jacobian_norm_of_a_one_layer_encoder() -> Result<()> {
    let lambda = 0.3;
    for (seed, code) in [(0u64, Activation::Sigmoid), (1, Activation::Tanh)] {
        let ae = Autoencoder::<f64>::builder(6)
            .latent(4, code)
            .output(Activation::Sigmoid)
            .build(&mut rng(seed))?;
        let x = common::structured(25, 6, 2, 0.1, seed);
        let hand = lambda * ae.jacobian_norm(x.view())?;
        let penalty = [Penalty::contractive(lambda)?.into()];
        let value = ae
            .objective(x.view(), x.view(), Loss::MeanSquaredError, &penalty, 0)?
            .penalties[0];
        assert!(
            close(value, hand),
            "{code:?}: {value} against {hand} from jacobian_norm"
        );
    }
    Ok(())
}

#[test]
fn activity_and_weight_penalty_values_match_hand_sums() -> Result<()> {
    let lambda = 0.2;
    let ae = Autoencoder::<f64>::builder(6)
        .hidden(5, Activation::Tanh)
        .latent(3, Activation::Tanh)
        .output(Activation::Sigmoid)
        .build(&mut rng(4))?;
    let x = common::structured(12, 6, 2, 0.1, 4);
    let codes = ae.encode(x.view())?;
    let n = x.nrows() as f64;
    let weights = |f: fn(f64) -> f64| -> f64 {
        ae.layers()
            .iter()
            .map(|l| l.weights().iter().map(|&w| f(w)).sum::<f64>())
            .sum()
    };
    let cases: [(Penalty, f64); 4] = [
        (
            Penalty::l1_activity(lambda)?.into(),
            lambda * codes.iter().map(|v| v.abs()).sum::<f64>() / n,
        ),
        (
            Penalty::l2_activity(lambda)?.into(),
            lambda * codes.iter().map(|v| v * v).sum::<f64>() / n,
        ),
        (
            Penalty::l2_weights(lambda)?.into(),
            lambda * weights(|w| w * w),
        ),
        (
            Penalty::l1_weights(lambda)?.into(),
            lambda * weights(f64::abs),
        ),
    ];
    for (penalty, hand) in cases {
        let value = ae
            .objective(x.view(), x.view(), Loss::MeanSquaredError, &[penalty], 0)?
            .penalties[0];
        assert!(
            close(value, hand),
            "{penalty:?}: {value} against {hand} by hand"
        );
    }
    Ok(())
}
