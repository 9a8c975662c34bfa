//! Loopback port picking for processes that must be told their ports up front.

use std::net::TcpListener;

/// A currently free port on 127.0.0.1. The OS may hand it out again before the caller
/// binds it; acceptable for benchmarks and tests that start a handful of listeners.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
