//! Every bad input returns its typed error (never a panic), and the message names it.

use autoencoder::{
    Activation, Adam, Autoencoder, EarlyStopping, Error, Loss, Noise, Penalty, Result, Schedule,
    Sgd, Trainer,
};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn model(latent: Activation, output: Activation) -> Result<Autoencoder<f64>> {
    Autoencoder::builder(4)
        .hidden(3, Activation::Relu)
        .latent(2, latent)
        .output(output)
        .build(&mut ChaCha8Rng::seed_from_u64(0))
}

fn data() -> Array2<f64> {
    Array2::from_shape_fn((10, 4), |(i, j)| ((i + j) % 4) as f64 / 4.0)
}

fn hyper_name(err: Error) -> &'static str {
    match err {
        Error::InvalidHyperparameter { name, .. } => name,
        other => panic!("expected InvalidHyperparameter, got {other}"),
    }
}

/// A penalty read from JSON, bypassing the constructors' checks.
fn penalty_from_json(json: &str) -> Penalty {
    serde_json::from_str(json).expect("a penalty in serde's JSON form")
}

/// Runs a default trainer on good data with `f` applied, returning the error.
fn fit_err(f: impl FnOnce(Trainer<Adam<f64>>) -> Trainer<Adam<f64>>, lr: f64) -> Error {
    let mut ae = model(Activation::Sigmoid, Activation::Sigmoid).unwrap();
    let x = data();
    f(Trainer::new(Adam::new(lr)).epochs(1))
        .fit(&mut ae, x.view(), None)
        .unwrap_err()
}

#[test]
fn out_of_range_hyperparameters_name_themselves() {
    let cases: Vec<(Error, &str)> = vec![
        (fit_err(|t| t, 0.0), "lr"),
        (fit_err(|t| t, -1e-3), "lr"),
        (fit_err(|t| t, f64::NAN), "lr"),
        (fit_err(|t| t.batch_size(0), 1e-3), "batch_size"),
        (fit_err(|t| t.epochs(0), 1e-3), "epochs"),
        (fit_err(|t| t.clip_grad_norm(0.0), 1e-3), "clip_grad_norm"),
        (
            fit_err(|t| t.early_stopping(EarlyStopping::new(0)), 1e-3),
            "patience",
        ),
        (
            fit_err(
                |t| t.early_stopping(EarlyStopping::new(2).min_delta(-1.0)),
                1e-3,
            ),
            "min_delta",
        ),
        (
            fit_err(|t| t.noise(Noise::Masking { fraction: 1.5 }), 1e-3),
            "masking fraction",
        ),
        (
            fit_err(|t| t.noise(Noise::SaltAndPepper { fraction: -0.1 }), 1e-3),
            "salt-and-pepper fraction",
        ),
        (
            fit_err(
                |t| {
                    t.noise(Noise::Gaussian {
                        std: -1.0,
                        clip: None,
                    })
                },
                1e-3,
            ),
            "gaussian noise std",
        ),
        (
            fit_err(
                |t| {
                    t.noise(Noise::Gaussian {
                        std: 0.1,
                        clip: Some((1.0, 0.0)),
                    })
                },
                1e-3,
            ),
            "gaussian noise clip",
        ),
        (
            fit_err(
                |t| {
                    t.schedule(Schedule::Step {
                        every: 0,
                        gamma: 0.5,
                    })
                },
                1e-3,
            ),
            "schedule every",
        ),
        (
            fit_err(|t| t.schedule(Schedule::Exponential { gamma: 1.5 }), 1e-3),
            "schedule gamma",
        ),
        (
            fit_err(|t| t.schedule(Schedule::Cosine { min_lr: 1.0 }), 1e-3),
            "schedule min_lr",
        ),
        (fit_err(|t| t.loss(Loss::Huber(0.0)), 1e-3), "huber delta"),
        (
            fit_err(
                |t| {
                    // Constructors refuse bad values; a deserialized penalty is checked by fit.
                    t.penalty(penalty_from_json(
                        r#"{"Activity":{"activity":{"KlSparsity":{"rho":1.0,"beta":1.0}},"layer":null}}"#,
                    ))
                },
                1e-3,
            ),
            "kl rho",
        ),
        (
            fit_err(
                |t| {
                    t.penalty(penalty_from_json(
                        r#"{"Weight":{"norm":"L2","lambda":-1.0,"biases":"Excluded"}}"#,
                    ))
                },
                1e-3,
            ),
            "l2 weight lambda",
        ),
    ];
    for (err, name) in cases {
        let message = err.to_string();
        assert_eq!(hyper_name(err), name, "{message}");
    }
    for (rho, ok) in [
        (0.05, true),
        (0.0, false),
        (1.0, false),
        (-0.5, false),
        (f64::NAN, false),
    ] {
        assert_eq!(Penalty::kl_sparsity(rho, 3.0).is_ok(), ok, "rho = {rho}");
    }
    for lambda in [-1e-3, f64::NAN, f64::INFINITY] {
        assert!(Penalty::l1_activity(lambda).is_err());
        assert!(Penalty::l2_weights(lambda).is_err());
        assert!(Penalty::contractive(lambda).is_err());
    }
    let mut ae = model(Activation::Sigmoid, Activation::Sigmoid).unwrap();
    let x = data();
    let sgd = Trainer::new(Sgd::new(0.1).momentum(1.0))
        .fit(&mut ae, x.view(), None)
        .unwrap_err();
    assert_eq!(hyper_name(sgd), "momentum");
    let nesterov = Trainer::new(Sgd::new(0.1).nesterov(true))
        .fit(&mut ae, x.view(), None)
        .unwrap_err();
    assert_eq!(hyper_name(nesterov), "momentum");
    let betas = Trainer::new(Adam::new(0.1).betas(0.9, 1.0))
        .fit(&mut ae, x.view(), None)
        .unwrap_err();
    assert_eq!(hyper_name(betas), "beta2");
    let eps = Trainer::new(Adam::new(0.1).eps(0.0))
        .fit(&mut ae, x.view(), None)
        .unwrap_err();
    assert_eq!(hyper_name(eps), "eps");
}

