//! Real Redis for the end-to-end tests: a standalone `redis-server` a test can
//! kill and bring back on the same port, and a three-node Redis Cluster.
//!
//! Both run Debian's `redis-server` and `redis-cli` (`apt-get install
//! redis-server redis-tools`) with no persistence, each node in its own
//! temporary directory, so every start is empty. Tests read keys back with
//! `redis-cli` through [`RedisServer::command`] and [`RedisCluster::command`].

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// How long a fresh server gets to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new cluster gets to report `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried before giving up: a free port can be taken before the server binds it.
const PORT_ATTEMPTS: usize = 5;
/// What Redis's log says once it listens; the log is in our own directory,
/// so unlike a PING it cannot come from another process on the same port.
const READY_LINE: &str = "Ready to accept connections";
const CLUSTER_ARGS: &[&str] =
    &["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"];

/// A `redis-server` on 127.0.0.1, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    /// Arguments after the standalone defaults (a cluster node's).
    extra: Vec<String>,
}

impl RedisServer {
    /// Start an empty server on a free port and wait until it answers PING.
    pub fn start() -> RedisServer {
        // Below the ephemeral range (see `free_port_block`), so that while a
        // test has the server stopped no outgoing connection takes its port.
        RedisServer::start_with(&[], || crate::free_port_block(1))
    }

    fn start_with(extra: &[&str], pick_port: impl Fn() -> u16) -> RedisServer {
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let mut server = RedisServer {
                port: pick_port(),
                child: None,
                dir: tempfile::Builder::new().prefix("portcullis-redis-").tempdir().expect("temp dir for redis-server"),
                extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            };
            match server.launch() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server exited at start {PORT_ATTEMPTS} times (ports taken?); last log:\n{last_log}");
    }

    /// Spawn on `self.port` and wait until it is ready. `Err(log)` when the
    /// process exited first (most likely the port was taken meanwhile).
    fn launch(&mut self) -> Result<(), String> {
        // Redis reports bad arguments on stderr, before it opens its log file.
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("output.log"))
            .expect("open redis-server output file");
        // The log outlives restarts: only a ready line written after this one counts.
        let ready_before = self.logs().matches(READY_LINE).count();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--daemonize", "no", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone redis-server output file"))
            .stderr(output)
            .spawn()
            .expect("starting redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let mut exited = false;
        let ready = crate::wait_until(START_TIMEOUT, || {
            exited = !self.is_running();
            exited || (self.logs().matches(READY_LINE).count() > ready_before && ping(self.port))
        });
        if exited {
            self.child = None;
            return Err(self.logs());
        }
        if !ready {
            let logs = self.logs();
            self.stop();
            panic!("redis-server on port {} did not answer PING within {START_TIMEOUT:?}:\n{logs}", self.port);
        }
        Ok(())
    }

    /// `redis://127.0.0.1:PORT`, for the proxy's configuration.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server without warning (`SIGKILL`), as if Redis had died.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port, empty, and wait until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.launch() {
            panic!("redis-server did not come back on port {}:\n{log}", self.port);
        }
    }

    /// Whether the process is alive (not stopped and not crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// `redis-cli -p PORT ARGS...`, its output trimmed. An error reply comes
    /// back as text (`ERR ...`): redis-cli exits 0 on those.
    pub fn command(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        redis_cli(&[&["-h", "127.0.0.1", "-p", &port], args].concat())
    }

    /// The server's log and anything it printed, for failure messages.
    pub fn logs(&self) -> String {
        ["output.log", "redis.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.path().join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A three-master Redis Cluster (no replicas), all slots assigned; dropping
/// it kills every node.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start three nodes, join them with `redis-cli --cluster create`, and wait
    /// until every node reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_with(CLUSTER_ARGS, cluster_port)).collect();
        let cluster = RedisCluster { nodes };
        let addresses: Vec<String> = cluster.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let create = [&["--cluster", "create"], &addresses[..], &["--cluster-replicas", "0", "--cluster-yes"]].concat();
        redis_cli(&create);
        // `--cluster create` returns once the nodes agree on slots; the state
        // turns ok on each node a little later, after gossip.
        let ok = crate::wait_until(CLUSTER_TIMEOUT, || (0..cluster.nodes.len()).all(|i| cluster.node_ok(i)));
        if !ok {
            let infos: Vec<String> = (0..cluster.nodes.len())
                .map(|i| format!("node {i}:\n{}", cluster.node_command(i, &["CLUSTER", "INFO"])))
                .collect();
            panic!("the Redis cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}\n{}", infos.join("\n"));
        }
        cluster
    }

    /// Every node's `redis://` URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `redis-cli -c` against the first node: follows MOVED redirects, so a
    /// key is read or written wherever its slot lives.
    pub fn command(&self, args: &[&str]) -> String {
        let port = self.nodes[0].port.to_string();
        redis_cli(&[&["-c", "-h", "127.0.0.1", "-p", &port], args].concat())
    }

    /// `redis-cli` against node `i` only (no redirects): what that node holds.
    pub fn node_command(&self, i: usize, args: &[&str]) -> String {
        self.nodes[i].command(args)
    }

    fn node_ok(&self, i: usize) -> bool {
        self.node_command(i, &["CLUSTER", "INFO"]).lines().any(|line| line.trim() == "cluster_state:ok")
    }
}

