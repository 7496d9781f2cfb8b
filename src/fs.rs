//! Atomic file writes: the one way this crate writes a file (models, checkpoints, downloads,
//! pictures); and [`read_full`], the readers' loop that fills a buffer.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Numbers temporary files, so that threads saving at once never share one.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many names [`create_temp`] tries before it gives up.
const TEMP_ATTEMPTS: u32 = 8;

/// Writes a file atomically: `write` fills a temporary file in the same folder as `path`,
/// which is flushed to disk (`sync_all`), renamed over `path`, and the folder is synced so
/// the rename itself survives a power cut. On any failure the temporary file is removed and
/// a previous file at `path` is left as it was.
///
/// The temporary file is `.{name}.{pid}-{n}.tmp` (`n` counts this process's saves), created
/// new, never opened if it exists: a stale one, left by an earlier process that had the
/// same pid (after a reboot, or in another container sharing the folder), is not touched,
/// and the save tries `.{name}.{pid}-{n}-{t}.tmp` with a fresh `n` and the clock's
/// nanoseconds `t` instead (see [`create_temp`]).
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
    let (mut file, tmp) = create_temp(&dir, &name.to_string_lossy()).map_err(|e| {
        io_error(
            "cannot create a temporary file (does the folder exist and is it writable?) for",
            e,
        )
    })?;
    let result = (|| {
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

/// Creates a new temporary file in `dir` for a file called `name`: first
/// `.{name}.{pid}-{n}.tmp`, then, while a file of that name already exists,
/// `.{name}.{pid}-{n}-{t}.tmp` with a fresh `n` from [`TEMP_COUNTER`] and `t` the clock's
/// nanoseconds, up to [`TEMP_ATTEMPTS`] names in all. An existing file is never opened or
/// removed: it may belong to another live process.
///
/// # Errors
/// The error of the last attempt if every name exists; any other error at once.
fn create_temp(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    let pid = std::process::id();
    let mut attempt = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = if attempt == 0 {
            dir.join(format!(".{name}.{pid}-{n}.tmp"))
        } else {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            dir.join(format!(".{name}.{pid}-{n}-{t:x}.tmp"))
        };
        match File::create_new(&tmp) {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < TEMP_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads until `buf` is full or the input ends (retrying interrupted reads); returns the
/// number of bytes read, less than `buf.len()` only at the end of the input.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

    #[test]
    fn a_stale_temporary_file_with_the_next_name_does_not_block_the_save() -> Result<()> {
        let dir = scratch("stale");
        let path = dir.join("stale-model.safetensors");
        // An earlier process with this pid left the file the next save would create first
        // (and, since other tests save at the same time, those of the next few saves too).
        let next = TEMP_COUNTER.load(Ordering::Relaxed);
        let pid = std::process::id();
        let planted: Vec<PathBuf> = (next..next + 64)
            .map(|n| dir.join(format!(".stale-model.safetensors.{pid}-{n}.tmp")))
            .collect();
        for p in &planted {
            fs::write(p, b"stale").expect("plant");
        }
        write_atomic(&path, |f| f.write_all(b"saved"))?;
        assert_eq!(fs::read(&path).expect("read"), b"saved");
        // The stale files are left as they were (they might belong to a live process), and
        // the save left no file of its own behind.
        for p in &planted {
            assert_eq!(fs::read(p).expect("still there"), b"stale");
        }
        assert_eq!(
            leftovers(&dir).len(),
            planted.len(),
            "{:?}",
            leftovers(&dir)
        );
        fs::remove_dir_all(&dir).expect("cleanup");
        Ok(())
    }
}
