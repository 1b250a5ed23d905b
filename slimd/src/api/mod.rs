//! The socket protocol between the daemon and `slim`: request/response
//! types in one place ([`types`]), the server ([`server`]) and the client
//! ([`client`]).

pub mod client;
pub mod server;
pub mod types;
