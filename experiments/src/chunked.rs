//! Making many JSON lines in parallel and writing them in order: the loop
//! under every `gen-data` command.

use crate::error::{Error, Result};
use crate::jsonl::AtomicWriter;
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::sync::mpsc::{channel, sync_channel};

/// Records per thread in a parallel chunk: enough to keep the threads busy,
/// few enough that a chunk of APR records (~26 KB each) stays in cache
/// between being written and being copied out.
const CHUNK_PER_THREAD: usize = 32;

/// Maps `0..n` to lines with `make(i, buf)` (which appends line `i` to an
/// empty buffer) and writes them in order to `w`, chunk by chunk, counting
/// them on `pb`. Buffers are reused from chunk to chunk.
///
/// With one thread everything runs on the calling thread, one chunk after
/// the other (so "one thread" is one core). With more, the pool makes a
/// chunk while a writer thread writes the one before: the copy into the
/// page cache (a fifth of an APR run) then overlaps with making records
/// instead of leaving the pool idle.
pub(crate) fn write_lines(
    n: usize,
    pool: &rayon::ThreadPool,
    mut w: AtomicWriter,
    pb: &ProgressBar,
    make: impl Fn(usize, &mut Vec<u8>) -> Result<()> + Sync,
) -> Result<AtomicWriter> {
    let threads = pool.current_num_threads();
    let chunk = CHUNK_PER_THREAD * threads;
    let line = |i: usize, buf: &mut Vec<u8>| {
        buf.clear();
        make(i, buf)
    };
    let chunks = (0..n)
        .step_by(chunk.max(1))
        .map(|b| (b, (b + chunk).min(n)));
    if threads == 1 {
        // One worker: run on this thread, without handing each chunk to
        // the pool and waking back up.
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); chunk.min(n)];
        for (begin, end) in chunks {
            let lines = &mut bufs[..end - begin];
            for (k, buf) in lines.iter_mut().enumerate() {
                line(begin + k, buf)?;
            }
            w.write_all_bufs(lines)?;
            pb.inc((end - begin) as u64);
        }
        return Ok(w);
    }
    std::thread::scope(|scope| {
        // Two sets of buffers go round: made here, written there, returned.
        let (full_tx, full_rx) = sync_channel::<Vec<Vec<u8>>>(1);
        let (empty_tx, empty_rx) = channel::<Vec<Vec<u8>>>();
        for _ in 0..2 {
            // The receiver is alive: it is ours.
            let _ = empty_tx.send(vec![Vec::new(); chunk.min(n)]);
        }
        let writer = scope.spawn(move || -> Result<AtomicWriter> {
            for lines in full_rx {
                w.write_all_bufs(&lines)?;
                pb.inc(lines.len() as u64);
                // The maker may have stopped on an error; then nobody
                // needs the buffers back.
                let _ = empty_tx.send(lines);
            }
            Ok(w)
        });
        let mut made: Result<()> = Ok(());
        for (begin, end) in chunks {
            // Either fails only when the writer has stopped (on an error,
            // which joining it returns).
            let Ok(mut bufs) = empty_rx.recv() else { break };
            bufs.truncate(end - begin);
            made = pool.install(|| {
                bufs.par_iter_mut()
                    .enumerate()
                    .try_for_each(|(k, buf)| line(begin + k, buf))
            });
            if made.is_err() || full_tx.send(bufs).is_err() {
                break;
            }
        }
        drop(full_tx);
        let written = writer
            .join()
            .map_err(|_| Error::Config("the writer thread panicked".into()))?;
        made?;
        written
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn lines_are_written_in_order_on_one_thread_and_on_several() {
        let dir = tempfile::tempdir().unwrap();
        // More lines than one chunk, and a last chunk that is not full.
        let n = 3 * 2 * CHUNK_PER_THREAD + 5;
        let want: String = (0..n).map(|i| format!("{i}\n")).collect();
        for threads in [1, 2, 3] {
            let dest = dir.path().join(format!("{threads}.txt"));
            let w = AtomicWriter::create(&dest).unwrap();
            let pb = ProgressBar::hidden();
            let w = write_lines(n, &pool(threads), w, &pb, |i, buf| {
                buf.extend_from_slice(format!("{i}\n").as_bytes());
                Ok(())
            })
            .unwrap();
            w.commit().unwrap();
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), want);
            assert_eq!(pb.position(), n as u64);
        }
    }

    #[test]
    fn an_error_while_making_lines_is_returned_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        for threads in [1, 2] {
            let dest = dir.path().join("out.txt");
            let w = AtomicWriter::create(&dest).unwrap();
            let got = write_lines(1000, &pool(threads), w, &ProgressBar::hidden(), |i, buf| {
                if i == 700 {
                    return Err(Error::Config(format!("line {i} is bad")));
                }
                buf.push(b'x');
                Ok(())
            });
            let e = got.err().expect("the error comes back").to_string();
            assert!(e.contains("line 700 is bad"), "{e}");
            // The writer was dropped without a commit: nothing is left.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }
}
