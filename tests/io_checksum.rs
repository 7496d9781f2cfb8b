//! Model files and checkpoints: the checksum (any changed byte is refused), and the same
//! bytes for the same content.

mod io_files;
mod sealing;

use std::fs;
use std::path::PathBuf;

use autoencoder::{Activation, Autoencoder, Checkpoint, Error, Tying};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use sha2::Digest;

use io_files::*;

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
/// `cargo test --release --test io_checksum -- --ignored write_fuzz_seeds`.
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
