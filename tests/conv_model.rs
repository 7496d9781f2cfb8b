//! Convolutional models as a whole: the sequence builder and its errors, the same bits for
//! 1, 2 and 3 threads, model files (PyTorch's weight layout, round trips, refused files) and
//! checkpoints that resume bit for bit.

mod common;

use std::ops::ControlFlow;

use autoencoder::Activation::{Relu, Sigmoid, Tanh};
use autoencoder::Padding::{Explicit, Same, Valid};
use autoencoder::{
    Adam, Autoencoder, Checkpoint, Error, Layer, LayerKindName, Loss, Noise, Result, Rounding,
    Trainer,
};
use common::param_bits;
use ndarray::{Array2, ShapeBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small conv autoencoder over 1x12x12 images through every image kind and a dense code.
fn model(seed: u64) -> Result<Autoencoder<f32>> {
    Autoencoder::<f32>::sequence([1, 12, 12])
        .conv(6, 3, Same, Relu)
        .max_pool(2, Rounding::Floor) // 6x6x6
        .conv_strided(4, [3, 3], [2, 2], Explicit([1, 1, 1, 1]), Relu) // 4x3x3
        .dense(10, Tanh)
        .code()
        .dense(36, Relu)
        .reshape([4, 3, 3])
        .conv_transpose(4, [2, 2], [2, 2], [0; 4], Relu) // 4x6x6
        .upsample(2) // 4x12x12
        .conv(1, 3, Same, Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(seed))
}

fn images(n: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, 144), || rng.random::<f32>())
}

fn trainer() -> Trainer<Adam<f32>> {
    Trainer::new(Adam::new(1e-3).eps(1e-7))
        .loss(Loss::BinaryCrossEntropy)
        .noise(Noise::Gaussian {
            std: 0.3,
            clip: Some((0.0, 1.0)),
        })
        .epochs(3)
        .batch_size(40)
        .seed(4)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ae-conv-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_sequence_builds_the_shapes_it_says() -> Result<()> {
    let ae = model(0)?;
    assert_eq!((ae.n_in(), ae.n_latent(), ae.layers().len()), (144, 10, 8));
    let kinds: Vec<LayerKindName> = ae.architecture().layers.iter().map(|l| l.kind).collect();
    use LayerKindName::*;
    assert_eq!(
        kinds,
        [
            Conv2d,
            MaxPool2d,
            Conv2d,
            Dense,
            Dense,
            ConvTranspose2d,
            Upsample2d,
            Conv2d
        ]
    );
    assert_eq!(
        ae.sizes(),
        [144, 6 * 144, 6 * 36, 4 * 9, 10, 36, 4 * 36, 4 * 144, 144]
    );
    // 6*9+6, pool, 4*6*9+4, 36*10+10, 10*36+36, 4*4*4+4, up, 1*4*9+1
    assert_eq!(ae.n_params(), 60 + 220 + 370 + 396 + 68 + 37);
    Ok(())
}

#[test]
fn the_sequence_refuses_what_does_not_fit() {
    let base = || Autoencoder::<f32>::sequence([1, 5, 5]);
    let cases = [
        (
            "no code",
            base()
                .conv(1, 3, Same, Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(0)),
        ),
        (
            "code first",
            base()
                .code()
                .conv(1, 3, Same, Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(0)),
        ),
        (
            "kernel too large",
            base()
                .conv(2, 7, Valid, Relu)
                .code()
                .conv(1, 3, Same, Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(0)),
        ),
        (
            "bad reshape",
            base()
                .dense(4, Relu)
                .code()
                .reshape([1, 3, 3])
                .conv(1, 3, Same, Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(0)),
        ),
        (
            "same with stride 2",
            base()
                .conv_strided(2, [3, 3], [2, 2], Same, Relu)
                .code()
                .dense(25, Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(0)),
        ),
        (
            "pool larger than the image",
            base()
                .max_pool(6, Rounding::Floor)
                .code()
                .dense(25, Sigmoid)
                .build(&mut ChaCha8Rng::seed_from_u64(0)),
        ),
    ];
    for (what, result) in cases {
        assert!(
            matches!(result, Err(Error::InvalidConfig(_))),
            "{what}: {result:?}"
        );
    }
    // The output must have the input's width.
    let wrong = base()
        .conv(2, 3, Same, Relu)
        .code()
        .conv(2, 3, Same, Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(0));
    assert!(
        matches!(wrong, Err(Error::ShapeMismatch { .. })),
        "{wrong:?}"
    );
    // An absurd size is refused before anything is allocated.
    let huge = Autoencoder::<f32>::sequence([1 << 20, 1 << 20, 1 << 20])
        .conv(1, 1, Valid, Relu)
        .code()
        .conv(1, 1, Valid, Sigmoid)
        .build(&mut ChaCha8Rng::seed_from_u64(0));
    assert!(huge.is_err(), "{huge:?}");
}

#[test]
fn training_gives_the_same_bits_for_1_2_and_3_threads() -> Result<()> {
    let x = images(200, 1);
    let mut runs = Vec::new();
    for threads in [1, 2, 3, 1] {
        autoencoder::set_threads(threads)?;
        let mut ae = model(2)?;
        trainer().fit(&mut ae, x.view(), None)?;
        runs.push(param_bits(&ae));
    }
    autoencoder::set_threads(2)?;
    for run in &runs[1..] {
        assert!(run == &runs[0], "weights differ between thread counts");
    }
    Ok(())
}

#[test]
fn training_lowers_the_loss() -> Result<()> {
    // Images with 3-dimensional structure, which a 10-number code can hold.
    let x = common::structured(400, 144, 3, 0.1, 3).mapv(|v| v as f32);
    let mut ae = model(5)?;
    let before = ae.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)?;
    let history = Trainer::new(Adam::new(1e-2))
        .loss(Loss::BinaryCrossEntropy)
        .epochs(15)
        .batch_size(40)
        .fit(&mut ae, x.view(), None)?;
    let after = ae.evaluate(x.view(), x.view(), Loss::BinaryCrossEntropy)?;
    assert!(
        after < before - 0.01,
        "BCE {before} -> {after}: {history:?}"
    );
    Ok(())
}

