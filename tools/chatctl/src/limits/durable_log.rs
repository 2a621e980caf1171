//! The least a durable path must do: append each record to a file and fdatasync before
//! acting on it, with every record that arrived meanwhile sharing the write and the fsync
//! (group commit). `limits relay --durable-dir` runs its deliveries through this, so the
//! gap between it and chatd is what the store, the order and the checks cost on top.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;

/// The relay's log: written in place, round and round. The file is filled at start so that
/// an fdatasync never has to record a new size or new blocks, as SQLite reuses its WAL.
pub(super) const LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Hands records to the log's thread; `T` is what to do once a record is durable.
pub(super) struct DurableLog<T> {
    queue: mpsc::Sender<(Vec<u8>, T)>,
}

impl<T: Send + 'static> DurableLog<T> {
    /// Creates `path` afresh, `bytes` long, and starts the thread that writes it, calling
    /// `on_durable` for each record after the fsync that covered it, in append order. A
    /// record must be shorter than a sixteenth of the file.
    pub(super) fn start(
        path: &Path,
        bytes: u64,
        on_durable: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<Self> {
        let file = filled(path, bytes)?;
        let (queue, appended) = mpsc::channel();
        std::thread::Builder::new()
            .name("relay-log".into())
            .spawn(move || {
                if let Err(error) = write_forever(&file, bytes, &appended, on_durable) {
                    let _ = writeln!(std::io::stderr(), "relay log failed: {error}");
                    std::process::exit(1);
                }
            })?;
        Ok(Self { queue })
    }

    pub(super) fn append(&self, record: Vec<u8>, then: T) {
        // The thread only ends by exiting the process; if it is gone anyway, nothing sent
        // would ever be acked, so stop loudly rather than hang.
        if self.queue.send((record, then)).is_err() {
            eprintln!("relay log thread gone");
            std::process::abort();
        }
    }
}

fn filled(path: &Path, bytes: u64) -> std::io::Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    // A page at a time: filled in 1 MiB writes, the file sat in the page cache in large
    // folios, and every small record dirtied and wrote back a whole folio (6.8 GB reached
    // the disk in a 5 s run instead of ~35 MB).
    let page = [0u8; 4096];
    for _ in 0..bytes.div_ceil(page.len() as u64) {
        file.write_all(&page)?;
    }
    file.sync_all()?;
    Ok(file)
}

fn write_forever<T>(
    file: &File,
    file_bytes: u64,
    appended: &mpsc::Receiver<(Vec<u8>, T)>,
    mut on_durable: impl FnMut(T),
) -> std::io::Result<()> {
    // One write at most this long, so that it always fits the file from its start.
    let batch_bytes = (file_bytes / 16) as usize;
    let mut batch = Vec::new();
    let mut bytes = Vec::new();
    let mut offset = 0u64;
    while let Ok(first) = appended.recv() {
        bytes.clear();
        let mut next = Some(first);
        while let Some(record) = next {
            bytes.extend_from_slice(&record.0);
            batch.push(record);
            next = (bytes.len() < batch_bytes)
                .then(|| appended.try_recv().ok())
                .flatten();
        }
        if offset + bytes.len() as u64 > file_bytes {
            offset = 0;
        }
        file.write_all_at(&bytes, offset)?;
        file.sync_data()?;
        offset += bytes.len() as u64;
        for (_, then) in batch.drain(..) {
            on_durable(then);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::DurableLog;

    /// Each record, numbered, with the file's bytes as they were when its turn came.
    fn logged(bytes: u64, records: usize) -> Vec<(usize, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (seen, turns) = mpsc::channel();
        let reader = path.clone();
        let log = DurableLog::start(&path, bytes, move |n: usize| {
            seen.send((n, std::fs::read(&reader).unwrap())).unwrap();
        })
        .unwrap();
        for n in 0..records {
            log.append(format!("record {n:04}\n").into_bytes(), n);
        }
        (0..records)
            .map(|_| turns.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect()
    }

    #[test]
    fn a_record_is_in_the_file_when_its_turn_comes_and_turns_keep_append_order() {
        let turns = logged(64 * 1024, 200);
        for (i, (n, file)) in turns.iter().enumerate() {
            assert_eq!(*n, i);
            let record = format!("record {n:04}\n");
            assert!(
                file.windows(record.len()).any(|w| w == record.as_bytes()),
                "{record:?} not in the file when its turn came"
            );
            assert_eq!(file.len(), 64 * 1024, "written in place, never grown");
        }
    }

    #[test]
    fn the_log_goes_round_within_its_size() {
        // 12-byte records, 1,000 of them, through a 4,096-byte file: round about three
        // times, so the last record sits somewhere past the start, whole.
        let turns = logged(4096, 1000);
        let (n, file) = turns.last().unwrap();
        assert_eq!(*n, 999);
        assert_eq!(file.len(), 4096);
        let last = b"record 0999\n";
        assert!(file.windows(last.len()).any(|w| w == last));
        let first = b"record 0000\n";
        assert!(
            !file.windows(first.len()).any(|w| w == first),
            "the first record is written over by now"
        );
    }
}
