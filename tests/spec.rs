//! The text forms of settings (`autoencoder::spec`): every form parses to the value it
//! names and prints back to a form that parses to the same value; every malformed or
//! out-of-range text is an error naming it.

use std::fmt::Display;
use std::str::FromStr;

use autoencoder::{Activation, Error, Init, Loss, Noise, Penalty, Result};

/// `text` parses to `expected`, which prints to a text that parses to `expected` again.
fn round_trip<T>(text: &str, expected: T) -> Result<()>
where
    T: FromStr<Err = Error> + Display + PartialEq + std::fmt::Debug,
{
    let parsed: T = text.parse()?;
    assert_eq!(parsed, expected, "`{text}`");
    let printed = parsed.to_string();
    assert_eq!(
        printed.parse::<T>()?,
        expected,
        "`{text}` printed as `{printed}`"
    );
    Ok(())
}

/// `text` is refused with an error whose message contains `needle` and the text itself.
fn refused<T: FromStr<Err = Error> + std::fmt::Debug>(text: &str, needle: &str) {
    match text.parse::<T>() {
        Ok(v) => panic!("`{text}` parsed as {v:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(needle),
                "`{text}`: message `{message}` lacks `{needle}`"
            );
        }
    }
}

#[test]
fn activations() -> Result<()> {
    round_trip("identity", Activation::Identity)?;
    round_trip("linear", Activation::Identity)?;
    round_trip("relu", Activation::Relu)?;
    round_trip("leaky-relu", Activation::LeakyRelu(0.01))?;
    round_trip("leaky-relu:0.2", Activation::LeakyRelu(0.2))?;
    round_trip("sigmoid", Activation::Sigmoid)?;
    round_trip("tanh", Activation::Tanh)?;
    round_trip("softplus", Activation::Softplus)?;
    round_trip("elu", Activation::Elu(1.0))?;
    round_trip("elu:0.5", Activation::Elu(0.5))?;
    round_trip("gelu", Activation::Gelu)?;
    refused::<Activation>("swish", "unknown activation `swish`");
    refused::<Activation>("relu:2", "takes 0");
    refused::<Activation>("leaky-relu:x", "`x` is not a number");
    refused::<Activation>("leaky-relu:1.5", "alpha");
    refused::<Activation>("elu:NaN", "alpha");
    refused::<Activation>("", "unknown activation");
    Ok(())
}

#[test]
fn losses() -> Result<()> {
    round_trip("mse", Loss::MeanSquaredError)?;
    round_trip("sse", Loss::SumSquaredError)?;
    round_trip("bce", Loss::BinaryCrossEntropy)?;
    round_trip("bce-sum", Loss::BinaryCrossEntropySum)?;
    round_trip("mae", Loss::MeanAbsoluteError)?;
    round_trip("huber", Loss::Huber(1.0))?;
    round_trip("huber:0.25", Loss::Huber(0.25))?;
    refused::<Loss>("huber:0", "huber delta");
    refused::<Loss>("huber:-1", "huber delta");
    refused::<Loss>("mse:1", "takes 0");
    refused::<Loss>("l2", "unknown loss `l2`");
    Ok(())
}

#[test]
fn initializers() -> Result<()> {
    round_trip("glorot", Init::GlorotUniform)?;
    round_trip("glorot-uniform", Init::GlorotUniform)?;
    round_trip("glorot-normal", Init::GlorotNormal)?;
    round_trip("he", Init::HeUniform)?;
    round_trip("he-uniform", Init::HeUniform)?;
    round_trip("he-normal", Init::HeNormal)?;
    refused::<Init>("xavier", "unknown initializer `xavier`");
    Ok(())
}

#[test]
fn noises() -> Result<()> {
    round_trip("masking:0.3", Noise::Masking { fraction: 0.3 })?;
    round_trip("salt-pepper:0.1", Noise::SaltAndPepper { fraction: 0.1 })?;
    round_trip(
        "salt-and-pepper:0.1",
        Noise::SaltAndPepper { fraction: 0.1 },
    )?;
    round_trip(
        "gaussian:0.5",
        Noise::Gaussian {
            std: 0.5,
            clip: None,
        },
    )?;
    round_trip(
        "gaussian:0.5:0:1",
        Noise::Gaussian {
            std: 0.5,
            clip: Some((0.0, 1.0)),
        },
    )?;
    refused::<Noise>("masking", "takes 1");
    refused::<Noise>("masking:1.5", "fraction");
    refused::<Noise>("gaussian:-1", "std");
    refused::<Noise>("gaussian:0.5:0", "needs both bounds");
    refused::<Noise>("gaussian:0.5:1:0", "clip");
    refused::<Noise>("dropout:0.5", "unknown noise `dropout:0.5`");
    Ok(())
}

#[test]
fn penalties() -> Result<()> {
    round_trip::<Penalty>("l1-activity:1e-4", Penalty::l1_activity(1e-4)?.into())?;
    round_trip::<Penalty>("l2-activity:0.5", Penalty::l2_activity(0.5)?.into())?;
    round_trip::<Penalty>("kl:0.05:3", Penalty::kl_sparsity(0.05, 3.0)?.into())?;
    round_trip::<Penalty>("contractive:0.1", Penalty::contractive(0.1)?.into())?;
    round_trip::<Penalty>(
        "kl:0.05:3@1",
        Penalty::kl_sparsity(0.05, 3.0)?.on_layer(1).into(),
    )?;
    round_trip::<Penalty>("l2-weights:1e-4", Penalty::l2_weights(1e-4)?.into())?;
    round_trip::<Penalty>("l1-weights:1e-5", Penalty::l1_weights(1e-5)?.into())?;
    round_trip::<Penalty>(
        "l2-weights:1e-4+biases",
        Penalty::l2_weights(1e-4)?.with_biases().into(),
    )?;
    round_trip::<Penalty>("gaussian-kl:1", Penalty::gaussian_kl(1.0)?.into())?;
    round_trip::<Penalty>(
        "gaussian-kl:4:10",
        Penalty::gaussian_kl(4.0)?.warmup(10).into(),
    )?;
    refused::<Penalty>("kl:1.5:3", "rho");
    refused::<Penalty>("kl:0.05", "takes 2");
    refused::<Penalty>("l2-weights:-1", "lambda");
    refused::<Penalty>("l2-weights:1e-4@1", "`@LAYER` does not apply");
    refused::<Penalty>("kl:0.05:3+biases", "`+biases` does not apply");
    refused::<Penalty>("gaussian-kl:1+biases", "`+biases` does not apply");
    refused::<Penalty>("l1-activity:0.1@x", "`x` is not a number");
    refused::<Penalty>("gaussian-kl:1:-2", "`-2` is not a number");
    refused::<Penalty>("dropout:0.5", "unknown penalty `dropout:0.5`");
    Ok(())
}
