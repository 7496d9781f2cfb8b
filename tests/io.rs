//! Model files and checkpoints: round trips, the element-type policy and atomic saves.
//! Malformed files are in `io_malformed.rs`, the checksum and same-bytes saves in
//! `io_checksum.rs`.

mod io_files;
mod sealing;

use std::fs;

use autoencoder::{
    Activation, Adam, Autoencoder, Error, Float, Latent, Penalty, Trainer, Tying, FORMAT_VERSION,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors};

use io_files::*;

fn round_trip<T: Float>() -> TestResult {
    let dir = scratch(&format!("round-trip-{}", T::NAME));
    let mut ae = model::<T>(1)?;
    // Train a little so the weights are not just the initializer's.
    Trainer::new(Adam::new(1e-2))
        .epochs(2)
        .batch_size(8)
        .fit(&mut ae, data::<T>().view(), None)?;
    let path = dir.join("ae.safetensors");
    ae.save(&path)?;
    let loaded = Autoencoder::<T>::load(&path)?;
    assert!(same_bits(&ae, &loaded));
    let x = data::<T>();
    assert_eq!(loaded.reconstruct(x.view())?, ae.reconstruct(x.view())?);
    assert_eq!(loaded.encode(x.view())?, ae.encode(x.view())?);
    assert_eq!(
        Autoencoder::<T>::from_bytes(&ae.to_bytes()?)?.sizes(),
        ae.sizes()
    );
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn round_trip_f32_gives_identical_outputs() -> TestResult {
    round_trip::<f32>()
}

#[test]
fn round_trip_f64_gives_identical_outputs() -> TestResult {
    round_trip::<f64>()
}

#[test]
fn variational_and_tied_models_round_trip() -> TestResult {
    let dir = scratch("vae-tied");
    let x = data::<f64>();
    let mut vae = Autoencoder::<f64>::builder(7)
        .hidden(5, Activation::Tanh)
        .gaussian_latent(2)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(11))?;
    Trainer::new(Adam::new(1e-2))
        .epochs(2)
        .batch_size(8)
        .penalty(Penalty::gaussian_kl(1.0)?)
        .fit(&mut vae, x.view(), None)?;
    vae.save(dir.join("vae.safetensors"))?;
    let loaded = Autoencoder::<f64>::load(dir.join("vae.safetensors"))?;
    assert_eq!(loaded.latent(), Latent::Gaussian);
    assert_eq!((loaded.n_latent(), loaded.sizes()), (2, vae.sizes()));
    assert!(same_bits(&vae, &loaded));
    assert_eq!(loaded.reconstruct(x.view())?, vae.reconstruct(x.view())?);
    let mut draws = (ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(1));
    assert_eq!(
        loaded.sample(3, &mut draws.0)?,
        vae.sample(3, &mut draws.1)?
    );

    let mut tied = Autoencoder::<f32>::builder(7)
        .hidden(5, Activation::Relu)
        .latent(3, Activation::Sigmoid)
        .tying(Tying::Tied)
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(12))?;
    Trainer::new(Adam::new(1e-2)).epochs(2).batch_size(8).fit(
        &mut tied,
        data::<f32>().view(),
        None,
    )?;
    let bytes = tied.to_bytes()?;
    let loaded = Autoencoder::<f32>::from_bytes(&bytes)?;
    assert_eq!(loaded.tying(), Tying::Tied);
    assert_eq!(loaded.n_params(), tied.n_params());
    assert!(same_bits(&tied, &loaded));
    // A tied decoder weight that is not the transpose of its encoder weight is refused.
    let tampered = rebuild(&bytes, |_, tensors| {
        let t = tensor(tensors, "layers.3.weight");
        t.3[..4].copy_from_slice(&0.123f32.to_le_bytes());
    });
    assert!(format_reason(Autoencoder::from_bytes(&tampered)).contains("transpose"));
    // A Gaussian latent needs an even code width.
    let odd = rebuild(&loaded.to_bytes()?, |meta, _| {
        let arch = meta["architecture"].replace("\"Tied\"", "\"Untied\"");
        meta.insert(
            "architecture".into(),
            arch.replace("\"Deterministic\"", "\"Gaussian\""),
        );
    });
    format_reason(Autoencoder::from_bytes(&odd));
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn tensors_are_documented_names_and_shapes() -> TestResult {
    let ae = model::<f32>(2)?;
    let bytes = ae.to_bytes()?;
    let (_, header) = SafeTensors::read_metadata(&bytes)?;
    let meta = header.metadata().clone().expect("metadata");
    assert_eq!(meta["format"], "autoencoder");
    assert_eq!(meta["format_version"], FORMAT_VERSION.to_string());
    assert_eq!(meta["content"], "model");
    assert_eq!(meta["dtype"], "f32");
    let arch: serde_json::Value = serde_json::from_str(&meta["architecture"])?;
    assert_eq!(arch["n_in"], 7);
    assert_eq!(arch["n_encoder"], 2);
    assert_eq!(arch["layers"][0]["activation"]["LeakyRelu"], 0.1);
    assert_eq!(arch["layers"][1]["activation"], "Tanh");
    let tensors = SafeTensors::deserialize(&bytes)?;
    let w1 = tensors.tensor("layers.1.weight")?;
    assert_eq!((w1.dtype(), w1.shape()), (Dtype::F32, &[5, 3][..]));
    // Row-major little-endian: element (i, j) is at 4 (i n_out + j).
    let expect = ae.layers()[1].weights()[[2, 1]];
    let at = 4 * (2 * 3 + 1);
    assert_eq!(
        f32::from_le_bytes(w1.data()[at..at + 4].try_into()?),
        expect
    );
    assert_eq!(tensors.tensor("layers.3.bias")?.shape(), &[7]);
    assert_eq!(tensors.len(), 8);
    Ok(())
}

