//! Sizes from a caller are checked before anything is allocated: each absurd size is
//! `Error::TooLarge` (or another typed error), never an overflow, a panic or an abort.

use autoencoder::data::{permutation, Split};
use autoencoder::{Activation, Autoencoder, Dense, Error, Init, Pca, Result};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0)
}

fn too_large<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::TooLarge { what: w, .. }) => assert!(w.contains(what), "{w} for {what}"),
        other => panic!("expected TooLarge for {what}, got {other:?}"),
    }
}

#[test]
fn absurd_layer_widths_are_refused_before_allocating() {
    let huge = [usize::MAX, 1 << 40, 1 << 62];
    for n in huge {
        too_large(
            Autoencoder::<f32>::builder(4)
                .hidden(n, Activation::Relu)
                .latent(2, Activation::Relu)
                .build(&mut rng()),
            "layer weights",
        );
        too_large(
            Autoencoder::<f64>::builder(n)
                .latent(2, Activation::Relu)
                .build(&mut rng()),
            "layer weights",
        );
        too_large(
            Dense::<f32>::random(n, 3, Activation::Relu, Init::HeUniform, &mut rng()),
            "layer weights",
        );
    }
    // 2k overflows for k = 2^63: refused, not wrapped to 0.
    too_large(
        Autoencoder::<f32>::builder(4)
            .gaussian_latent(1 << 63)
            .build(&mut rng()),
        "layer weights",
    );
    too_large(
        Autoencoder::<f32>::builder(4)
            .gaussian_latent(usize::MAX)
            .build(&mut rng()),
        "layer weights",
    );
}

#[test]
fn absurd_counts_of_samples_steps_and_indices_are_refused() -> Result<()> {
    let vae = Autoencoder::<f32>::builder(6)
        .gaussian_latent(2)
        .build(&mut rng())?;
    for n in [usize::MAX, 1 << 40] {
        too_large(vae.sample(n, &mut rng()), "samples");
        let (a, b) = (Array1::zeros(6), Array1::ones(6));
        too_large(
            vae.interpolate(a.view(), b.view(), n),
            "interpolation steps",
        );
        too_large(permutation(n, 1), "permutation");
        too_large(Split::new(n, 0.1, 1), "permutation");
    }
    Ok(())
}

#[test]
fn quadratic_buffers_of_wide_inputs_are_refused() -> Result<()> {
    // jacobian_norm builds an n_in x n_in identity; PCA a d x d covariance (28.8 GB here).
    let wide = Autoencoder::<f32>::builder(50_000)
        .latent(2, Activation::Sigmoid)
        .build(&mut rng())?;
    let x = Array2::<f32>::zeros((1, 50_000));
    too_large(wide.jacobian_norm(x.view()), "jacobian_norm");
    let x = Array2::<f32>::zeros((2, 60_000));
    too_large(Pca::fit(x.view(), 2), "PCA covariance");
    Ok(())
}

#[test]
fn the_message_names_the_request_and_the_bytes() {
    let err = Autoencoder::<f64>::builder(1 << 20)
        .latent(1 << 20, Activation::Relu)
        .build(&mut rng())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("layer weights")
            && message.contains("[1048576, 1048576]")
            && message.contains("8796093022208 bytes")
            && message.contains("set_memory_limit"),
        "{message}"
    );
}
