//! `.npy` files: files NumPy wrote, round trips, the memory map (training on it gives the
//! same bits as training in memory), and every way a file can be wrong.

mod common;

use std::path::PathBuf;

use autoencoder::data::npy::{self, Dtype, MemoryOrder, NpyMap};
use autoencoder::{Activation, Adam, Autoencoder, Error, Loss, Result, Trainer};
use common::param_bits;
use ndarray::{array, s, Array1, Array2, ArrayD, ArrayView2, Ix2, Ix3, IxDyn, ShapeBuilder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// `np.save` of `np.array([[1.5, -2, 3], [4, 5, 6.25]], dtype='<f4')`, NumPy 2.4.
const NUMPY_F32_C: &str = "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000c03f000000c000004040000080400000a0400000c840";
/// The same values as `'<f8'` in Fortran order (`np.asfortranarray`).
const NUMPY_F64_FORTRAN: &str = "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000f83f000000000000104000000000000000c0000000000000144000000000000008400000000000001940";
/// `np.array([1.5, -2.0], dtype='>f8')`: big-endian.
const NUMPY_F64_BIG: &str = "934e554d5059010076007b276465736372273a20273e6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a3ff8000000000000c000000000000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npy_tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `bytes` to a fresh file named `name`.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

/// A version-1.0 file with header dict `dict` (padded as NumPy pads) and `data`.
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut text = dict.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Asserts `result` is a format error on `path` whose reason contains `needle`.
fn assert_format<T: std::fmt::Debug>(result: Result<T>, path: &PathBuf, needle: &str) {
    match result {
        Err(Error::Format { path: p, reason }) => {
            assert_eq!(&p, path);
            assert!(
                reason.contains(needle),
                "reason `{reason}` should contain `{needle}`"
            );
        }
        other => panic!("expected Error::Format containing `{needle}`, got {other:?}"),
    }
}

#[test]
fn reads_files_numpy_wrote_in_either_order_and_byte_order() -> Result<()> {
    let expected = array![[1.5, -2.0, 3.0], [4.0, 5.0, 6.25]];
    let c = file("numpy_c.npy", &hex(NUMPY_F32_C));
    let x: Array2<f32> = npy::read(&c)?;
    assert_eq!(x, expected.mapv(|v| v as f32));
    assert!(x.is_standard_layout());
    let header = npy::header(&c)?;
    assert_eq!(header.dtype(), Dtype::F32);
    assert_eq!(header.order(), MemoryOrder::C);
    assert_eq!(header.shape(), &[2, 3]);
    assert_eq!(header.data_offset(), 128);

    let f = file("numpy_f.npy", &hex(NUMPY_F64_FORTRAN));
    let x: Array2<f64> = npy::read(&f)?;
    assert_eq!(x, expected);
    assert!(
        x.t().is_standard_layout(),
        "Fortran files come back column-major"
    );
    assert_eq!(npy::header(&f)?.order(), MemoryOrder::Fortran);
    // Converted to f32 on the way in.
    let x: Array2<f32> = npy::read(&f)?;
    assert_eq!(x, expected.mapv(|v| v as f32));

    let big = file("numpy_big.npy", &hex(NUMPY_F64_BIG));
    assert!(npy::header(&big)?.is_big_endian());
    let v: Array1<f64> = npy::read(&big)?;
    assert_eq!(v, array![1.5, -2.0]);
    Ok(())
}

#[test]
fn written_files_are_byte_for_byte_what_numpy_writes() -> Result<()> {
    let x = array![[1.5f32, -2.0, 3.0], [4.0, 5.0, 6.25]];
    let path = dir().join("ours_c.npy");
    npy::write(&path, x.view())?;
    assert_eq!(std::fs::read(&path).expect("read"), hex(NUMPY_F32_C));
    // A column-major array is written as it lies, in Fortran order.
    let f =
        Array2::from_shape_vec((2, 3).f(), vec![1.5, 4.0, -2.0, 5.0, 3.0, 6.25]).expect("shape");
    assert!(f.t().is_standard_layout());
    let path = dir().join("ours_f.npy");
    npy::write(&path, f.view())?;
    assert_eq!(std::fs::read(&path).expect("read"), hex(NUMPY_F64_FORTRAN));
    Ok(())
}

#[test]
fn round_trips_any_layout_and_dimension() -> Result<()> {
    let x = Array2::from_shape_fn((7, 5), |(i, j)| (i as f64 - 3.0) * 0.37 + j as f64 * 1e-9);
    let cases: Vec<(&str, Array2<f64>, ArrayView2<f64>)> = vec![
        ("standard", x.clone(), x.view()),
        ("transposed", x.t().to_owned(), x.t()),
        (
            "strided",
            x.slice(s![..;2, 1..;2]).to_owned(),
            x.slice(s![..;2, 1..;2]),
        ),
        ("empty", Array2::zeros((0, 5)), x.slice(s![..0, ..])),
    ];
    for (name, expected, view) in cases {
        let path = dir().join(format!("round_{name}.npy"));
        npy::write(&path, view)?;
        let back: Array2<f64> = npy::read(&path)?;
        assert_eq!(back, expected, "{name}");
        let back: Array2<f32> = npy::read(&path)?;
        assert_eq!(back, expected.mapv(|v| v as f32), "{name} as f32");
    }
    // Bits survive, NaN and signed zero included.
    let odd = array![
        f32::MIN_POSITIVE / 4.0,
        -0.0,
        f32::NAN,
        f32::MAX,
        f32::INFINITY
    ];
    let path = dir().join("round_odd.npy");
    npy::write(&path, odd.view())?;
    let back: Array1<f32> = npy::read(&path)?;
    let bits = |a: &Array1<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&odd));
    // Three dimensions, read as Ix3 and as IxDyn; and a scalar.
    let cube = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| {
        (i[0] * 100 + i[1] * 10 + i[2]) as f32
    });
    let path = dir().join("round_cube.npy");
    npy::write(&path, cube.view())?;
    assert_eq!(npy::read::<f32, IxDyn>(&path)?, cube);
    assert_eq!(npy::read::<f32, Ix3>(&path)?.into_dyn(), cube);
    let scalar = ArrayD::from_elem(IxDyn(&[]), 2.5f64);
    let path = dir().join("round_scalar.npy");
    npy::write(&path, scalar.view())?;
    assert_eq!(npy::read::<f64, IxDyn>(&path)?, scalar);
    Ok(())
}

