//! The scaler saved inside a model file: round trips to the bit, plain `load` still reads the
//! file, and a damaged scaler is refused by name.

mod sealing;

use autoencoder::data::{Scaler, Scaling};
use autoencoder::{seeded_rng, Activation, Autoencoder, Error, Float, Result};
use ndarray::Array2;

fn raw<T: Float>() -> Array2<T> {
    // Columns of very different units, one constant.
    Array2::from_shape_fn((40, 5), |(i, j)| {
        T::cast(match j {
            0 => 1e4 + i as f64 * 37.0,
            1 => (i as f64 * 0.3).sin() * 1e-3,
            2 => 7.0,
            _ => ((i * j) % 9) as f64 - 4.0,
        })
    })
}

fn path(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaler_file_tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn round_trip<T: Float>(scaling: Scaling) -> Result<()> {
    let x = raw::<T>();
    let scaler = Scaler::fit(x.view(), scaling)?;
    let ae = Autoencoder::<T>::builder(5)
        .hidden(4, Activation::Tanh)
        .latent(2, Activation::Identity)
        .build(&mut seeded_rng(2))?;
    let file = path(&format!("model-{}-{scaling:?}.safetensors", T::NAME));
    ae.save_with_scaler(&file, &scaler)?;
    let (loaded, back) = Autoencoder::<T>::load_with_scaler(&file)?;
    let back = back.expect("a scaler was saved");
    assert_eq!(back, scaler, "the scaler comes back to the bit");
    let bits = |a: Array2<T>| a.iter().map(|v| v.as_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(loaded.encode(back.transform(x.view())?.view())?),
        bits(ae.encode(scaler.transform(x.view())?.view())?),
        "raw data encode the same after loading"
    );
    // Plain load reads the same file (without the scaler); a file saved without one has none.
    assert_eq!(
        bits(Autoencoder::<T>::load(&file)?.reconstruct(scaler.transform(x.view())?.view())?),
        bits(ae.reconstruct(scaler.transform(x.view())?.view())?)
    );
    let plain = path(&format!("plain-{}.safetensors", T::NAME));
    ae.save(&plain)?;
    assert!(Autoencoder::<T>::load_with_scaler(&plain)?.1.is_none());
    // The same model and scaler save to the same bytes.
    let again = path(&format!("again-{}-{scaling:?}.safetensors", T::NAME));
    ae.save_with_scaler(&again, &scaler)?;
    assert_eq!(
        std::fs::read(&file).expect("read"),
        std::fs::read(&again).expect("read")
    );
    Ok(())
}

#[test]
fn a_scaler_round_trips_with_f32_and_f64_models() -> Result<()> {
    for scaling in [Scaling::Standard, Scaling::MinMax { lo: -1.0, hi: 1.0 }] {
        round_trip::<f32>(scaling)?;
        round_trip::<f64>(scaling)?;
    }
    Ok(())
}

#[test]
fn a_scaler_of_another_width_is_refused_at_save() -> Result<()> {
    let scaler = Scaler::fit(raw::<f64>().view(), Scaling::Standard)?;
    let ae = Autoencoder::<f64>::builder(4)
        .latent(2, Activation::Tanh)
        .build(&mut seeded_rng(0))?;
    let result = ae.save_with_scaler(path("wrong.safetensors"), &scaler);
    assert!(
        matches!(result, Err(Error::ShapeMismatch { .. })),
        "{result:?}"
    );
    assert!(!path("wrong.safetensors").exists());
    Ok(())
}

#[test]
fn a_damaged_scaler_is_refused_by_name() -> Result<()> {
    let scaler = Scaler::fit(raw::<f32>().view(), Scaling::Standard)?;
    let ae = Autoencoder::<f32>::builder(5)
        .latent(2, Activation::Tanh)
        .build(&mut seeded_rng(0))?;
    let file = path("damaged.safetensors");
    ae.save_with_scaler(&file, &scaler)?;
    let bytes = std::fs::read(&file).expect("read");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    // f64 tensors come first, by name: scaler.gain, then scaler.scale (5 values each).
    let data = 8 + header_len;
    let edit = |offset: usize, value: f64| {
        let mut b = bytes.clone();
        b[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        assert!(sealing::reseal(&mut b));
        b
    };
    for (edited, needle) in [
        (edit(data, 0.0), "gain 0e0 is not a normal positive number"),
        (
            edit(data + 40, 3.0),
            "scale 3e0 is not a positive power of two",
        ),
        (edit(data + 80, 9.0), "shift 9e0 is outside [-2, 2]"),
    ] {
        match Autoencoder::<f32>::from_bytes(&edited) {
            Err(Error::Format { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected a format error with `{needle}`, got {other:?}"),
        }
    }
    // The scaling in the metadata, renamed to something unknown (same length).
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text
        .find("\"\\\"Standard\\\"\"")
        .expect("scaling in the metadata");
    let mut b = bytes.clone();
    b[at + 3..at + 11].copy_from_slice(b"Standarx");
    assert!(sealing::reseal(&mut b));
    match Autoencoder::<f32>::from_bytes(&b) {
        Err(Error::Format { reason, .. }) => {
            assert!(reason.contains("metadata entry `scaler`"), "{reason}")
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn serde_round_trips_a_scaler_and_checks_what_it_reads() -> Result<()> {
    let scaler = Scaler::fit(raw::<f64>().view(), Scaling::MinMax { lo: 0.0, hi: 1.0 })?;
    let json = serde_json::to_string(&scaler).expect("serialize");
    let back: Scaler = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, scaler);
    let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
    value["gain"]["data"][0] = serde_json::json!(-1.0);
    let refused = serde_json::from_value::<Scaler>(value)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("column 0: gain"), "{refused}");
    Ok(())
}
