//! A bare HTTP/2 client for tests of how servers treat connections (the gRPC idle timeout):
//! it speaks just enough of the protocol to open a connection and watch it close.

use std::io::{Read, Write};
use std::time::Duration;

/// The GOAWAY frame type.
pub const GOAWAY: u8 = 7;
/// The HEADERS frame type.
pub const HEADERS: u8 = 1;

/// An HTTP/2 client that opens a connection (preface and SETTINGS) and makes no call, then reads
/// frames until the server closes the connection (within 20 s, else the test fails): the frame
/// types it saw. It acknowledges the server's SETTINGS, and its PINGs when `answers_pings`.
pub fn idle_http2_client(addr: std::net::SocketAddr, answers_pings: bool) -> Vec<u8> {
    client(addr, None, answers_pings)
}

/// As [`idle_http2_client`] (answering PINGs), after starting a gRPC call of `path` whose
/// request never ends: its HEADERS are sent, no message and no end of stream ever follow.
pub fn unfinished_call_http2_client(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    client(addr, Some(path), true)
}

fn client(addr: std::net::SocketAddr, call: Option<&str>, answers_pings: bool) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    stream.write_all(&frame(4, 0, &[])).unwrap();
    if let Some(path) = call {
        stream.write_all(&request_headers(path)).unwrap();
    }
    let mut seen = Vec::new();
    loop {
        let mut head = [0u8; 9];
        match stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("the server kept the idle connection open (saw frames {seen:?})")
            }
            // Closed (an end of file, or a reset).
            Err(_) => return seen,
        }
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let mut payload = vec![0u8; length];
        if stream.read_exact(&mut payload).is_err() {
            return seen;
        }
        seen.push(kind);
        let reply = match (kind, flags & 1) {
            (4, 0) => Some(frame(4, 1, &[])),
            (6, 0) if answers_pings => Some(frame(6, 1, &payload)),
            _ => None,
        };
        if let Some(reply) = reply {
            // The server may already be gone.
            let _ = stream.write_all(&reply);
        }
    }
}

/// A HEADERS frame opening stream 1 with a gRPC request of `path`, without END_STREAM. The
/// header block is HPACK with literal fields only (no Huffman, no dynamic table).
fn request_headers(path: &str) -> Vec<u8> {
    let literal = |out: &mut Vec<u8>, value: &str| {
        out.push(value.len() as u8);
        out.extend(value.as_bytes());
    };
    // :method POST and :scheme http, indexed (static table 3 and 6).
    let mut block = vec![0x83, 0x86];
    // :path, :authority and content-type by static name index (4, 1, 31), literal values.
    block.push(0x04);
    literal(&mut block, path);
    block.push(0x01);
    literal(&mut block, "localhost");
    block.extend([0x0f, 0x10]);
    literal(&mut block, "application/grpc");
    block.push(0x00);
    literal(&mut block, "te");
    literal(&mut block, "trailers");
    let mut out = (block.len() as u32).to_be_bytes()[1..].to_vec();
    // HEADERS, END_HEADERS only, stream 1.
    out.extend([HEADERS, 0x4, 0, 0, 0, 1]);
    out.extend(block);
    out
}

/// An HTTP/2 frame on stream 0.
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags, 0, 0, 0, 0]);
    out.extend(payload);
    out
}
