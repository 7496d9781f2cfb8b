//! Model files and checkpoints: round trips, the element-type policy, atomic saves, the
//! checksum, the same bytes for the same content, and every kind of malformed file (each
//! must give its typed error, never a panic).

mod sealing;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use autoencoder::{
    Activation, Adam, Autoencoder, Checkpoint, Error, Float, Latent, Noise, Penalty, Sgd, Trainer,
    Tying, FORMAT_VERSION,
};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::Digest;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A fresh, empty folder under Cargo's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("io-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn model<T: Float>(seed: u64) -> autoencoder::Result<Autoencoder<T>> {
    Autoencoder::<T>::builder(7)
        .hidden(5, Activation::LeakyRelu(0.1))
        .latent(3, Activation::Tanh)
        .decoder_hidden(&[(4, Activation::Elu(1.0))])
        .output(Activation::Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn data<T: Float>() -> Array2<T> {
    Array2::from_shape_fn((40, 7), |(i, j)| {
        T::cast(((i * 5 + j * 3) % 11) as f64 / 10.0)
    })
}

fn same_bits<T: Float>(a: &Autoencoder<T>, b: &Autoencoder<T>) -> bool {
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
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "layers.3.weight")
            .expect("tensor");
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
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "layers.0.weight")
            .expect("tensor");
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

// ---------------------------------------------------------------------------------------
// Malformed files. `rebuild` takes a valid file apart and puts it back together after an
// edit, so each case changes exactly one thing; it writes the right checksum for the
// edited file, so that the check the case aims at is reached.

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;
type Edit = Box<dyn Fn(&mut HashMap<String, String>, &mut Tensors)>;

fn rebuild(bytes: &[u8], edit: impl FnOnce(&mut HashMap<String, String>, &mut Tensors)) -> Vec<u8> {
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
    sealing::reseal(&mut bytes);
    bytes
}

