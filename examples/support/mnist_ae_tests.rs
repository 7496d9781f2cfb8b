//! The flag, README and figure tests of `examples/mnist_ae.rs` (a module of it, kept in
//! its own file so the example reads as the walk-through it is).

use super::*;
use autoencoder::Error;
use autoencoder::Init;
use clap::error::ErrorKind;
use clap::CommandFactory;

fn parse(line: &str) -> Result<Config, String> {
    cli::parsed(line)
}

fn refused(line: &str) -> ErrorKind {
    cli::refused::<Config>(line)
}

#[test]
fn the_flag_definitions_are_consistent() {
    Config::command().debug_assert();
}

#[test]
fn defaults_are_the_documented_ones() -> Result<(), String> {
    let c = parse("")?;
    assert_eq!((c.arch.hidden.clone(), c.arch.latent), (vec![128, 64], 32));
    assert_eq!(
        (c.arch.activation, c.output, c.arch.init, c.loss),
        (
            Activation::Relu,
            Activation::Sigmoid,
            None,
            Loss::BinaryCrossEntropy
        )
    );
    assert_eq!(
        (c.variant, c.optimizer, c.lr()),
        (Variant::Plain, OptimizerKind::Adam, 1e-3)
    );
    assert_eq!(
        (c.epochs, c.batch_size, c.seed, c.train_images),
        (10, 256, 0, 60_000)
    );
    assert_eq!(
        c.valid_fraction.to_bits(),
        (5_000.0f64 / 60_000.0).to_bits()
    );
    assert_eq!((c.rho, c.beta, c.lambda, c.json), (0.05, 0.1, None, false));
    assert_eq!(
        (c.noise(), c.penalties().map_err(|e| e.to_string())?),
        (None, vec![])
    );
    Ok(())
}

#[test]
fn flags_parse() -> Result<(), String> {
    let c = parse("--hidden none --latent=16 --loss mse --optimizer sgd --json")?;
    assert!(c.arch.hidden.is_empty());
    assert_eq!(
        (c.arch.latent, c.loss, c.optimizer, c.json),
        (16, Loss::MeanSquaredError, OptimizerKind::Sgd, true)
    );
    assert_eq!(c.lr(), 0.1);
    assert_eq!(parse("--hidden 128,64")?.arch.hidden, vec![128, 64]);
    assert_eq!(
        parse("--epochs 3 --epochs 5")?.epochs,
        5,
        "the last value counts"
    );
    assert_eq!(refused("--bogus 1"), ErrorKind::UnknownArgument);
    assert_eq!(refused("--epochs"), ErrorKind::InvalidValue);
    assert_eq!(refused("--epochs x"), ErrorKind::ValueValidation);
    assert_eq!(refused("--help"), ErrorKind::DisplayHelp);
    assert_eq!(refused("-h"), ErrorKind::DisplayHelp);
    let kl = parse("--variant sparse-kl --rho 0.1 --beta 3")?;
    assert_eq!((kl.variant, kl.rho, kl.beta), (Variant::SparseKl, 0.1, 3.0));
    assert_eq!(kl.code_activation(), Activation::Sigmoid);
    let d = parse("--variant denoising --noise masking:0.3")?;
    assert_eq!(d.noise(), Some(Noise::Masking { fraction: 0.3 }));
    let d = parse("--variant denoising")?;
    assert!(matches!(d.noise(), Some(Noise::Gaussian { std: 0.5, .. })));
    assert_eq!(refused("--variant bogus"), ErrorKind::InvalidValue);
    assert_eq!(refused("--noise gaussian"), ErrorKind::ValueValidation);
    let bad = parse("--variant sparse-kl --rho 1.5")?;
    assert!(bad.penalties().is_err());
    assert_eq!(parse("--init glorot")?.arch.init, Some(Init::GlorotUniform));
    assert_eq!(
        parse("--activation leaky-relu:0.2")?.arch.activation,
        Activation::LeakyRelu(0.2)
    );
    Ok(())
}

#[test]
fn noise_and_penalties_parse() -> Result<(), String> {
    let c = parse("--noise masking:0.3 --penalty kl:0.05:3 --penalty l2-weights:1e-4")?;
    assert_eq!(c.noise, Some(Noise::Masking { fraction: 0.3 }));
    let expected: Vec<Penalty> = vec![
        Penalty::kl_sparsity(0.05, 3.0)
            .map_err(|e| e.to_string())?
            .into(),
        Penalty::l2_weights(1e-4).map_err(|e| e.to_string())?.into(),
    ];
    assert_eq!(c.penalties, expected);
    for bad in [
        "--noise masking",
        "--noise masking:1.5",
        "--noise gaussian:-1",
        "--noise salt-pepper:NaN",
        "--penalty kl:2:1", // rho outside (0, 1)
        "--penalty kl:0.05",
        "--penalty bogus:1",
        "--penalty l2-weights:-1",
        "--activation leaky-relu:NaN",
        "--loss huber:-1",
    ] {
        assert_eq!(refused(bad), ErrorKind::ValueValidation, "{bad}");
    }
    Ok(())
}