#[test]
fn header_variants_numpy_and_python_2_wrote_are_read() -> Result<()> {
    let data = f64_bytes(&[1.0, 2.0]);
    for dict in [
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }",
        "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f8\"}",
        "{ 'fortran_order' : False , 'descr' : '<f8' , 'shape' : ( 1 , 2 ) }",
    ] {
        let path = file("variant.npy", &npy_bytes(dict, &data));
        let x: Array2<f64> = npy::read(&path)?;
        assert_eq!(x, array![[1.0, 2.0]], "{dict}");
    }
    // Format 2.0: a four-byte header length.
    let text = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n";
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&data);
    let path = file("v2.npy", &bytes);
    assert_eq!(npy::read::<f64, ndarray::Ix1>(&path)?, array![1.0, 2.0]);
    // Unaligned data are fine in memory, refused only by the map.
    let map = unsafe { NpyMap::open(&path)? };
    assert_format(
        map.view::<f64, ndarray::Ix1>(),
        &path,
        "not a multiple of 8",
    );
    Ok(())
}

#[test]
fn other_dtypes_are_refused_by_name_with_the_conversion() {
    for (descr, kind) in [
        ("<i8", "signed integers"),
        ("|u1", "unsigned integers"),
        ("|b1", "booleans"),
        ("<f2", "16-bit floats"),
        ("<f16", "extended-precision floats"),
        ("<c8", "complex numbers"),
        ("|O", "Python objects"),
        ("<U5", "strings"),
        ("<M8[ns]", "dates or time spans"),
    ] {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
        let path = file("dtype.npy", &npy_bytes(&dict, &[0; 8]));
        let result = npy::read::<f32, ndarray::Ix1>(&path);
        assert_format(
            result,
            &path,
            &format!("dtype '{descr}' ({kind}) is not supported"),
        );
        let path2 = file("dtype2.npy", &npy_bytes(&dict, &[0; 8]));
        assert_format(npy::header(&path2), &path2, "a.astype(numpy.float32)");
    }
    let dict = "{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, 'shape': (1,), }";
    let path = file("structured.npy", &npy_bytes(dict, &[0; 8]));
    assert_format(npy::header(&path), &path, "structured dtype");
}

