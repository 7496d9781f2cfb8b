//! Feeds arbitrary bytes to the model and checkpoint loaders, as they are and with their
//! checksum written anew (so that mutations of valid files reach the checks behind the
//! checksum): each must return a model or an error, never panic, and a model it returns
//! must be usable.
#![no_main]

mod reseal;

use autoencoder::{Autoencoder, Checkpoint};
use libfuzzer_sys::fuzz_target;

fn check<T: autoencoder::Float>(model: &Autoencoder<T>) {
    let x = ndarray::Array2::<T>::zeros((1, model.n_in()));
    let y = model
        .reconstruct(x.view())
        .expect("a loaded model reconstructs");
    assert_eq!(y.dim(), (1, model.n_in()));
}

fn load_all(data: &[u8]) {
    if let Ok(model) = Autoencoder::<f32>::from_bytes(data) {
        check(&model);
    }
    if let Ok(model) = Autoencoder::<f64>::from_bytes(data) {
        check(&model);
    }
    if let Ok(checkpoint) = Checkpoint::<f32>::from_bytes(data) {
        check(checkpoint.model());
    }
    if let Ok(checkpoint) = Checkpoint::<f64>::from_bytes(data) {
        check(checkpoint.model());
    }
}

fuzz_target!(|data: &[u8]| {
    load_all(data);
    if let Some(resealed) = reseal::resealed(data) {
        load_all(&resealed);
    }
});
