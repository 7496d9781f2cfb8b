//! Atomic file writes: the one way this crate writes a file (models, checkpoints, downloads,
//! pictures).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Numbers temporary files, so that threads saving at once never share one.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a file atomically: `write` fills a temporary file in the same folder as `path`,
/// which is flushed to disk (`sync_all`), renamed over `path`, and the folder is synced so
/// the rename itself survives a power cut. On any failure the temporary file is removed and
/// a previous file at `path` is left as it was.
///
/// `write` is a parameter so that tests can make it fail half-way.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let io_error = |action, source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(io_error(
            "cannot save to",
            io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        ));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = File::create_new(&tmp).map_err(|e| {
            (
                "cannot create a temporary file (does the folder exist and is it writable?) for",
                e,
            )
        })?;
        write(&mut file).map_err(|e| ("cannot write (is the disk full?)", e))?;
        file.sync_all().map_err(|e| ("cannot flush to disk", e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| ("cannot rename the temporary file onto", e))
    })();
    if let Err((action, source)) = result {
        let _ = fs::remove_file(&tmp); // best effort; it may not exist
        return Err(io_error(action, source));
    }
    #[cfg(unix)]
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("saved, but cannot sync the folder of", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ae-fs-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_write_failing_half_way_leaves_the_old_file() -> Result<()> {
        let dir = scratch("half");
        let path = dir.join("model.safetensors");
        write_atomic(&path, |f| f.write_all(b"old contents"))?;
        let failed = write_atomic(&path, |f| {
            f.write_all(b"new cont")?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        });
        assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
        assert_eq!(fs::read(&path).expect("read"), b"old contents");
        assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
        write_atomic(&path, |f| f.write_all(b"new contents"))?;
        assert_eq!(fs::read(&path).expect("read"), b"new contents");
        fs::remove_dir_all(&dir).expect("cleanup");
        Ok(())
    }
}
