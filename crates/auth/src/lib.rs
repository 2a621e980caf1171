//! Authentication: HS256 JWTs that name a user (`sub`) and optionally a device, the
//! secret file `chatd` keeps when no secret is configured, and the short-lived tokens
//! services present to each other on internal calls.
#![forbid(unsafe_code)]

mod jwt;
mod secret_file;
mod service;

pub use jwt::{AuthError, Claims, Identity, JwtKeys};
pub use secret_file::{load_or_create_secret, read_secret, SECRET_FILE_NAME};
pub use service::{ServiceKeys, MIN_SERVICE_SECRET_BYTES, SERVICE_AUDIENCE};
