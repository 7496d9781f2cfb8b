//! Property tests behind the checksum: mutated model and checkpoint files with their
//! checksum written anew (as a tool that edits files would) give an error or a whole model,
//! never a panic. Without resealing, the checksum refuses every mutation first
//! (`tests/io_proptest.rs` checks that path), and the checks behind it would go untested.
//! `PROPTEST_CASES=100000 cargo test --release --test io_resealed_proptest` runs more cases.

mod sealing;

use std::sync::OnceLock;

use autoencoder::{Activation, Adam, Autoencoder, Checkpoint, Float, Noise, Trainer};
use ndarray::Array2;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Valid files to mutate: a model in each element type and an Adam checkpoint.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let model = |seed| {
            Autoencoder::<f32>::builder(5)
                .hidden(4, Activation::Relu)
                .latent(2, Activation::LeakyRelu(0.2))
                .output(Activation::Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(seed))
                .expect("valid model")
        };
        let f64_model = Autoencoder::<f64>::builder(3)
            .latent(2, Activation::Elu(0.5))
            .build(&mut ChaCha8Rng::seed_from_u64(1))
            .expect("valid model");
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("io-resealed");
        std::fs::create_dir_all(&dir).expect("scratch folder");
        let path = dir.join("seed.ckpt");
        let x = Array2::from_shape_fn((12, 5), |(i, j)| ((i + 2 * j) % 4) as f32 / 3.0);
        Trainer::new(Adam::new(1e-2))
            .epochs(2)
            .batch_size(5)
            .noise(Noise::Masking { fraction: 0.1 })
            .checkpoint(&path, 1)
            .fit(&mut model(2), x.view(), Some(x.view()))
            .expect("training");
        vec![
            model(0).to_bytes().expect("bytes"),
            f64_model.to_bytes().expect("bytes"),
            std::fs::read(&path).expect("checkpoint"),
        ]
    })
}

/// A model that loaded must be whole: chained shapes, finite weights, usable.
fn assert_usable<T: Float>(model: &Autoencoder<T>) {
    let sizes = model.sizes();
    assert_eq!(sizes.first(), sizes.last());
    assert!(model.layers().iter().all(|l| l
        .weights()
        .iter()
        .chain(l.bias().iter())
        .all(|v| v.is_finite())));
    let x = Array2::<T>::zeros((2, model.n_in()));
    assert_eq!(
        model.reconstruct(x.view()).expect("reconstruct").dim(),
        (2, model.n_in())
    );
}

/// Every loader on `bytes`: an error or a whole model; a checkpoint also saves again.
fn load_all(bytes: &[u8]) {
    if let Ok(m) = Autoencoder::<f32>::from_bytes(bytes) {
        assert_usable(&m);
    }
    if let Ok(m) = Autoencoder::<f64>::from_bytes(bytes) {
        assert_usable(&m);
    }
    if let Ok(c) = Checkpoint::<f32>::from_bytes(bytes) {
        assert_usable(c.model());
        assert_eq!(c.history().epochs.len(), c.epoch());
        let saved = c.to_bytes().expect("a loaded checkpoint saves");
        Checkpoint::<f32>::from_bytes(&saved).expect("and loads again");
    }
    if let Ok(c) = Checkpoint::<f64>::from_bytes(bytes) {
        assert_usable(c.model());
    }
}

/// Replaces the `i`-th run of ASCII digits (modulo their number) in the JSON header by
/// `v`, keeping the header length prefix right: a forged dimension, offset, epoch, step
/// count, version or activation parameter.
fn replace_number_in_header(bytes: &mut Vec<u8>, i: usize, v: u64) {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header = bytes[8..8 + n].to_vec();
    let mut runs = Vec::new();
    let mut k = 0;
    while k < header.len() {
        let start = k;
        while k < header.len() && header[k].is_ascii_digit() {
            k += 1;
        }
        if k > start {
            runs.push((start, k));
        } else {
            k += 1;
        }
    }
    if let Some(&(s, e)) = runs.get(i % runs.len().max(1)) {
        header.splice(s..e, v.to_string().into_bytes());
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[8 + n..]);
    *bytes = out;
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn resealed_flips_never_panic(
        which in 0usize..3,
        flips in prop::collection::vec((any::<usize>(), 1u8..), 1..4),
    ) {
        let mut bytes = seeds()[which].clone();
        let len = bytes.len();
        for (p, mask) in flips {
            bytes[p % len] ^= mask;
        }
        sealing::reseal(&mut bytes);
        load_all(&bytes);
    }

    #[test]
    fn resealed_forged_numbers_never_panic(
        which in 0usize..3,
        i in any::<usize>(),
        v in prop_oneof![0u64..4, Just(u64::MAX), Just(1 << 31), Just(1 << 40), Just(1 << 62), any::<u64>()],
    ) {
        let mut bytes = seeds()[which].clone();
        replace_number_in_header(&mut bytes, i, v);
        sealing::reseal(&mut bytes);
        load_all(&bytes);
    }
}

#[test]
fn resealing_an_unchanged_file_changes_nothing() {
    for seed in seeds() {
        let mut bytes = seed.clone();
        assert!(sealing::reseal(&mut bytes));
        assert_eq!(&bytes, seed);
    }
}
