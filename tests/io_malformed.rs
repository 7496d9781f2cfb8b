//! Malformed model files and checkpoints: each kind must give its typed error, never a
//! panic. `rebuild` (in `io_files`) takes a valid file apart and puts it back together after
//! an edit, so each case changes exactly one thing; it writes the right checksum for the
//! edited file, so that the check the case aims at is reached.

mod io_files;
mod sealing;

use std::fs;

use autoencoder::{Autoencoder, Checkpoint, Error, Noise, Sgd, Trainer, FORMAT_VERSION};
use safetensors::Dtype;

use io_files::*;

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
        let t = tensor(tensors, "layers.0.weight");
        t.2 = vec![5, 7];
    });
    assert!(format_reason(Autoencoder::from_bytes(&file)).contains("shape"));
    // A 1-D weight with the right number of elements.
    let file = rebuild(&valid(), |_, tensors| {
        let t = tensor(tensors, "layers.0.weight");
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
            let t = tensor(tensors, name);
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
        let t = tensor(tensors, "layers.3.bias");
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
                let order = tensor(t, "training.order");
                order.3.copy_within(8..16, 0);
            }),
        ),
        (
            "order out of range",
            Box::new(|_, t| {
                let order = tensor(t, "training.order");
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
                let m = tensor(t, "optimizer.m.layers.0.weight");
                m.2 = vec![m.3.len() / 4];
            }),
        ),
        (
            "non-finite moment",
            Box::new(|_, t| {
                let v = tensor(t, "optimizer.v.layers.1.bias");
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
