//! The temporary files of atomic writes (`.NAME.tmp-PID` beside the
//! destination). An interrupted process (SIGINT, SIGTERM, SIGHUP) removes
//! its own before exiting; the temporary files of a process that died
//! without that chance (`kill -9`, power loss) are removed by the next
//! writer of the same destination.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// Exit status of a process ended by an interrupt (128 + SIGINT).
const INTERRUPTED: i32 = 130;

/// The temporary name of `dest` for process `pid`.
pub(crate) fn name_for(dest: &Path, pid: u32) -> Option<PathBuf> {
    dest.file_name()?;
    Some(apr_model::checkpoint::tmp_name_for(dest, pid))
}

/// Records a temporary file to remove on an interrupt (installing the
/// signal handler on first use).
pub(crate) fn register(tmp: &Path) {
    HANDLER.call_once(|| {
        // Another handler already set by the embedding program keeps
        // priority; the temporary files are then left to the next run.
        let _ = ctrlc::set_handler(|| {
            let n = remove_live();
            eprintln!("interrupted: removed {n} temporary file(s)");
            std::process::exit(INTERRUPTED);
        });
    });
    if let Ok(mut v) = LIVE.lock() {
        v.push(tmp.to_path_buf());
    }
}

/// Forgets a temporary file (renamed into place or removed).
pub(crate) fn unregister(tmp: &Path) {
    if let Ok(mut v) = LIVE.lock() {
        v.retain(|p| p != tmp);
    }
}

fn remove_live() -> usize {
    let Ok(v) = LIVE.lock() else { return 0 };
    v.iter().filter(|p| std::fs::remove_file(p).is_ok()).count()
}

/// Removes the temporary files of `dest` left by processes that no longer
/// run; returns how many. Only `.NAME.tmp-PID` files of this very `dest`
/// are considered, and a PID is judged dead only where `/proc` tells.
pub(crate) fn remove_stale(dest: &Path) -> usize {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return 0;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && dead(pid) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` is known not to run.
fn dead(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_processes_go_and_live_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("t.jsonl");
        // Above Linux's largest PID (2^22): never a running process.
        let dead_tmp = name_for(&dest, 4_194_305).unwrap();
        let live_tmp = name_for(&dest, 1).unwrap();
        let other = name_for(&d.path().join("u.jsonl"), 4_194_305).unwrap();
        for p in [&dead_tmp, &live_tmp, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(
            dead_tmp.file_name().unwrap().to_str().unwrap(),
            ".t.jsonl.tmp-4194305"
        );
        let removed = remove_stale(&dest);
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, 1);
            assert!(!dead_tmp.exists());
        }
        assert!(live_tmp.exists() && other.exists());
    }
}
