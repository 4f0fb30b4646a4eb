//! TwelveData real-time price WebSocket: message types and the reconnecting client.

pub mod client;
pub mod protocol;