#[test]
fn element_type_is_never_converted_silently() -> TestResult {
    let dir = scratch("dtype");
    let path32 = dir.join("ae32.safetensors");
    let ae32 = model::<f32>(3)?;
    ae32.save(&path32)?;
    let err = Autoencoder::<f64>::load(&path32).expect_err("f32 file into f64 model");
    assert!(
        matches!(&err, Error::ElementType { found, expected: "f64", .. } if found == "f32"),
        "{err}"
    );
    assert!(err.to_string().contains("load_converted"), "{err}");
    // Explicit conversion: f32 -> f64 is exact.
    let ae64 = Autoencoder::<f64>::load_converted(&path32)?;
    for (a, b) in ae32.layers().iter().zip(ae64.layers()) {
        for (x, y) in a.weights().iter().zip(b.weights()) {
            assert_eq!(f64::from(*x).to_bits(), y.to_bits());
        }
    }
    // f64 -> f32 rounds to nearest.
    let path64 = dir.join("ae64.safetensors");
    let wide = model::<f64>(3)?;
    wide.save(&path64)?;
    assert!(matches!(
        Autoencoder::<f32>::load(&path64),
        Err(Error::ElementType { .. })
    ));
    let narrow = Autoencoder::<f32>::load_converted(&path64)?;
    for (a, b) in wide.layers().iter().zip(narrow.layers()) {
        for (x, y) in a.weights().iter().zip(b.weights()) {
            assert_eq!((*x as f32).to_bits(), y.to_bits());
        }
    }
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn load_converted_refuses_f64_weights_too_large_for_f32() -> TestResult {
    let dir = scratch("too-large");
    let path = dir.join("ae.safetensors");
    // A weight beyond f32's range.
    let bytes = rebuild(&model::<f64>(4)?.to_bytes()?, |_, tensors| {
        let t = tensor(tensors, "layers.0.weight");
        t.3[..8].copy_from_slice(&1e300f64.to_le_bytes());
    });
    fs::write(&path, bytes)?;
    assert!(Autoencoder::<f64>::load(&path).is_ok());
    let err = Autoencoder::<f32>::load_converted(&path).expect_err("overflows f32");
    assert!(err.to_string().contains("non-finite"), "{err}");
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn a_failed_save_leaves_the_previous_file() -> TestResult {
    let dir = scratch("atomic");
    let path = dir.join("ae.safetensors");
    let first = model::<f32>(5)?;
    first.save(&path)?;
    let before = fs::read(&path)?;

    // The target is now a non-empty folder: the final rename must fail.
    let blocked = dir.join("blocked");
    fs::create_dir_all(blocked.join("inside"))?;
    let err = model::<f32>(6)?
        .save(&blocked)
        .expect_err("cannot rename over a folder");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(blocked.join("inside").is_dir());

    // A missing folder: nothing is created.
    let err = model::<f32>(6)?.save(dir.join("missing").join("ae.safetensors"));
    assert!(matches!(err, Err(Error::Io { .. })), "{err:?}");

    // The earlier file is intact and no temporary file is left behind.
    assert_eq!(fs::read(&path)?, before);
    let names: Vec<String> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(same_bits(&Autoencoder::<f32>::load(&path)?, &first));

    // A successful save replaces it.
    let second = model::<f32>(7)?;
    second.save(&path)?;
    assert!(same_bits(&Autoencoder::<f32>::load(&path)?, &second));
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Autoencoder::<f32>::load("/nonexistent/ae.safetensors").expect_err("missing");
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("ae.safetensors")),
        "{err}"
    );
}
