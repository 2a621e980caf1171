//! The least a durable path must do: append each record to a file and fdatasync before
//! acting on it, with every record that arrived meanwhile sharing the write and the fsync
//! (group commit). `limits relay --durable-dir` runs its deliveries through this, so the
//! gap between it and chatd is what the store, the order and the checks cost on top.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;

/// Bytes written in place, over and over: the file is filled once at start so that an
/// fdatasync never has to record a new size or new blocks, as SQLite's reused WAL.
const LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Hands records to the log's thread; `T` is what to do once a record is durable.
pub(super) struct DurableLog<T> {
    queue: mpsc::Sender<(Vec<u8>, T)>,
}

impl<T: Send + 'static> DurableLog<T> {
    /// Creates (or reuses) `dir/relay.log` and starts the thread that writes it, calling
    /// `on_durable` for each record after the fsync that covered it, in append order.
    pub(super) fn start(
        dir: &Path,
        on_durable: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<Self> {
        let file = preallocated(&dir.join("relay.log"))?;
        let (queue, appended) = mpsc::channel();
        std::thread::Builder::new()
            .name("relay-log".into())
            .spawn(move || {
                if let Err(error) = write_forever(&file, &appended, on_durable) {
                    eprintln!("relay log failed: {error}");
                    std::process::exit(1);
                }
            })?;
        Ok(Self { queue })
    }

    pub(super) fn append(&self, record: Vec<u8>, then: T) {
        // The thread only stops by exiting the process.
        let _ = self.queue.send((record, then));
    }
}

fn preallocated(path: &Path) -> std::io::Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() < LOG_BYTES {
        // A page at a time: filled in 1 MiB writes, the file sat in the page cache in
        // large folios, and every small record dirtied and wrote back a whole folio
        // (6.8 GB reached the disk in a 5 s run instead of ~35 MB).
        let zeros = vec![0u8; 4096];
        for _ in 0..LOG_BYTES / zeros.len() as u64 {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
    }
    Ok(file)
}

fn write_forever<T>(
    file: &File,
    appended: &mpsc::Receiver<(Vec<u8>, T)>,
    mut on_durable: impl FnMut(T),
) -> std::io::Result<()> {
    let mut batch = Vec::new();
    let mut bytes = Vec::new();
    let mut offset = 0u64;
    while let Ok(first) = appended.recv() {
        batch.push(first);
        batch.extend(appended.try_iter());
        bytes.clear();
        for (record, _) in &batch {
            bytes.extend_from_slice(record);
        }
        if offset + bytes.len() as u64 > LOG_BYTES {
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
