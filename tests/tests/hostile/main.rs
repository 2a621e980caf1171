//! Hostile and merely eager clients against the real servers: each test plays one client
//! that used to take a server down (or was wrongly punished) and asserts the bound that
//! now holds — in memory, connections, rates and replies.

mod amplification;
mod blocks;
mod cluster;
mod connections;
mod floods;
mod helpers;
mod outbox;
mod presence;
mod push;
mod retained;
mod slowloris;
