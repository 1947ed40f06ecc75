//! A real gRPC server and client: Python's `grpcio` (from PyPI) running
//! `tests/grpc/grpc_tool.py`, h2c on loopback. The server echoes the
//! identity metadata the proxy added; the client reports the status code
//! and metadata its library saw.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc/grpc_tool.py")
}

fn python() -> Command {
    let mut command = Command::new("python3");
    command.arg(tool());
    command
}

/// The gRPC server, stopped when dropped (and by itself when the test
/// process dies: it exits when its stdin closes).
pub struct GrpcServer {
    child: Child,
    _stdin: ChildStdin,
    pub addr: SocketAddr,
}

impl GrpcServer {
    pub fn start() -> GrpcServer {
        let mut child = python()
            .arg("server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tests/grpc/grpc_tool.py (python3 with grpcio is needed: pip install grpcio)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let line = crate::ready_line(stdout, "the gRPC server", std::time::Duration::from_secs(30));
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the gRPC server did not start ({e}): {line:?}; is grpcio installed?"));
        let port = ready["port"].as_u64().and_then(|p| u16::try_from(p).ok()).expect("port");
        GrpcServer { child, _stdin: stdin, addr: crate::loopback(port) }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Call `method` at `target` with an optional bearer `token`, unary or
/// server-streaming; what the client library reported: `code` (`OK` or
/// the status name), `details`, `messages`, `trailing` and `initial`
/// metadata.
pub fn call(target: SocketAddr, method: &str, token: Option<&str>, streaming: bool) -> serde_json::Value {
    let mut command = python();
    command.arg("call").arg(target.to_string()).arg(method);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    if streaming {
        command.arg("--stream");
    }
    let output = command.stderr(Stdio::inherit()).output().expect("running the gRPC client");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("the gRPC client printed no answer ({e}): {}", String::from_utf8_lossy(&output.stdout))
    })
}
