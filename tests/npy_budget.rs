//! The memory limit bounds what `npy::read` allocates (its own binary: the limit is global).

use autoencoder::data::npy;
use autoencoder::{set_memory_limit, Error, Result, DEFAULT_MEMORY_LIMIT};
use ndarray::{Array2, Ix2};

#[test]
fn a_file_over_the_memory_limit_is_refused_before_reading_and_the_map_still_works() -> Result<()> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npy_budget");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("x.npy");
    npy::write(&path, Array2::<f32>::from_elem((64, 16), 0.5).view())?; // 4 KiB of data
    set_memory_limit(1024)?;
    let read = npy::read::<f64, Ix2>(&path);
    // The map allocates nothing, so the limit does not apply to it.
    let map = unsafe { npy::NpyMap::open(&path)? };
    let viewed = map.view::<f32, Ix2>().map(|v| v.sum());
    set_memory_limit(DEFAULT_MEMORY_LIMIT)?;
    match read {
        Err(Error::FileTooLarge {
            path: p,
            shape,
            element_bytes,
            ..
        }) => {
            assert_eq!((p, shape, element_bytes), (path.clone(), vec![64, 16], 8));
        }
        other => panic!("expected FileTooLarge, got {other:?}"),
    }
    assert_eq!(viewed?, 512.0);
    assert_eq!(npy::read::<f64, Ix2>(&path)?.dim(), (64, 16));
    Ok(())
}
