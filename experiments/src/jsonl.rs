//! JSON Lines input and atomic output.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufWriter, IoSlice, Write};
use std::path::{Path, PathBuf};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads every record of a JSON Lines file (blank lines are skipped), or of
/// a file holding one JSON array of records (the reference scripts' format).
/// Errors name the record; an empty file is an error.
pub fn read_records<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let p = path.display().to_string();
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let record = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::Record {
            path: p.clone(),
            record,
            message: format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        }
    })?;
    if text.trim_start().starts_with('[') {
        let v: Vec<T> = serde_json::from_str(text).map_err(|e| Error::Record {
            path: p.clone(),
            record: 0,
            message: format!("bad JSON array: {e}"),
        })?;
        if v.is_empty() {
            return Err(Error::Empty { path: p });
        }
        return Ok(v);
    }
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r = serde_json::from_str(line).map_err(|e| Error::Record {
            path: p.clone(),
            record: i + 1,
            message: e.to_string(),
        })?;
        out.push(r);
    }
    if out.is_empty() {
        return Err(Error::Empty { path: p });
    }
    Ok(out)
}

/// A file written under a temporary name and renamed into place on
/// [`commit`](AtomicWriter::commit), so that a killed run never leaves a
/// partial file under the final name.
pub struct AtomicWriter {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
    /// Bytes written so far (buffered or not).
    written: u64,
}

impl AtomicWriter {
    /// Starts writing `dest` (its folder is created if needed).
    pub fn create(dest: &Path) -> Result<AtomicWriter> {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let tmp = crate::tempfiles::name_for(dest, std::process::id())
            .ok_or_else(|| Error::Config(format!("{}: not a file name", dest.display())))?;
        crate::tempfiles::remove_stale(dest);
        let f = File::create(&tmp).map_err(io(&tmp))?;
        crate::tempfiles::register(&tmp);
        Ok(AtomicWriter {
            out: Some(BufWriter::with_capacity(1 << 20, f)),
            tmp,
            dest: dest.to_path_buf(),
            written: 0,
        })
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("writer is open until commit");
        out.write_all(bytes).map_err(io(&self.tmp))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Appends several buffers with vectored writes, without copying them
    /// into the write buffer (what a chunk of large records wants), and
    /// starts writing them to the device without waiting for it (Linux).
    pub fn write_all_bufs(&mut self, bufs: &[Vec<u8>]) -> Result<()> {
        let out = self.out.as_mut().expect("writer is open until commit");
        out.flush().map_err(io(&self.tmp))?;
        let file = out.get_mut();
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => {
                    return Err(Error::Io {
                        path: self.tmp.display().to_string(),
                        source: std::io::ErrorKind::WriteZero.into(),
                    })
                }
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(&self.tmp)(e)),
            }
        }
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        start_writeback(file, self.written, len);
        self.written += len;
        Ok(())
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.take().expect("commit once");
        let f = out.into_inner().map_err(|e| Error::Io {
            path: self.tmp.display().to_string(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(io(&self.tmp))?;
        let r = std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest));
        if r.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        crate::tempfiles::unregister(&self.tmp);
        r
    }
}

impl Drop for AtomicWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            crate::tempfiles::unregister(&self.tmp);
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to
/// the device now, without waiting (`posix_fadvise(DONTNEED)` starts the
/// writeback of dirty pages). The device then writes while the caller
/// computes, and the final `fsync` waits only for the tail. Advice only:
/// a failure changes nothing, so it is ignored.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// The JSON value in `path`, or `T::default()` when the file does not
/// exist (a record a run writes as it goes).
pub fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Record {
            path: path.display().to_string(),
            record: 0,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_and_vectored_writes_land_in_order_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub").join("out.jsonl");
        let mut w = AtomicWriter::create(&dest).unwrap();
        w.write_all(b"ab").unwrap();
        w.write_all_bufs(&[b"cde".to_vec(), Vec::new(), b"f".to_vec()])
            .unwrap();
        w.write_all(b"g\n").unwrap();
        w.write_all_bufs(&[b"hi\n".to_vec()]).unwrap();
        // The offsets handed to the writeback advice follow the file.
        assert_eq!(w.written, 11);
        assert!(!dest.exists(), "nothing under the final name before commit");
        w.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abcdefg\nhi\n");
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.jsonl")]);
    }

    #[test]
    fn a_dropped_writer_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.jsonl");
        let mut w = AtomicWriter::create(&dest).unwrap();
        w.write_all_bufs(&[b"partial".to_vec()]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
