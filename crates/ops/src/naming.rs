//! Default names of process instances (gateways, chat services, push consumers).

/// `prefix-` and six random hex digits, e.g. `gw-3fa9c1`.
pub fn instance_name(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random_range(0..0xFF_FFFFu32))
}