fn format_reason(result: autoencoder::Result<Autoencoder<f32>>) -> String {
    match result {
        Err(Error::Format { reason, .. }) => reason,
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

fn valid() -> Vec<u8> {
    model::<f32>(8)
        .and_then(|m| m.to_bytes())
        .expect("valid model")
}

#[test]
fn truncated_files_are_refused() {
    let bytes = valid();
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let result = Autoencoder::<f32>::from_bytes(&bytes[..len]);
        assert!(
            matches!(result, Err(Error::Format { .. })),
            "length {len}: {result:?}"
        );
    }
    assert!(format_reason(Autoencoder::from_bytes(&[])).contains("truncated"));
}

#[test]
fn random_bytes_and_foreign_files_are_refused() -> TestResult {
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    format_reason(Autoencoder::from_bytes(&noise));
    // A PNG signature, a plain-text file.
    format_reason(Autoencoder::from_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
    format_reason(Autoencoder::from_bytes(
        b"just some text, not a model at all",
    ));
    // A valid safetensors file from elsewhere: no `format` key (the "magic").
    let foreign = rebuild(&valid(), |meta, _| {
        meta.remove("format");
    });
    assert!(
        format_reason(Autoencoder::from_bytes(&foreign)).contains("not one saved by this crate")
    );
    let renamed = rebuild(&valid(), |meta, _| {
        meta.insert("format".into(), "something-else".into());
    });
    format_reason(Autoencoder::from_bytes(&renamed));
    Ok(())
}

#[test]
fn newer_version_is_refused_with_its_own_error() {
    let newer = rebuild(&valid(), |meta, _| {
        meta.insert("format_version".into(), (FORMAT_VERSION + 1).to_string());
    });
    let err = Autoencoder::<f32>::from_bytes(&newer).expect_err("newer");
    assert!(
        matches!(err, Error::UnsupportedVersion { found, supported, .. } if found == u64::from(FORMAT_VERSION) + 1 && supported == FORMAT_VERSION),
        "{err}"
    );
    for bad in ["0", "", "one", "-1", "1.5"] {
        let file = rebuild(&valid(), |meta, _| {
            meta.insert("format_version".into(), bad.into());
        });
        format_reason(Autoencoder::from_bytes(&file));
    }
}

#[test]
fn wrong_dims_are_refused() {
    // The architecture says the first layer has 6 units; the tensors have 5.
    let file = rebuild(&valid(), |meta, _| {
        let arch = meta["architecture"].replacen("\"n_out\":5", "\"n_out\":6", 1);
        meta.insert("architecture".into(), arch);
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("shape"));
    // A weight stored transposed.
    let file = rebuild(&valid(), |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "layers.0.weight")
            .expect("tensor");
        t.2 = vec![5, 7];
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("shape"));
    // A 1-D weight with the right number of elements.
    let file = rebuild(&valid(), |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "layers.0.weight")
            .expect("tensor");
        t.2 = vec![35];
    });
    format_reason(Autoencoder::from_bytes(&file));
    // Output width differs from input width; encoder takes every layer; no layers.
    for arch in [
        r#"{"n_in":7,"latent":"Deterministic","tying":"Untied","n_encoder":2,"layers":[{"n_out":5,"activation":"Relu"},{"n_out":3,"activation":"Relu"},{"n_out":4,"activation":"Relu"},{"n_out":6,"activation":"Relu"}]}"#,
        r#"{"n_in":7,"latent":"Deterministic","tying":"Untied","n_encoder":4,"layers":[{"n_out":5,"activation":"Relu"},{"n_out":3,"activation":"Relu"},{"n_out":4,"activation":"Relu"},{"n_out":7,"activation":"Relu"}]}"#,
        r#"{"n_in":7,"latent":"Deterministic","tying":"Untied","n_encoder":0,"layers":[]}"#,
        r#"{"n_in":0,"latent":"Deterministic","tying":"Untied","n_encoder":1,"layers":[{"n_out":0,"activation":"Relu"},{"n_out":0,"activation":"Relu"}]}"#,
        r#"{"n_in":7,"latent":"Deterministic","tying":"Untied","n_encoder":1,"layers":[{"n_out":5,"activation":{"LeakyRelu":2.0}},{"n_out":7,"activation":"Relu"}]}"#,
        r#"{"n_in":7,"latent":"Deterministic","tying":"Untied","n_encoder":1,"layers":[{"n_out":5,"activation":"Swish"},{"n_out":7,"activation":"Relu"}]}"#,
        r#"not json"#,
    ] {
        let file = rebuild(&valid(), |meta, _| {
            meta.insert("architecture".into(), arch.into());
        });
        let reason = format_reason(Autoencoder::from_bytes(&file));
        assert!(!reason.contains("missing field"), "{arch}: {reason}");
    }
}

#[test]
fn huge_and_overflowing_dims_allocate_nothing() {
    // The architecture claims 2^40 x 2^40 weights (the product overflows 64 bits in bytes):
    // refused by comparing shapes, before anything of that size is allocated.
    let huge = 1usize << 40;
    let arch = format!(
        r#"{{"n_in":{huge},"latent":"Deterministic","tying":"Untied","n_encoder":1,"layers":[{{"n_out":{huge},"activation":"Relu"}},{{"n_out":{huge},"activation":"Relu"}}]}}"#
    );
    let file = rebuild(&valid(), |meta, _| {
        meta.insert("architecture".into(), arch.clone());
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("shape"));
    let arch = r#"{"n_in":18446744073709551615,"latent":"Deterministic","tying":"Untied","n_encoder":1,"layers":[{"n_out":18446744073709551615,"activation":"Relu"},{"n_out":18446744073709551615,"activation":"Relu"}]}"#;
    let file = rebuild(&valid(), |meta, _| {
        meta.insert("architecture".into(), arch.into());
    });
    format_reason(Autoencoder::from_bytes(&file));
    // A tensor header whose shape product overflows, and one far larger than the file.
    let header = format!(
        r#"{{"__metadata__":{{"format":"autoencoder"}},"layers.0.weight":{{"dtype":"F32","shape":[{huge},{huge}],"data_offsets":[0,0]}}}}"#
    );
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    format_reason(Autoencoder::from_bytes(&file));
    let header =
        r#"{"layers.0.weight":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("beyond"));
    // A header length of 2^63.
    let mut file = (1u64 << 63).to_le_bytes().to_vec();
    file.extend_from_slice(b"{}");
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("header length"));
}

