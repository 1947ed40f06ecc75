//! Log levels mean something: a client that hangs up is routine (counted,
//! logged at debug), never an ERROR line that would page someone.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use harness::fixtures::World;
use harness::servers::Behaviour;
use harness::wait_until;

const HANG_UPS: usize = 10;

/// Open a connection, send `head` (and no more), and hang up after `wait`.
fn hang_up(world: &World, head: &str, wait: Duration) {
    let mut stream = TcpStream::connect(world.proxy.addr).expect("connect to the proxy");
    stream.write_all(head.as_bytes()).expect("send the request head");
    std::thread::sleep(wait);
    drop(stream);
}

#[test]
fn clients_hanging_up_mid_request_are_counted_and_never_logged_as_errors() {
    let world = World::start();
    world.upstream.set_behaviour(Behaviour::Delay(Duration::from_millis(500)));
    let token = world.token("alice", "tasks:read tasks:write");
    let disconnects = || world.proxy.metric("portcullis_client_disconnects_total").unwrap_or(0.0);
    assert_eq!(disconnects(), 0.0, "no disconnects before the test");

    for _ in 0..HANG_UPS {
        // Half a body: the proxy is reading it for the upstream when the client goes.
        let head = format!(
            "POST /todos/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{{\"partial\":"
        );
        hang_up(&world, &head, Duration::from_millis(50));
        // The whole request, then gone while the upstream is still thinking.
        let head = format!("GET /todos/1 HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {token}\r\n\r\n");
        hang_up(&world, &head, Duration::from_millis(50));
    }

    assert!(
        wait_until(Duration::from_secs(10), || disconnects() >= (2 * HANG_UPS) as f64),
        "both kinds of hang-up are counted as disconnects: {} of at least {}\n{}",
        disconnects(),
        2 * HANG_UPS,
        world.proxy.logs()
    );
    let logs = world.proxy.logs();
    let errors: Vec<&str> = logs.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "no ERROR line for clients hanging up:\n{}", errors.join("\n"));
    // The proxy still serves.
    let ok = harness::client::get_with_token(world.proxy.addr, "/todos/2", &token);
    assert_eq!(ok.status, 200);
}
