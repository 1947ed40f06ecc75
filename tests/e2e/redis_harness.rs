//! The Redis harness itself, against real `redis-server` processes: a
//! standalone server answers, dies and comes back empty on the same port; a
//! three-node cluster reaches `cluster_state:ok` and `redis-cli -c` follows
//! its redirects.

use std::net::TcpStream;

use harness::redis::{RedisCluster, RedisServer};

#[test]
fn standalone_server_answers_and_restarts_empty_on_the_same_port() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert!(redis.is_running());
    assert_eq!(redis.command(&["SET", "greeting", "hello", "EX", "60"]), "OK");
    assert_eq!(redis.command(&["GET", "greeting"]), "hello");
    let ttl: u64 = redis.command(&["TTL", "greeting"]).parse().expect("TTL answers a number");
    assert!((1..=60).contains(&ttl), "TTL {ttl} outside 1..=60");

    redis.stop();
    assert!(!redis.is_running());
    assert!(TcpStream::connect(harness::loopback(port)).is_err(), "port {port} still accepts after stop");

    redis.restart();
    assert!(redis.is_running());
    assert_eq!(redis.port, port, "restart moved the server");
    assert_eq!(redis.command(&["DBSIZE"]), "0", "the restarted server kept data");
    assert_eq!(redis.command(&["GET", "greeting"]), "");
}

#[test]
fn cluster_reaches_state_ok_and_follows_redirects() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    for (node, url) in cluster.nodes.iter().zip(&urls) {
        assert_eq!(*url, format!("redis://127.0.0.1:{}", node.port));
    }
    for i in 0..3 {
        let info = cluster.node_command(i, &["CLUSTER", "INFO"]);
        assert!(info.lines().any(|line| line.trim() == "cluster_state:ok"), "node {i}:\n{info}");
    }

    assert_eq!(cluster.command(&["SET", "k", "v"]), "OK");
    assert_eq!(cluster.command(&["GET", "k"]), "v");
    // The key lives on exactly one node: the one that owns its slot.
    let holders: Vec<usize> = (0..3).filter(|&i| cluster.node_command(i, &["DBSIZE"]) == "1").collect();
    assert_eq!(holders.len(), 1, "nodes holding the key: {holders:?}");
}
