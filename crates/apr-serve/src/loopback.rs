//! For tests of code that calls servers: reading one HTTP request off a
//! socket, as scripted servers on a loopback socket do.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// Reads one request: its path and its JSON body (`Value::Null` when the
/// body is not JSON). `None` when the stream ends first.
pub fn read_request(stream: &mut TcpStream) -> Option<(String, Value)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}