#[test]
fn model_files_hold_pytorch_weight_layouts_and_round_trip() -> Result<()> {
    let ae = model(6)?;
    let dir = scratch("file");
    let path = dir.join("conv.safetensors");
    ae.save(&path)?;
    let loaded = Autoencoder::<f32>::load(&path)?;
    assert_eq!(loaded.architecture(), ae.architecture());
    assert_eq!(param_bits(&loaded), param_bits(&ae));
    let x = images(5, 7);
    assert_eq!(loaded.reconstruct(x.view())?, ae.reconstruct(x.view())?);
    assert_eq!(ae.to_bytes()?, loaded.to_bytes()?);

    // The tensors as another reader sees them: conv (out, in, kh, kw), transposed conv
    // (in, out, kh, kw), dense (n_in, n_out), nothing for pooling and upsampling.
    let bytes = std::fs::read(&path).expect("read");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let shape = |name: &str| file.tensor(name).map(|t| t.shape().to_vec()).ok();
    assert_eq!(shape("layers.0.weight"), Some(vec![6, 1, 3, 3]));
    assert_eq!(shape("layers.0.bias"), Some(vec![6]));
    assert_eq!(shape("layers.1.weight"), None);
    assert_eq!(shape("layers.2.weight"), Some(vec![4, 6, 3, 3]));
    assert_eq!(shape("layers.3.weight"), Some(vec![36, 10]));
    assert_eq!(shape("layers.5.weight"), Some(vec![4, 4, 2, 2]));
    assert_eq!(shape("layers.6.weight"), None);
    assert_eq!(shape("layers.7.weight"), Some(vec![1, 4, 3, 3]));
    // Element [o, c, i, j] of the file is W[o, (c kh + i) kw + j].
    let Layer::Conv2d(conv) = &ae.layers()[2] else {
        panic!("layer 2 is a convolution")
    };
    let t = file.tensor("layers.2.weight").expect("tensor");
    let at = |flat: usize| {
        f32::from_le_bytes(
            t.data()[4 * flat..4 * flat + 4]
                .try_into()
                .expect("4 bytes"),
        )
    };
    let (o, c, i, j) = (3, 5, 2, 1);
    assert_eq!(
        at(((o * 6 + c) * 3 + i) * 3 + j),
        conv.weights()[[o, (c * 3 + i) * 3 + j]]
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
    Ok(())
}

#[test]
fn a_window_that_does_not_describe_its_layers_is_refused() -> Result<()> {
    let ae = model(8)?;
    let json = serde_json::to_string(ae.architecture()).expect("json");
    // A conv layer whose input image no longer matches the width before it.
    let bad = json.replacen("\"input\":[6,6,6]", "\"input\":[6,6,5]", 1);
    assert_ne!(bad, json, "the architecture JSON names the input image");
    let arch: autoencoder::Architecture = serde_json::from_str(&bad).expect("json");
    assert!(arch.validate().is_err());
    // A pooling layer without its window.
    let mut arch = ae.architecture().clone();
    arch.layers[1].window = None;
    assert!(matches!(arch.validate(), Err(Error::InvalidConfig(_))));
    Ok(())
}

#[test]
fn conv_training_resumes_bit_for_bit() -> Result<()> {
    let x = images(120, 9);
    let dir = scratch("resume");
    let path = dir.join("run.ckpt");
    let mut straight = model(10)?;
    trainer().fit(&mut straight, x.view(), None)?;
    let mut first = model(10)?;
    trainer()
        .checkpoint(&path, 1)
        .on_epoch(|r| {
            if r.epoch == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .fit(&mut first, x.view(), None)?;
    let mut resumed = model(10)?;
    trainer().resume(
        &mut resumed,
        Checkpoint::<f32>::load(&path)?,
        x.view(),
        None,
    )?;
    assert!(
        param_bits(&resumed) == param_bits(&straight),
        "resumed weights differ"
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
    Ok(())
}

#[test]
fn inputs_in_any_memory_layout_give_the_same_outputs() -> Result<()> {
    let ae = model(12)?;
    let x = images(6, 13);
    let mut columns_first = Array2::zeros(x.dim().f());
    columns_first.assign(&x);
    assert_eq!(
        ae.reconstruct(columns_first.view())?,
        ae.reconstruct(x.view())?
    );
    let wide = ndarray::concatenate![ndarray::Axis(1), x, x];
    let every_other = wide.slice(ndarray::s![.., ..;2]).to_owned();
    let strided = wide.slice(ndarray::s![.., ..;2]);
    assert_eq!(ae.encode(strided)?, ae.encode(every_other.view())?);
    Ok(())
}
