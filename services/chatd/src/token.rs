//! `chatd token`: mints a development token with the same secret the server uses.

use anyhow::Context;
use chat_auth::{read_secret, JwtKeys};

use crate::cli::TokenArgs;

pub fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let secret = match args.jwt_secret.clone().filter(|s| !s.is_empty()) {
        Some(secret) => secret,
        None => read_secret(&args.data_dir)
            .context("read the data dir's secret")?
            .with_context(|| {
                format!(
                    "no CHAT_JWT_SECRET and no secret in {} (start `chatd serve` once, or pass --data-dir)",
                    args.data_dir.display()
                )
            })?,
    };
    let keys = JwtKeys::new(secret.as_bytes()).context("invalid secret")?;
    keys.mint(&args.user, args.device.as_deref(), args.ttl)
        .context("cannot mint token")
}
