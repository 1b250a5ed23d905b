//! The socket protocol between the daemon and `slim`: request/response
//! types in one place ([`types`]), the bounds on what a client may send
//! ([`limits`]), the server ([`server`]) and the client ([`client`]).

pub mod client;
pub mod limits;
pub mod server;
pub mod types;
