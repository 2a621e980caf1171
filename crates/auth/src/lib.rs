//! Authentication: HS256 JWTs that name a user (`sub`) and optionally a device, and the
//! secret file `chatd` keeps when no secret is configured.
#![forbid(unsafe_code)]

mod jwt;
mod secret_file;

pub use jwt::{AuthError, Claims, Identity, JwtKeys};
pub use secret_file::{load_or_create_secret, read_secret, SECRET_FILE_NAME};