#[test]
fn bad_data_is_reported_with_its_place() -> Result<()> {
    let mut ae = model(Activation::Sigmoid, Activation::Sigmoid)?;
    let mut trainer = Trainer::new(Adam::new(1e-3)).loss(Loss::BinaryCrossEntropy);

    let empty = Array2::<f64>::zeros((0, 4));
    assert!(matches!(
        trainer.fit(&mut ae, empty.view(), None),
        Err(Error::EmptyData { rows: 0, .. })
    ));

    let wide = Array2::<f64>::zeros((5, 5));
    assert!(matches!(
        trainer.fit(&mut ae, wide.view(), None),
        Err(Error::ShapeMismatch { .. })
    ));
    let good = data();
    assert!(matches!(
        trainer.fit(&mut ae, good.view(), Some(wide.view())),
        Err(Error::ShapeMismatch { .. })
    ));

    let mut nan = data();
    nan[[3, 2]] = f64::NAN;
    match trainer.fit(&mut ae, nan.view(), None) {
        Err(Error::NonFiniteData {
            row: 3,
            col: 2,
            context,
            ..
        }) => assert_eq!(context, "training data"),
        other => panic!("expected NonFiniteData at (3, 2), got {other:?}"),
    }
    let mut inf = data();
    inf[[0, 1]] = f64::INFINITY;
    assert!(matches!(
        trainer.fit(&mut ae, good.view(), Some(inf.view())),
        Err(Error::NonFiniteData { row: 0, col: 1, .. })
    ));

    let mut out_of_range = data();
    out_of_range[[1, 1]] = 2.0;
    let err = trainer.fit(&mut ae, out_of_range.view(), None).unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig(_)) && err.to_string().contains("row 1, column 1"),
        "{err}"
    );

    // Inference checks too.
    assert!(matches!(
        ae.encode(wide.view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        ae.decode(good.view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        ae.reconstruct(nan.view()),
        Err(Error::NonFiniteData { .. })
    ));
    assert!(matches!(
        ae.evaluate(good.view(), wide.view(), Loss::MeanSquaredError),
        Err(Error::ShapeMismatch { .. })
    ));
    Ok(())
}

#[test]
fn configurations_that_cannot_work_are_refused_before_training() -> Result<()> {
    let x = data();
    // BCE needs a sigmoid output.
    let mut linear_out = model(Activation::Sigmoid, Activation::Identity)?;
    let err = Trainer::new(Adam::new(1e-3))
        .loss(Loss::BinaryCrossEntropy)
        .fit(&mut linear_out, x.view(), None);
    assert!(matches!(err, Err(Error::InvalidConfig(m)) if m.contains("sigmoid")));
    // KL sparsity needs activations in (0, 1): refused on a ReLU code layer ...
    let mut relu_code = model(Activation::Relu, Activation::Sigmoid)?;
    let kl = Penalty::kl_sparsity(0.05, 1.0)?;
    let err = Trainer::new(Adam::new(1e-3))
        .penalty(kl)
        .fit(&mut relu_code, x.view(), None);
    assert!(matches!(err, Err(Error::InvalidConfig(m)) if m.contains("Relu")));
    // ... and on the ReLU hidden layer 0, while the sigmoid code layer is fine.
    let mut sigmoid_code = model(Activation::Sigmoid, Activation::Sigmoid)?;
    assert!(kl.validate(sigmoid_code.architecture()).is_ok());
    assert!(matches!(
        kl.on_layer(0).validate(sigmoid_code.architecture()),
        Err(Error::InvalidConfig(_))
    ));
    // Contractive needs sigmoid or tanh; layer indices must name a hidden layer.
    assert!(matches!(
        Penalty::contractive(0.1)?.validate(relu_code.architecture()),
        Err(Error::InvalidConfig(_))
    ));
    let err = Penalty::l1_activity(0.1)?
        .on_layer(3)
        .validate(sigmoid_code.architecture())
        .unwrap_err();
    assert!(err.to_string().contains("layer 3"), "{err}");
    // Nothing was trained by the refused calls.
    let before = sigmoid_code.clone();
    let _ = Trainer::new(Adam::new(1e-3)).penalty(kl.on_layer(0)).fit(
        &mut sigmoid_code,
        x.view(),
        None,
    );
    assert_eq!(
        before.layers()[0].weights(),
        sigmoid_code.layers()[0].weights()
    );
    Ok(())
}

#[test]
fn builder_and_layer_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let no_latent = Autoencoder::<f32>::builder(4)
        .hidden(3, Activation::Relu)
        .build(&mut rng);
    assert!(matches!(no_latent, Err(Error::InvalidConfig(m)) if m.contains("latent")));
    let zero = Autoencoder::<f32>::builder(4)
        .latent(0, Activation::Relu)
        .build(&mut rng);
    assert!(matches!(
        zero,
        Err(Error::InvalidHyperparameter {
            name: "layer width",
            ..
        })
    ));
    let no_input = Autoencoder::<f32>::builder(0)
        .latent(2, Activation::Relu)
        .build(&mut rng);
    assert!(matches!(
        no_input,
        Err(Error::InvalidHyperparameter { name: "n_in", .. })
    ));
    let alpha = Autoencoder::<f32>::builder(4)
        .latent(2, Activation::LeakyRelu(2.0))
        .build(&mut rng);
    assert!(matches!(
        alpha,
        Err(Error::InvalidHyperparameter {
            name: "leaky relu alpha",
            ..
        })
    ));

    let bad_bias = autoencoder::Dense::new(
        Array2::<f64>::zeros((3, 2)),
        ndarray::Array1::zeros(3),
        Activation::Relu,
    );
    assert!(matches!(bad_bias, Err(Error::ShapeMismatch { .. })));
    let a = autoencoder::Dense::<f64>::random(
        3,
        2,
        Activation::Relu,
        autoencoder::Init::HeUniform,
        &mut rng,
    )
    .expect("a valid layer");
    let b = autoencoder::Dense::<f64>::random(
        5,
        3,
        Activation::Relu,
        autoencoder::Init::HeUniform,
        &mut rng,
    )
    .expect("a valid layer");
    assert!(matches!(
        Autoencoder::from_layers(vec![a.clone()], vec![b]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Autoencoder::from_layers(vec![a], vec![]),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn errors_are_send_and_sync_and_messages_are_specific() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Error>();
    assert_send_sync::<Autoencoder<f32>>();
    fn assert_send<T: Send>() {}
    assert_send::<Trainer<Adam<f32>>>(); // callbacks are Send, not Sync
    let err = fit_err(|t| t, -1.0);
    assert_eq!(
        err.to_string(),
        "invalid hyperparameter `lr` = -1: expected a finite value > 0"
    );
}
