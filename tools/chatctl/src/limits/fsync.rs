//! The fsync floor: append 256 bytes and fdatasync, `count` times; report the latency
//! percentiles and the serial rate — one durable write per fsync, with no batching.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::bench::histogram;

pub(super) fn run(dir: &Path, count: usize) -> anyhow::Result<()> {
    let path = dir.join(format!(".chatctl-fsync-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let record = [b'x'; 256];
    let mut latency = histogram();
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        let _ = latency.record(t.elapsed().as_micros().max(1) as u64);
    }
    let elapsed = started.elapsed();
    std::fs::remove_file(&path)?;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "fsync: {count} appends in {:.2} s = {:.0} fsyncs/s; latency ms p50 {:.3} p99 {:.3} max {:.3}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max())
    );
    Ok(())
}
