//! Crash-safe file replacement.
//!
//! [`write_atomic`] writes the new contents to a uniquely named temporary file in the same
//! directory as the target, flushes it to disk, renames it over the target and finally flushes
//! the directory entry. Readers therefore see either the complete old file or the complete new
//! file, never a partial write, even if the process or machine dies half-way.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-process counter making temporary names unique across threads.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many fresh temporary names to try before giving up (only a stale leftover from a
/// crashed process with the same pid can make a name collide).
const MAX_ATTEMPTS: u32 = 16;

/// Atomically replaces (or creates) the file at `path` with `bytes`.
///
/// The data goes to a temporary file `.{name}.tmp-{pid}-{counter}` next to `path`, which is
/// fsynced, renamed over `path`, after which the parent directory is fsynced so the rename
/// itself is durable. On error the temporary file is removed and `path` is left untouched
/// (unless the failure is the final directory fsync, in which case the new file is in place
/// but its durability is not guaranteed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: path has no file name", path.display()),
        )
    })?;
    let dir = parent_dir(path);
    let (tmp, file) = create_temp(dir, name)?;
    let result = fill_and_sync(file, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        // Best effort: the original error is what matters to the caller.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates a fresh temporary file next to the target; never opens an existing file.
fn create_temp(dir: &Path, name: &OsStr) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last_err = None;
    for _ in 0..MAX_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{}.tmp-{pid}-{n}", name.to_string_lossy()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not create a temporary file")))
}

/// Writes all of `bytes` and flushes file data and metadata to disk.
fn fill_and_sync(mut file: File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

/// Flushes a directory's entries (creations, renames, removals) to disk.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes a directory's entries to disk. Directories cannot be opened for fsync on this
/// platform, so this is a no-op and renames are as durable as the filesystem makes them.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn creates_a_new_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn replaces_an_existing_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        fs::write(&p, b"old contents that are longer").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        write_atomic(&p, b"").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no-such-dir").join("a.bin");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!p.exists());
    }

    #[test]
    fn path_without_file_name_is_an_error() {
        let e = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[cfg(unix)]
    #[test]
    fn failed_rename_cleans_up_the_temp_file() {
        let d = tempfile::tempdir().unwrap();
        // A non-empty directory cannot be replaced by a file.
        let target = d.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"keep").unwrap();
        assert!(write_atomic(&target, b"x").is_err());
        assert!(target.is_dir());
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"keep");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn stale_temp_names_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.bin");
        // Pre-create the next few names this process could pick.
        let next = COUNTER.load(Ordering::Relaxed);
        let pid = std::process::id();
        let stale = d.path().join(format!(".a.bin.tmp-{pid}-{next}"));
        fs::write(&stale, b"stale").unwrap();
        write_atomic(&p, b"fresh").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"fresh");
        // The stale file is not ours: it must be neither overwritten nor removed.
        assert_eq!(fs::read(&stale).unwrap(), b"stale");
    }

    #[test]
    fn concurrent_writers_leave_one_complete_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("shared.bin");
        let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 4096 + i as usize]).collect();
        std::thread::scope(|s| {
            for bytes in &payloads {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..10 {
                        write_atomic(p, bytes).unwrap();
                    }
                });
            }
        });
        let got = fs::read(&p).unwrap();
        assert!(payloads.contains(&got));
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn bare_file_name_uses_current_directory() {
        assert_eq!(parent_dir(Path::new("x.bin")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/x.bin")), Path::new("a"));
    }
}
