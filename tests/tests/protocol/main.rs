//! Protocol v1 acceptance suite against `chatd` on port 0, over real WebSockets and HTTP.

mod authz;
mod bad_input;
mod blocks;
mod delivery;
mod dev_login;
mod helpers;
mod large_groups;
mod limits;
mod ordering;
mod presence;
mod push;
mod rest;
mod session;