/// A Redis Sentinel (`redis-server sentinel.conf --sentinel`) monitoring
/// one master as `mymaster`; killed when dropped.
pub struct RedisSentinel {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl RedisSentinel {
    /// The name the sentinel knows the master by.
    pub const MASTER_NAME: &'static str = "mymaster";

    /// Start a sentinel for `master` and wait until it names the master.
    pub fn start(master: &RedisServer) -> RedisSentinel {
        for _ in 0..PORT_ATTEMPTS {
            let port = crate::free_port_block(1);
            let dir = tempfile::Builder::new().prefix("portcullis-sentinel-").tempdir().expect("temp dir");
            // Sentinel rewrites its configuration file: it must be writable.
            let config = dir.path().join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\nsentinel monitor {} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {} 2000\n",
                dir.path().display(),
                Self::MASTER_NAME,
                master.port,
                Self::MASTER_NAME
            );
            std::fs::write(&config, text).expect("write sentinel.conf");
            let log = std::fs::File::create(dir.path().join("output.log")).expect("sentinel log");
            let child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone sentinel log"))
                .stderr(log)
                .spawn()
                .expect("starting redis-server --sentinel");
            let mut sentinel = RedisSentinel { port, child, _dir: dir };
            let master_port = master.port.to_string();
            let named = crate::wait_until(START_TIMEOUT, || {
                matches!(sentinel.child.try_wait(), Ok(None))
                    && ping(port)
                    && redis_cli(&[
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "SENTINEL",
                        "get-master-addr-by-name",
                        Self::MASTER_NAME,
                    ])
                    .contains(&master_port)
            });
            if named {
                return sentinel;
            }
            let _ = sentinel.child.kill();
        }
        panic!("redis-server --sentinel did not start {PORT_ATTEMPTS} times");
    }

    /// `redis://127.0.0.1:PORT` of the sentinel.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port whose cluster bus port (port + 10000) was free too a moment ago.
fn cluster_port() -> u16 {
    for _ in 0..100 {
        let port = crate::free_port_block(1);
        let Some(bus) = port.checked_add(10_000) else { continue };
        if TcpListener::bind(crate::loopback(bus)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port with a free cluster bus port (port + 10000)");
}

/// Whether a Redis on `port` answers PING (a raw RESP request, so that
/// readiness does not depend on redis-cli).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&crate::loopback(port), Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 5];
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && answer == *b"+PONG"
}

/// Run `redis-cli` with `args`; its stdout trimmed. Panics, with stderr, when
/// it fails (cannot connect, bad arguments, a failed `--cluster create`).
fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running redis-cli (apt-get install redis-tools)");
    assert!(
        output.status.success(),
        "redis-cli {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
