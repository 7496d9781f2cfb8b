//! Feeds arbitrary bytes to serde's JSON form of a model (`serde_json::from_slice`, the
//! other way in besides the model file): it must give a model or an error, never panic, and
//! a model it gives must reconstruct and take a training step (which may fail with an
//! error, e.g. if the loss overflows, but never panic).
#![no_main]

use autoencoder::{Autoencoder, Sgd, Trainer};
use libfuzzer_sys::fuzz_target;
use ndarray::Array2;

fuzz_target!(|data: &[u8]| {
    let Ok(mut model) = serde_json::from_slice::<Autoencoder<f32>>(data) else {
        return;
    };
    let n_in = model.n_in();
    let x = Array2::<f32>::from_shape_fn((2, n_in), |(i, j)| ((i + j) % 3) as f32 / 2.0);
    let y = model
        .reconstruct(x.view())
        .expect("a deserialized model reconstructs");
    assert_eq!(y.dim(), (2, n_in));
    let mut trainer = Trainer::new(Sgd::new(0.01));
    let _ = trainer.step(&mut model, x.view(), x.view());
    let _ = model
        .encode(x.view())
        .expect("and still encodes after the step");
});
