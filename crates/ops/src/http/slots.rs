//! Counting open connections per source address and in total, so one address (or all of
//! them together) cannot hold more sockets than configured.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The open connections of one listener.
pub struct ConnectionSlots {
    inner: Mutex<Counts>,
    max_total: usize,
    max_per_address: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    AddressFull,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ServerFull => "server_wide",
            Refusal::AddressFull => "per_address",
        }
    }
}

/// One open connection's place; freed when the last clone is dropped. A WebSocket keeps a
/// clone for as long as it lives, after its HTTP connection has handed it over.
#[derive(Clone)]
pub struct ConnectionSlot {
    _guard: Arc<SlotGuard>,
}

struct SlotGuard {
    slots: Arc<ConnectionSlots>,
    address: IpAddr,
}

impl ConnectionSlots {
    /// `max_per_address` 0 means no per-address cap.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(ConnectionSlots {
            inner: Mutex::new(Counts::default()),
            max_total,
            max_per_address,
        })
    }

    pub fn try_acquire(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut counts = self.inner.lock().expect("slots lock");
        if counts.total >= self.max_total {
            return Err(Refusal::ServerFull);
        }
        let from_address = counts.per_address.entry(address).or_default();
        if self.max_per_address > 0 && *from_address >= self.max_per_address {
            return Err(Refusal::AddressFull);
        }
        *from_address += 1;
        counts.total += 1;
        metrics::gauge!("chat_http_connections").set(counts.total as f64);
        Ok(ConnectionSlot {
            _guard: Arc::new(SlotGuard {
                slots: self.clone(),
                address,
            }),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().expect("slots lock").total
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut counts = self.slots.inner.lock().expect("slots lock");
        counts.total -= 1;
        if let Some(n) = counts.per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.address);
            }
        }
        metrics::gauge!("chat_http_connections").set(counts.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total_and_frees_on_drop() {
        let slots = ConnectionSlots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.try_acquire(a).unwrap();
        let a2 = slots.try_acquire(a).unwrap();
        assert_eq!(slots.try_acquire(a).err(), Some(Refusal::AddressFull));
        let _b1 = slots.try_acquire(b).unwrap();
        assert_eq!(slots.try_acquire(b).err(), Some(Refusal::ServerFull));
        // A clone (the WebSocket's) keeps the slot after the original is gone.
        let kept = a1.clone();
        drop(a1);
        assert_eq!(slots.open(), 3);
        drop(kept);
        drop(a2);
        assert_eq!(slots.open(), 1);
        assert!(slots.try_acquire(a).is_ok());
    }

    #[test]
    fn zero_means_no_per_address_cap() {
        let slots = ConnectionSlots::new(100, 0);
        let a: IpAddr = "::1".parse().unwrap();
        let held: Vec<_> = (0..50).map(|_| slots.try_acquire(a).unwrap()).collect();
        assert_eq!(slots.open(), held.len());
    }
}
