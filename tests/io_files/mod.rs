//! What the model-file tests share: a scratch folder, a small model and data, bit-for-bit
//! comparison, a valid file and `rebuild`, which edits one and reseals it, and a checkpoint.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use autoencoder::{Activation, Adam, Autoencoder, Error, Float, Noise, Trainer};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

pub type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A fresh, empty folder under Cargo's scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("io-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

pub fn model<T: Float>(seed: u64) -> autoencoder::Result<Autoencoder<T>> {
    Autoencoder::<T>::builder(7)
        .hidden(5, Activation::LeakyRelu(0.1))
        .latent(3, Activation::Tanh)
        .decoder_hidden(&[(4, Activation::Elu(1.0))])
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(seed))
}

pub fn data<T: Float>() -> Array2<T> {
    Array2::from_shape_fn((40, 7), |(i, j)| {
        T::cast(((i * 5 + j * 3) % 11) as f64 / 10.0)
    })
}

pub fn same_bits<T: Float>(a: &Autoencoder<T>, b: &Autoencoder<T>) -> bool {
    a.sizes() == b.sizes()
        && a.encoder().len() == b.encoder().len()
        && a.layers().iter().zip(b.layers()).all(|(x, y)| {
            x.activation() == y.activation()
                && x.weights()
                    .iter()
                    .zip(y.weights())
                    .all(|(p, q)| p.to_f64().map(f64::to_bits) == q.to_f64().map(f64::to_bits))
                && x.bias()
                    .iter()
                    .zip(y.bias())
                    .all(|(p, q)| p.to_f64().map(f64::to_bits) == q.to_f64().map(f64::to_bits))
        })
}

// ---------------------------------------------------------------------------------------
// Malformed files. `rebuild` takes a valid file apart and puts it back together after an
// edit, so each case changes exactly one thing; it writes the right checksum for the
// edited file, so that the check the case aims at is reached.

pub type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;
pub type Edit = Box<dyn Fn(&mut HashMap<String, String>, &mut Tensors)>;

/// The tensor called `name` in `tensors`, to edit (the tests name tensors every file has).
///
/// # Panics
/// If there is none.
pub fn tensor<'a>(
    tensors: &'a mut Tensors,
    name: &str,
) -> &'a mut (String, Dtype, Vec<usize>, Vec<u8>) {
    tensors
        .iter_mut()
        .find(|t| t.0 == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

pub fn rebuild(
    bytes: &[u8],
    edit: impl FnOnce(&mut HashMap<String, String>, &mut Tensors),
) -> Vec<u8> {
    let (_, header) = SafeTensors::read_metadata(bytes).expect("valid input");
    let mut meta = header.metadata().clone().unwrap_or_default();
    let parsed = SafeTensors::deserialize(bytes).expect("valid input");
    let mut tensors: Tensors = parsed
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut meta, &mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(*d, s.clone(), b).expect("consistent edit"),
            )
        })
        .collect();
    let mut bytes = safetensors::serialize(views, Some(meta)).expect("serializable");
    crate::sealing::reseal(&mut bytes);
    bytes
}

pub fn format_reason(result: autoencoder::Result<Autoencoder<f32>>) -> String {
    match result {
        Err(Error::Format { reason, .. }) => reason,
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

pub fn valid() -> Vec<u8> {
    model::<f32>(8)
        .and_then(|m| m.to_bytes())
        .expect("valid model")
}

pub fn checkpoint_bytes<T: Float>(dir: &std::path::Path) -> autoencoder::Result<Vec<u8>> {
    let path = dir.join("run.ckpt");
    let mut ae = model::<T>(9)?;
    Trainer::new(Adam::new(1e-2))
        .epochs(2)
        .batch_size(16)
        .noise(Noise::Masking { fraction: 0.2 })
        .checkpoint(&path, 1)
        .fit(&mut ae, data::<T>().view(), Some(data::<T>().view()))?;
    Ok(fs::read(&path).expect("checkpoint written"))
}
