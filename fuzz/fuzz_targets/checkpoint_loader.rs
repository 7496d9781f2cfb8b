//! Feeds arbitrary bytes to the checkpoint loader, as they are and with their checksum
//! written anew: each must give a checkpoint or an error, never panic, and a checkpoint it
//! gives must be whole: a usable model and best model, a history of `epoch` records, and
//! bytes (`to_bytes`) that load again to the same bytes.
#![no_main]

mod reseal;

use autoencoder::{Checkpoint, Float};
use libfuzzer_sys::fuzz_target;

fn whole<T: Float>(checkpoint: &Checkpoint<T>) {
    let model = checkpoint.model();
    let x = ndarray::Array2::<T>::zeros((1, model.n_in()));
    let y = model
        .reconstruct(x.view())
        .expect("a loaded model reconstructs");
    assert_eq!(y.dim(), (1, model.n_in()));
    if let Some(best) = checkpoint.best_model() {
        assert_eq!(best.sizes(), model.sizes());
    }
    assert_eq!(checkpoint.history().epochs.len(), checkpoint.epoch());
    let bytes = checkpoint.to_bytes().expect("a loaded checkpoint saves");
    let again = Checkpoint::<T>::from_bytes(&bytes).expect("a saved checkpoint loads");
    assert_eq!(again.to_bytes().expect("saves again"), bytes);
}

fn check(bytes: &[u8]) {
    if let Ok(checkpoint) = Checkpoint::<f32>::from_bytes(bytes) {
        whole(&checkpoint);
    }
    if let Ok(checkpoint) = Checkpoint::<f64>::from_bytes(bytes) {
        whole(&checkpoint);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(resealed) = reseal::resealed(data) {
        check(&resealed);
    }
});
