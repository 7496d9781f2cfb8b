//! Models and layers through serde go through the same checks as `assemble` and
//! `Dense::new`: a round-tripped model trains, and crafted input is an error, not a panic.

use autoencoder::{Activation, Adam, Autoencoder, Dense, Loss, Result, Trainer, Tying};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn model(tying: Tying) -> Result<Autoencoder<f64>> {
    Autoencoder::builder(5)
        .hidden(4, Activation::Tanh)
        .latent(2, Activation::Sigmoid)
        .output(Activation::Sigmoid)
        .tying(tying)
        .build(&mut ChaCha8Rng::seed_from_u64(1))
}

#[test]
fn a_round_tripped_model_is_the_same_and_trains() -> Result<()> {
    for tying in [Tying::Untied, Tying::Tied] {
        let ae = model(tying)?;
        let json = serde_json::to_string(&ae).expect("serializes");
        let mut back: Autoencoder<f64> = serde_json::from_str(&json).expect("deserializes");
        let x = Array2::from_shape_fn((16, 5), |(i, j)| ((i * 5 + j) % 7) as f64 / 7.0);
        assert_eq!(back.reconstruct(x.view())?, ae.reconstruct(x.view())?);
        // Before: the gradient buffers were not rebuilt and fit panicked in the product.
        let history = Trainer::new(Adam::new(1e-2))
            .loss(Loss::BinaryCrossEntropy)
            .epochs(3)
            .batch_size(8)
            .fit(&mut back, x.view(), None)?;
        assert!(history.last().expect("epochs").train_loss < history.epochs[0].train_loss);
    }
    Ok(())
}

/// A named edit of a serialized model.
type Edit = (&'static str, Box<dyn Fn(&mut serde_json::Value)>);

#[test]
fn crafted_json_is_an_error() -> Result<()> {
    let json = serde_json::to_string(&model(Tying::Untied)?).expect("serializes");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let cases: Vec<Edit> = vec![
        (
            "a bias of the wrong length",
            Box::new(|v| {
                v["layers"][0]["Dense"]["bias"]["dim"][0] = 3.into();
                v["layers"][0]["Dense"]["bias"]["data"] = serde_json::json!([0.0, 0.0, 0.0]);
            }),
        ),
        (
            "more encoder layers than layers",
            Box::new(|v| v["arch"]["n_encoder"] = 9.into()),
        ),
        (
            "no encoder layer",
            Box::new(|v| v["arch"]["n_encoder"] = 0.into()),
        ),
        (
            "an architecture that does not match",
            Box::new(|v| v["arch"]["layers"][1]["n_out"] = 3.into()),
        ),
        (
            "no layers",
            Box::new(|v| v["layers"] = serde_json::json!([])),
        ),
        (
            "a NaN weight",
            Box::new(|v| v["layers"][1]["Dense"]["weights"]["data"][0] = serde_json::json!(null)),
        ),
        (
            "weights whose data do not fill their shape",
            Box::new(|v| v["layers"][1]["Dense"]["weights"]["dim"][0] = 40.into()),
        ),
    ];
    for (what, edit) in cases {
        let mut crafted = value.clone();
        edit(&mut crafted);
        let result: std::result::Result<Autoencoder<f64>, _> = serde_json::from_value(crafted);
        assert!(result.is_err(), "{what} was accepted");
    }
    // A tied model whose decoder weights are not the transposes of its encoder's.
    let tied = serde_json::to_value(model(Tying::Tied)?).expect("json");
    let mut crafted = tied.clone();
    crafted["layers"][3]["Dense"]["weights"]["data"][0] = 5.0.into();
    let result: std::result::Result<Autoencoder<f64>, _> = serde_json::from_value(crafted);
    assert!(result.is_err());
    // A layer alone goes through Dense::new.
    let layer: std::result::Result<Dense<f64>, _> = serde_json::from_str(
        r#"{"weights":{"v":1,"dim":[2,2],"data":[1.0,2.0,3.0,4.0]},"bias":{"v":1,"dim":[3],"data":[0.0,0.0,0.0]},"activation":"Relu"}"#,
    );
    let message = layer.expect_err("bias of 3 for 2 units").to_string();
    assert!(message.contains("Dense::new"), "{message}");
    Ok(())
}