#[test]
fn non_finite_weights_are_refused() {
    for (bad, name) in [
        (f32::NAN, "layers.2.weight"),
        (f32::INFINITY, "layers.1.bias"),
        (f32::NEG_INFINITY, "layers.0.weight"),
    ] {
        let file = rebuild(&valid(), |_, tensors| {
            let t = tensors.iter_mut().find(|t| t.0 == name).expect("tensor");
            t.3[4..8].copy_from_slice(&bad.to_le_bytes());
        });
        let reason = format_reason(Autoencoder::from_bytes(&file));
        assert!(
            reason.contains("non-finite") && reason.contains(name),
            "{reason}"
        );
    }
}

#[test]
fn missing_extra_and_mistyped_tensors_are_refused() {
    let file = rebuild(&valid(), |_, tensors| {
        tensors.retain(|t| t.0 != "layers.3.bias")
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("missing"));
    let file = rebuild(&valid(), |_, tensors| {
        tensors.push(("layers.9.weight".into(), Dtype::F32, vec![1], vec![0; 4]));
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("unexpected"));
    // A tensor stored as F64 in a file that says f32.
    let file = rebuild(&valid(), |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "layers.3.bias")
            .expect("tensor");
        t.1 = Dtype::F64;
        t.3 = vec![0; 8 * 7];
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("dtype"));
    for dtype in ["f16", "i32", ""] {
        let file = rebuild(&valid(), |meta, _| {
            meta.insert("dtype".into(), dtype.into());
        });
        format_reason(Autoencoder::from_bytes(&file));
    }
}

fn checkpoint_bytes<T: Float>(dir: &std::path::Path) -> autoencoder::Result<Vec<u8>> {
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

#[test]
fn checkpoints_and_models_are_not_mixed_up() -> TestResult {
    let dir = scratch("mixup");
    let ckpt = checkpoint_bytes::<f32>(&dir)?;
    let checkpoint = Checkpoint::<f32>::from_bytes(&ckpt)?;
    assert_eq!(checkpoint.epoch(), 2);
    assert_eq!(checkpoint.history().epochs.len(), 2);
    assert_eq!(checkpoint.optimizer_state().name(), "adam");
    assert!(checkpoint.best_model().is_some());
    assert!(format_reason(Autoencoder::from_bytes(&ckpt)).contains("Checkpoint::load"));
    let err = Checkpoint::<f32>::from_bytes(&valid()).expect_err("a model is not a checkpoint");
    assert!(
        matches!(&err, Error::Format { reason, .. } if reason.contains("Autoencoder::load")),
        "{err}"
    );
    assert!(matches!(
        Checkpoint::<f64>::from_bytes(&ckpt),
        Err(Error::ElementType { .. })
    ));
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn malformed_training_state_is_refused() -> TestResult {
    let dir = scratch("bad-training");
    let ckpt = checkpoint_bytes::<f32>(&dir)?;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "order not a permutation",
            Box::new(|_, t| {
                let order = t
                    .iter_mut()
                    .find(|t| t.0 == "training.order")
                    .expect("order");
                order.3.copy_within(8..16, 0);
            }),
        ),
        (
            "order out of range",
            Box::new(|_, t| {
                let order = t
                    .iter_mut()
                    .find(|t| t.0 == "training.order")
                    .expect("order");
                order.3[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            }),
        ),
        (
            "order missing",
            Box::new(|_, t| t.retain(|t| t.0 != "training.order")),
        ),
        (
            "moment of wrong shape",
            Box::new(|_, t| {
                let m = t
                    .iter_mut()
                    .find(|t| t.0 == "optimizer.m.layers.0.weight")
                    .expect("m");
                m.2 = vec![m.3.len() / 4];
            }),
        ),
        (
            "non-finite moment",
            Box::new(|_, t| {
                let v = t
                    .iter_mut()
                    .find(|t| t.0 == "optimizer.v.layers.1.bias")
                    .expect("v");
                v.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            }),
        ),
        (
            "best weights missing",
            Box::new(|_, t| t.retain(|t| !t.0.starts_with("best."))),
        ),
        (
            "training missing",
            Box::new(|m, _| {
                m.remove("training");
            }),
        ),
        (
            "bad rng seed",
            Box::new(|m, _| {
                let training = m["training"].replacen("\"seed\":\"", "\"seed\":\"zz", 1);
                m.insert("training".into(), training);
            }),
        ),
        (
            "rng position past 2^68",
            Box::new(|m, _| {
                let mut training: serde_json::Value =
                    serde_json::from_str(&m["training"]).expect("json");
                training["rng"]["word_pos"] = "340282366920938463463374607431768211455".into();
                m.insert("training".into(), training.to_string());
            }),
        ),
        (
            "epoch disagrees with history",
            Box::new(|m, _| {
                let mut training: serde_json::Value =
                    serde_json::from_str(&m["training"]).expect("json");
                training["epoch"] = 7.into();
                m.insert("training".into(), training.to_string());
            }),
        ),
        (
            "duplicate buffer",
            Box::new(|m, _| {
                let mut training: serde_json::Value =
                    serde_json::from_str(&m["training"]).expect("json");
                training["optimizer"]["buffers"] = serde_json::json!(["m", "m", "v"]);
                m.insert("training".into(), training.to_string());
            }),
        ),
    ];
    for (what, edit) in edits.into_iter().chain(bad_buffer_names()) {
        let file = rebuild(&ckpt, |m, t| edit(m, t));
        let result = Checkpoint::<f32>::from_bytes(&file);
        assert!(
            matches!(result, Err(Error::Format { .. })),
            "{what}: {result:?}"
        );
    }
    fs::remove_dir_all(dir)?;
    Ok(())
}

/// Optimizer buffers named so that the checkpoint could not be saved again.
fn bad_buffer_names() -> Vec<(&'static str, Edit)> {
    ["", "m.x", "m v"]
        .into_iter()
        .map(|name| {
            let edit: Edit = Box::new(move |m, _| {
                let mut training: serde_json::Value =
                    serde_json::from_str(&m["training"]).expect("json");
                training["optimizer"]["buffers"] = serde_json::json!(["m", "v", name]);
                m.insert("training".into(), training.to_string());
            });
            ("buffer name", edit)
        })
        .collect()
}

#[test]
fn resume_refuses_another_optimizer() -> TestResult {
    let dir = scratch("other-optimizer");
    let checkpoint = Checkpoint::<f32>::from_bytes(&checkpoint_bytes::<f32>(&dir)?)?;
    let mut ae = checkpoint.model().clone();
    let err = Trainer::new(Sgd::new(0.1).momentum(0.9))
        .epochs(4)
        .batch_size(16) // the checkpointed run's settings, but another optimizer
        .noise(Noise::Masking { fraction: 0.2 })
        .resume(&mut ae, checkpoint, data::<f32>().view(), None)
        .expect_err("adam state into sgd");
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("adam")),
        "{err}"
    );
    fs::remove_dir_all(dir)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The checksum, and the same bytes for the same content.

/// Every byte of `bytes` changed (one low bit, the high bit, all bits) must be refused with
/// a format error that names the checksum.
fn every_changed_byte_is_refused<C: std::fmt::Debug>(
    bytes: &[u8],
    load: impl Fn(&[u8]) -> autoencoder::Result<C>,
) {
    let mut missed = Vec::new();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.to_vec();
            damaged[i] ^= mask;
            match load(&damaged) {
                Err(Error::Format { reason, .. }) if reason.contains("checksum") => {}
                other => {
                    let mut shown = format!("{other:?}");
                    shown.truncate(300);
                    missed.push((i, mask, shown));
                }
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} of {} changes not refused by the checksum, e.g. {:?}",
        missed.len(),
        3 * bytes.len(),
        &missed[..missed.len().min(4)]
    );
}