#[test]
fn malformed_files_are_errors_naming_the_file_and_the_fault() {
    let good = npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
        &f64_bytes(&[1.0, 2.0, 3.0, 4.0]),
    );
    let dict_with = |d: &str| npy_bytes(d, &f64_bytes(&[1.0, 2.0, 3.0, 4.0]));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "only 0 bytes"),
        (
            "not_npy",
            b"PK\x03\x04 a zip file".to_vec(),
            "not a .npy file",
        ),
        (
            "magic_only",
            b"\x93NUMPY\x01".to_vec(),
            "ends inside its header",
        ),
        ("header_cut", good[..60].to_vec(), "ends inside its header"),
        ("data_cut", good[..good.len() - 1].to_vec(), "truncated"),
        (
            "data_extra",
            [&good[..], &[0]].concat(),
            "33 bytes of data follow",
        ),
        (
            "version",
            [&b"\x93NUMPY\x04\x00"[..], &good[8..]].concat(),
            "version 4.0",
        ),
        (
            "huge_header",
            [&b"\x93NUMPY\x02\x00\xff\xff\xff\xff"[..], &good[10..]].concat(),
            "claims 4294967295 bytes",
        ),
        ("no_brace", dict_with("'descr': '<f8'"), "expected `{`"),
        (
            "unknown_key",
            dict_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), 'x': 1}"),
            "unknown key `x`",
        ),
        (
            "missing_shape",
            dict_with("{'descr': '<f8', 'fortran_order': False}"),
            "no `shape`",
        ),
        (
            "bad_order",
            dict_with("{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 2)}"),
            "expected a quoted string",
        ),
        (
            "bad_shape",
            dict_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, -2)}"),
            "expected a dimension",
        ),
        (
            "shape_kind",
            dict_with("{'descr': '<f8', 'fortran_order': False, 'shape': 'x'}"),
            "wrong kind",
        ),
        (
            "trailing",
            dict_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2)} x"),
            "after the closing brace",
        ),
        (
            "overflow_dim",
            dict_with(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999, 2)}",
            ),
            "overflows",
        ),
        (
            "overflow_shape",
            dict_with(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1099511627776)}",
            ),
            "overflows",
        ),
        (
            "claims_more",
            dict_with("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000)}"),
            "truncated",
        ),
        (
            "three_d",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 2), }",
                &f64_bytes(&[0.0; 4]),
            ),
            "3 dimensions",
        ),
        (
            "one_d",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
                &f64_bytes(&[0.0; 4]),
            ),
            "a.reshape(-1, 1)",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = file(&format!("bad_{name}.npy"), &bytes);
        assert_format(npy::read::<f64, Ix2>(&path), &path, needle);
        match unsafe { NpyMap::open(&path) } {
            Ok(map) => assert_format(map.view::<f64, Ix2>(), &path, needle),
            Err(e) => assert!(matches!(e, Error::Format { .. }), "{name}: {e:?}"),
        }
    }
    let missing = dir().join("no_such_file.npy");
    assert!(matches!(
        npy::read::<f32, Ix2>(&missing),
        Err(Error::Io { .. })
    ));
    // An f64 value past f32's range is refused when reading as f32, with its index.
    let path = file(
        "too_big.npy",
        &npy_bytes(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
            &f64_bytes(&[1.0, 1e300, 2.0]),
        ),
    );
    assert_format(
        npy::read::<f32, ndarray::Ix1>(&path),
        &path,
        "value 1e300 at flat index 1",
    );
    assert!(npy::read::<f64, ndarray::Ix1>(&path).is_ok());
}

#[test]
fn the_map_views_the_file_without_copying() -> Result<()> {
    let c = file("map_c.npy", &hex(NUMPY_F32_C));
    let map = unsafe { NpyMap::open(&c)? };
    let x: ArrayView2<f32> = map.view()?;
    assert_eq!(x, npy::read::<f32, Ix2>(&c)?);
    assert_format(map.view::<f64, Ix2>(), &c, "map it as f32");
    assert_format(map.view::<f32, ndarray::Ix1>(), &c, "2 dimensions");

    let f = file("map_f.npy", &hex(NUMPY_F64_FORTRAN));
    let map = unsafe { NpyMap::open(&f)? };
    let x: ArrayView2<f64> = map.view()?;
    assert_eq!(x, array![[1.5, -2.0, 3.0], [4.0, 5.0, 6.25]]);

    let big = file("map_big.npy", &hex(NUMPY_F64_BIG));
    let map = unsafe { NpyMap::open(&big)? };
    if cfg!(target_endian = "little") {
        assert_format(map.view::<f64, ndarray::Ix1>(), &big, "big-endian");
    }
    Ok(())
}

#[test]
fn training_on_a_mapped_file_gives_the_bits_of_training_in_memory() -> Result<()> {
    let x = Array2::from_shape_fn((300, 12), |(i, j)| {
        (((i * 31 + j * 17) % 97) as f32 / 97.0 + (i % 3) as f32 * 0.1).min(1.0)
    });
    let train = |data: ArrayView2<f32>| -> Result<Vec<u32>> {
        let mut ae = Autoencoder::<f32>::builder(12)
            .hidden(8, Activation::Relu)
            .latent(3, Activation::Sigmoid)
            .output(Activation::Sigmoid)
            .build(&mut ChaCha8Rng::seed_from_u64(3))?;
        Trainer::new(Adam::new(1e-2))
            .loss(Loss::BinaryCrossEntropy)
            .epochs(5)
            .batch_size(32)
            .seed(11)
            .fit(&mut ae, data, None)?;
        Ok(param_bits(&ae))
    };
    let in_memory = train(x.view())?;
    for (name, array) in [
        ("c", x.clone()),
        ("f", x.t().as_standard_layout().reversed_axes().into_owned()),
    ] {
        let path = dir().join(format!("train_{name}.npy"));
        npy::write(&path, array.view())?;
        let map = unsafe { NpyMap::open(&path)? };
        assert_eq!(train(map.view()?)?, in_memory, "mapped {name}-order file");
        assert_eq!(
            train(npy::read::<f32, Ix2>(&path)?.view())?,
            in_memory,
            "read {name}-order file"
        );
    }
    Ok(())
}