#[test]
fn salt_pepper_noise_and_weight_decay() -> Result<(), String> {
    for spelling in ["salt-pepper", "salt-and-pepper"] {
        let c = parse(&format!("--noise {spelling}:0.2"))?;
        assert_eq!(c.noise(), Some(Noise::SaltAndPepper { fraction: 0.2 }));
    }
    let c = parse("--variant sparse-l1 --penalty l1-activity:1e-3 --weight-decay 1e-5")?;
    let expected: Vec<Penalty> = vec![
        Penalty::l1_activity(1e-4)
            .map_err(|e| e.to_string())?
            .into(),
        Penalty::l1_activity(1e-3)
            .map_err(|e| e.to_string())?
            .into(),
        Penalty::l2_weights(1e-5).map_err(|e| e.to_string())?.into(),
    ];
    assert_eq!(c.penalties().map_err(|e| e.to_string())?, expected);
    for bad in ["-1", "NaN"] {
        let c = parse(&format!("--weight-decay {bad}"))?;
        assert!(
            matches!(c.penalties(), Err(Error::InvalidHyperparameter { .. })),
            "{bad}"
        );
    }
    Ok(())
}

#[test]
fn absurd_sizes_are_errors_not_panics() -> Result<(), String> {
    for line in [
        "--latent 99999999999",
        "--hidden 18446744073709551615",
        "--hidden 4096,18446744073709551615",
        "--hidden none --latent 18446744073709551615",
    ] {
        let result = parse(line)?.model();
        assert!(
            matches!(result, Err(Error::TooLarge { .. })),
            "{line}: {result:?}"
        );
    }
    assert!(matches!(
        parse("--latent 0")?.model(),
        Err(Error::InvalidHyperparameter { .. })
    ));
    assert_eq!(
        refused("--latent 99999999999999999999999"),
        ErrorKind::ValueValidation
    );
    assert_eq!(refused("--latent -1"), ErrorKind::ValueValidation);
    Ok(())
}

/// Bad training values reach `fit` (as they would after loading MNIST) and come back as
/// errors, on a small model and a few rows.
#[test]
fn bad_training_values_are_errors_not_panics() -> Result<(), String> {
    let train = Array2::<f32>::from_shape_fn((8, 784), |(i, j)| ((i + j) % 2) as f32);
    for line in [
        "--epochs 0",
        "--batch-size 0",
        "--lr -1",
        "--lr NaN",
        "--lr inf",
        "--optimizer sgd --lr 0",
        "--loss bce --output relu",
    ] {
        let c = parse(&format!("--hidden none --latent 2 --epochs 1 {line}"))?;
        let mut ae = c.model().map_err(|e| e.to_string())?;
        let result = match c.optimizer {
            OptimizerKind::Adam => fit(&c, Adam::new(c.lr()).eps(1e-7), &mut ae, &train, &None),
            _ => fit(&c, Sgd::new(c.lr()), &mut ae, &train, &None),
        };
        assert!(
            matches!(
                result,
                Err(Error::InvalidHyperparameter { .. } | Error::InvalidConfig(_))
            ),
            "{line}: {result:?}"
        );
    }
    for fraction in ["-0.1", "1", "NaN"] {
        let c = parse(&format!("--valid-fraction {fraction}"))?;
        assert!(
            Split::new(100, c.valid_fraction, c.seed).is_err(),
            "{fraction}"
        );
    }
    Ok(())
}

#[test]
fn out_needs_the_viz_feature() -> Result<(), String> {
    let parsed = parse("--out pics");
    if cfg!(feature = "viz") {
        assert_eq!(parsed?.out, Some(PathBuf::from("pics")));
    } else {
        let err = parsed.expect_err("--out without viz");
        assert!(err.contains("--features viz"), "{err}");
    }
    Ok(())
}

#[test]
fn every_flag_the_readme_mentions_parses() {
    let mentions = cli::readme::mentions("mnist_ae");
    // The extraction finds the flags of the "Kinds of autoencoder" section and of the
    // picture command (continued over lines), and none of cargo's or the VAE's.
    let flags: Vec<&str> = mentions
        .iter()
        .flat_map(|m| &m.args)
        .filter(|a| a.starts_with("--"))
        .map(String::as_str)
        .collect();
    for flag in [
        "--weight-decay",
        "--lambda",
        "--noise",
        "--valid-fraction",
        "--penalty",
        "--out",
    ] {
        assert!(flags.contains(&flag), "{flag} not found in {mentions:?}");
    }
    for flag in [
        "--release",
        "--features",
        "--example",
        "--warmup",
        "--threads",
    ] {
        assert!(
            !flags.contains(&flag),
            "{flag} attributed to mnist_ae: {mentions:?}"
        );
    }
    assert!(mentions
        .iter()
        .any(|m| m.args == ["--noise", "salt-pepper:F"]));
    let failures = cli::readme::check::<Config>("mnist_ae");
    assert!(
        failures.is_empty(),
        "README flags the parser refuses:\n{}",
        failures.join("\n")
    );
}