#[test]
fn a_changed_byte_anywhere_is_refused_naming_the_checksum() -> TestResult {
    let dir = scratch("flips");
    every_changed_byte_is_refused(&valid(), Autoencoder::<f32>::from_bytes);
    every_changed_byte_is_refused(
        &model::<f64>(4)?.to_bytes()?,
        Autoencoder::<f64>::from_bytes,
    );
    every_changed_byte_is_refused(
        &checkpoint_bytes::<f32>(&dir)?,
        Checkpoint::<f32>::from_bytes,
    );
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn edits_that_used_to_load_as_another_model_are_refused() -> TestResult {
    let bytes = valid();
    // One byte of the architecture: 2 encoder layers become 3. Without the checksum this
    // file is a valid model of another shape (code width 4 instead of 3).
    let at = bytes
        .windows(15)
        .position(|w| w == b"\\\"n_encoder\\\":2")
        .expect("n_encoder in the header")
        + 14;
    let mut edited = bytes.clone();
    edited[at] = b'3';
    let reason = format_reason(Autoencoder::from_bytes(&edited));
    assert!(reason.contains("checksum mismatch"), "{reason}");
    assert!(sealing::reseal(&mut edited));
    let other = Autoencoder::<f32>::from_bytes(&edited)?;
    assert_eq!(other.n_latent(), 4);

    // One weight's last byte: a slightly different weight, finite, otherwise valid.
    let mut edited = bytes.clone();
    let last = edited.len() - 1;
    edited[last] ^= 0x01;
    let reason = format_reason(Autoencoder::from_bytes(&edited));
    assert!(reason.contains("checksum mismatch"), "{reason}");
    assert!(sealing::reseal(&mut edited));
    Autoencoder::<f32>::from_bytes(&edited)?;

    // Truncated: the checksum fails, and the message says the file is also truncated.
    let reason = format_reason(Autoencoder::from_bytes(&bytes[..bytes.len() - 4]));
    assert!(
        reason.contains("checksum") && reason.contains("truncated"),
        "{reason}"
    );
    Ok(())
}

#[test]
fn the_documented_recipe_checks_the_checksum() -> TestResult {
    let dir = scratch("recipe");
    for bytes in [valid(), checkpoint_bytes::<f32>(&dir)?] {
        let (_, header) = SafeTensors::read_metadata(&bytes)?;
        let meta = header.metadata().clone().expect("metadata");
        let stored = &meta["checksum"];
        let digits = stored.strip_prefix("sha256:").expect("sha256: prefix");
        // The recipe of docs/format.md: the digits, replaced by 64 ASCII zeros where they
        // first occur, and the SHA-256 of the whole file.
        let at = bytes
            .windows(64)
            .position(|w| w == digits.as_bytes())
            .expect("the digits are in the file");
        let mut zeroed = bytes.clone();
        zeroed[at..at + 64].fill(b'0');
        let sum: String = sha2::Sha256::digest(&zeroed)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sum, digits);
        assert_eq!(meta["format_version"], "2");
    }
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn version_1_files_without_a_checksum_still_load() -> TestResult {
    let ae = model::<f32>(8)?;
    // A version 1 file, as this crate wrote them before checksums: loads, unchecked.
    let v1 = rebuild(&ae.to_bytes()?, |meta, _| {
        meta.remove("checksum");
        meta.insert("format_version".into(), "1".into());
    });
    assert!(sealing::digits_at(&v1).is_none());
    assert!(same_bits(&Autoencoder::<f32>::from_bytes(&v1)?, &ae));
    // A version 2 file must have one.
    let lost = rebuild(&ae.to_bytes()?, |meta, _| {
        meta.remove("checksum");
    });
    let reason = format_reason(Autoencoder::from_bytes(&lost));
    assert!(reason.contains("no checksum"), "{reason}");
    // A checksum in another form than the one written is refused, in any version.
    for (version, value) in [
        ("2", "sha256:ABC"),
        ("2", "md5:00"),
        ("1", "sha256:not-hex"),
        ("2", ""),
    ] {
        let odd = rebuild(&ae.to_bytes()?, |meta, _| {
            meta.insert("checksum".into(), value.into());
            meta.insert("format_version".into(), version.into());
        });
        let reason = format_reason(Autoencoder::from_bytes(&odd));
        assert!(reason.contains("checksum"), "{value}: {reason}");
    }
    Ok(())
}

/// The metadata keys as they come in the header, in order.
fn metadata_keys_in_order(bytes: &[u8]) -> Vec<String> {
    let (_, header) = SafeTensors::read_metadata(bytes).expect("valid");
    let keys = header.metadata().clone().expect("metadata").into_keys();
    let text = String::from_utf8_lossy(&bytes[8..]).into_owned();
    let mut at: Vec<(usize, String)> = keys
        .map(|k| (text.find(&format!("\"{k}\":\"")).expect("key"), k))
        .collect();
    at.sort();
    at.into_iter().map(|(_, k)| k).collect()
}

const CHILD_OUT: &str = "AE_IO_CHILD_OUT";

#[test]
fn the_same_model_saves_to_the_same_bytes() -> TestResult {
    let dir = scratch("same-bytes");
    let ae = model::<f32>(8)?;
    let bytes = ae.to_bytes()?;
    assert_eq!(ae.to_bytes()?, bytes);
    assert_eq!(ae.clone().to_bytes()?, bytes);
    assert_eq!(valid(), bytes);
    ae.save(dir.join("a.safetensors"))?;
    ae.save(dir.join("b.safetensors"))?;
    assert_eq!(fs::read(dir.join("a.safetensors"))?, bytes);
    assert_eq!(fs::read(dir.join("b.safetensors"))?, bytes);
    let keys = metadata_keys_in_order(&bytes);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // Another process (its own hash seeds) saves the same bytes.
    let path = dir.join("child.safetensors");
    let out = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_saves_a_model",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_OUT, &path)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(fs::read(&path)?, bytes);
    fs::remove_dir_all(dir)?;
    Ok(())
}

/// Saves `valid()`'s model where the parent test says.
#[test]
#[ignore = "run as a child process by the_same_model_saves_to_the_same_bytes"]
fn child_saves_a_model() -> TestResult {
    if let Some(path) = std::env::var_os(CHILD_OUT) {
        model::<f32>(8)?.save(PathBuf::from(path))?;
    }
    Ok(())
}

#[test]
fn a_checkpoint_saves_to_the_bytes_it_was_loaded_from() -> TestResult {
    let dir = scratch("checkpoint-bytes");
    let file = checkpoint_bytes::<f32>(&dir)?;
    let checkpoint = Checkpoint::<f32>::from_bytes(&file)?;
    assert_eq!(checkpoint.to_bytes()?, file);
    assert_eq!(checkpoint.to_bytes()?, checkpoint.clone().to_bytes()?);
    checkpoint.save(dir.join("a.ckpt"))?;
    checkpoint.save(dir.join("b.ckpt"))?;
    assert_eq!(fs::read(dir.join("a.ckpt"))?, file);
    assert_eq!(fs::read(dir.join("b.ckpt"))?, file);
    let keys = metadata_keys_in_order(&file);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn two_checkpoints_of_one_run_differ_only_in_timings() -> TestResult {
    let dir = scratch("two-runs");
    let first = checkpoint_bytes::<f32>(&dir)?;
    let second = checkpoint_bytes::<f32>(&dir)?;
    let parts = |bytes: &[u8]| -> std::result::Result<_, Box<dyn std::error::Error>> {
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let mut meta = header.metadata().clone().expect("metadata");
        meta.remove("checksum");
        let mut training: serde_json::Value = serde_json::from_str(&meta["training"])?;
        for record in training["history"]["epochs"]
            .as_array_mut()
            .expect("records")
        {
            record["seconds"] = 0.into();
            record["samples_per_second"] = 0.into();
        }
        meta.insert("training".into(), training.to_string());
        let tensors = SafeTensors::deserialize(bytes)?;
        let mut data: Vec<(String, Vec<u8>)> = tensors
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.data().to_vec()))
            .collect();
        data.sort();
        Ok((meta, data, bytes.len()))
    };
    assert_eq!(parts(&first)?, parts(&second)?);
    fs::remove_dir_all(dir)?;
    Ok(())
}

