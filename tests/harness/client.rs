//! A raw HTTP/1.1 client: the request goes out byte for byte as written.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// Send raw bytes and read one response. The connection is closed after.
pub fn send_raw(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request)?;
    read_response(&mut stream)
}

/// Send raw bytes in one write (several pipelined requests, say) and read
/// responses until the server closes the connection, `expected` have come,
/// or a read times out. `closed` tells whether the server closed it.
pub fn send_pipelined(addr: SocketAddr, requests: &[u8], expected: usize) -> io::Result<(Vec<Response>, bool)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(requests)?;
    let mut buffer = Vec::new();
    let mut responses = Vec::new();
    while responses.len() < expected {
        match read_buffered(&mut stream, &mut buffer) {
            Ok(response) => responses.push(response),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok((responses, true)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok((responses, false))
            }
            Err(e) => return Err(e),
        }
    }
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let closed = buffer.is_empty() && matches!(stream.read(&mut [0u8; 1]), Ok(0));
    Ok((responses, closed))
}

/// A request with `Connection: close`; `headers` are sent as given.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", addr.port());
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    send_raw(addr, &bytes).unwrap_or_else(|e| panic!("{method} {target} to {addr}: {e}"))
}

pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", target, headers, b"")
}

/// `GET` with a bearer token.
pub fn get_with_token(addr: SocketAddr, target: &str, token: &str) -> Response {
    let authorization = format!("Bearer {token}");
    get(addr, target, &[("Authorization", &authorization)])
}

fn read_response(stream: &mut TcpStream) -> io::Result<Response> {
    read_buffered(stream, &mut Vec::new())
}

/// One response from `buffer` (bytes already read) and the stream; what
/// follows it stays in `buffer`. A body without framing runs to the close.
fn read_buffered(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Response> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut body = buffer.split_off(head_end + 4);
    buffer.clear();
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        *buffer = body.split_off(length.min(body.len()));
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some((decoded, used)) = decode_chunked(&body) {
                *buffer = body.split_off(used);
                body = decoded;
                break;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if status != 204 && status != 304 && !(100..200).contains(&status) {
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Response { status, headers, body })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The decoded body and the bytes it took, once the whole chunked stream
/// is there.
fn decode_chunked(all: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut data = all;
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            // The last chunk, no trailers, and the final CRLF.
            let crlf = if data.starts_with(b"\r\n") { 2 } else { 0 };
            let used = all.len() - data.len() + crlf;
            return Some((out, used));
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
