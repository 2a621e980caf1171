//! What a process holds, read from /proc: resident memory now and at its peak, threads.

/// One reading of `/proc/{pid}/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resident set size now, in KiB.
    pub rss_kib: u64,
    /// The highest resident set size so far, in KiB.
    pub peak_rss_kib: u64,
    /// Resident pages the process holds itself (anonymous and shared memory), in KiB: the
    /// resident set without the file pages it maps. chatd maps its database once per
    /// connection, and each mapping's pages count in the resident set again, although
    /// they are the kernel's page cache, shared and given back under pressure.
    pub held_kib: u64,
    pub threads: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing from /proc/{pid}/status"))
        };
        Usage {
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
            held_kib: field("RssAnon:") + field("RssShmem:"),
            threads: field("Threads:"),
        }
    }

    pub fn rss_mib(&self) -> u64 {
        self.rss_kib / 1024
    }

    pub fn peak_rss_mib(&self) -> u64 {
        self.peak_rss_kib / 1024
    }

    pub fn held_mib(&self) -> u64 {
        self.held_kib / 1024
    }
}