/// Writes seed inputs for the fuzz targets (`fuzz/corpus/model_loader`,
/// `fuzz/corpus/checkpoint_loader`, `fuzz/corpus/model_json`): run with
/// `cargo test --release --test io -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes the fuzz corpus seeds; run by hand"]
fn write_fuzz_seeds() -> TestResult {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let (corpus, checkpoints, json) = (
        root.join("model_loader"),
        root.join("checkpoint_loader"),
        root.join("model_json"),
    );
    for dir in [&corpus, &checkpoints, &json] {
        fs::create_dir_all(dir)?;
    }
    let dir = scratch("seeds");
    let ckpt32 = checkpoint_bytes::<f32>(&dir)?;
    let ckpt64 = checkpoint_bytes::<f64>(&dir)?;
    for (name, bytes) in [("checkpoint-f32", &ckpt32), ("checkpoint-f64", &ckpt64)] {
        fs::write(corpus.join(name), bytes)?;
        fs::write(checkpoints.join(name), bytes)?;
    }
    let small: Autoencoder<f32> = Autoencoder::<f32>::builder(2)
        .latent(1, Activation::Relu)
        .build(&mut ChaCha8Rng::seed_from_u64(0))?;
    let vae: Autoencoder<f64> = Autoencoder::<f64>::builder(6)
        .hidden(4, Activation::Gelu)
        .gaussian_latent(2)
        .output(Activation::Softplus)
        .build(&mut ChaCha8Rng::seed_from_u64(1))?;
    let tied: Autoencoder<f32> = Autoencoder::<f32>::builder(6)
        .hidden(4, Activation::Relu)
        .latent(2, Activation::Sigmoid)
        .tying(Tying::Tied)
        .build(&mut ChaCha8Rng::seed_from_u64(1))?;
    fs::write(corpus.join("model-f32"), valid())?;
    fs::write(corpus.join("model-f64"), model::<f64>(8)?.to_bytes()?)?;
    fs::write(corpus.join("model-tiny"), small.to_bytes()?)?;
    fs::write(corpus.join("model-vae"), vae.to_bytes()?)?;
    fs::write(corpus.join("model-tied"), tied.to_bytes()?)?;
    // The model_json target reads f32 models: the f64 VAE's JSON reads as f32 too.
    fs::write(json.join("model"), serde_json::to_vec(&model::<f32>(8)?)?)?;
    fs::write(json.join("tiny"), serde_json::to_vec(&small)?)?;
    fs::write(json.join("vae"), serde_json::to_vec(&vae)?)?;
    fs::write(json.join("tied"), serde_json::to_vec(&tied)?)?;
    fs::remove_dir_all(dir)?;
    Ok(())
}
