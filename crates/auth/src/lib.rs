//! Authentication: JWTs that name a user (`sub`) and optionally bind a device (HS256 with
//! our secret, or a login service's public keys), the
//! secret file `chatd` keeps when no secret is configured, and the short-lived tokens
//! services present to each other on internal calls.
#![forbid(unsafe_code)]

mod jwt;
mod secret_file;
mod service;
mod token_args;

pub use jwt::{AuthError, Claims, Identity, JwtKeys, TokenPolicy};
pub use secret_file::{load_or_create_secret, read_secret, SECRET_FILE_NAME};
pub use service::{ServiceKeys, MIN_SERVICE_SECRET_BYTES, SERVICE_AUDIENCE};
pub use token_args::TokenArgs;
