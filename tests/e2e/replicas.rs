//! Several replicas sharing state in a real Redis (private `redis-server`
//! processes, and a real 3-node Redis Cluster): one login limit across
//! replicas, revocations reaching every replica within a second (and a
//! replica started later), what each `on_store_error` mode does while Redis
//! is dead, and recovery when it comes back.

use std::time::{Duration, Instant};

use harness::client::{request, Response};
use harness::config::TestConfig;
use harness::fixtures::{HS_ENV, HS_SECRET};
use harness::keys::{claims, jwks, TestKey};
use harness::now;
use harness::proxy::{run_cli, Proxy, ProxyOptions};
use harness::redis::{RedisCluster, RedisSentinel, RedisServer};
use harness::servers::{KeyServer, Upstream};
use harness::wait_until;

const HASH_ENV: &str = "PORTCULLIS_REDIS_KEY";
const HASH_KEY: &str = "a-test-hashing-key-of-32-bytes!!";
const ADMIN_ENV: &str = "PORTCULLIS_ADMIN_TOKEN";
const ADMIN_TOKEN: &str = "an-admin-token-for-tests-only-32";
const ENV: [(&str, &str); 3] = [(HS_ENV, HS_SECRET), (HASH_ENV, HASH_KEY), (ADMIN_ENV, ADMIN_TOKEN)];

/// An upstream, a key server, and the configuration replicas share.
struct Fleet {
    /// Kept running for the replicas.
    _upstream: Upstream,
    keys: KeyServer,
    rsa: TestKey,
    config: String,
}

impl Fleet {
    /// `redis` is the `redis:` section's body (indented two spaces).
    fn new(redis: &str, configure: impl FnOnce(TestConfig) -> TestConfig) -> Fleet {
        let upstream = Upstream::start("api");
        let rsa = TestKey::rsa("rsa-1");
        let keys = KeyServer::start(jwks(&[&rsa]));
        let mut sections = format!("admin_token_env: {ADMIN_ENV}\n");
        if !redis.is_empty() {
            sections.push_str(&format!("redis:\n{redis}  hash_key_env: {HASH_ENV}\n  command_timeout: 200ms\n"));
        }
        let config = configure(TestConfig::new(&keys.issuer(), &upstream.url()).extra(&sections)).render();
        Fleet { _upstream: upstream, keys, rsa, config }
    }

    fn replica(&self) -> Proxy {
        Proxy::start_with(ProxyOptions { config: &self.config, env: &ENV, wait_ready: true })
    }

    /// A token with this `jti`, issued at `iat`.
    fn token(&self, sub: &str, jti: &str, iat: u64) -> String {
        let mut claims = claims(&self.keys.issuer(), "todo-api", sub, "tasks:read");
        claims["jti"] = jti.into();
        claims["iat"] = iat.into();
        self.rsa.sign(&claims)
    }
}

fn standalone(redis: &RedisServer) -> String {
    format!("  url: \"{}\"\n", redis.url())
}

fn get(proxy: &Proxy, target: &str, headers: &[(&str, &str)]) -> Response {
    request(proxy.addr, "GET", target, headers, b"")
}

fn read_with(proxy: &Proxy, token: &str) -> u16 {
    get(proxy, "/todos/1", &[("Authorization", &format!("Bearer {token}"))]).status
}

/// A login limit of 5 per minute per username, in Redis, on `/public/**`.
fn login_limit(config: TestConfig, on_error: &str) -> TestConfig {
    config
        .rate_limit(
            "login",
            &format!("{{key: \"header:x-user\", limit: 5, per: 1m, store: redis, on_store_error: {on_error}}}"),
        )
        .route_option("/public/**", "rate_limit", "login")
}

fn shared_limit_holds_across(replicas: &[Proxy]) {
    let mut allowed = 0;
    for i in 0..15 {
        let answer = get(&replicas[i % replicas.len()], "/public/login", &[("X-User", "alice")]);
        match answer.status {
            200 => allowed += 1,
            429 => {
                assert!(answer.header("retry-after").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
                assert!(answer.header("ratelimit-policy").is_some_and(|p| p.contains("\"login\";q=5")));
            }
            other => panic!("unexpected {other}: {}", answer.text()),
        }
    }
    assert_eq!(allowed, 5, "exactly the burst, in total, across {} replicas", replicas.len());
    for replica in replicas {
        assert_eq!(get(replica, "/public/login", &[("X-User", "bob")]).status, 200, "another user is unaffected");
    }
}

#[test]
fn three_replicas_share_one_login_limit_and_redis_never_sees_a_username() {
    let redis = RedisServer::start();
    let fleet = Fleet::new(&standalone(&redis), |c| login_limit(c, "local"));
    let replicas = [fleet.replica(), fleet.replica(), fleet.replica()];
    shared_limit_holds_across(&replicas);

    let keys = redis.command(&["--scan", "--pattern", "*"]);
    assert!(!keys.is_empty());
    for key in keys.lines() {
        assert!(key.starts_with("portcullis:rl:"), "{key}");
        assert!(!key.contains("alice") && !key.contains("bob"), "{key}");
        let ttl: i64 = redis.command(&["PTTL", key]).parse().unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "every key expires within one period: {key} {ttl}");
    }
    let metrics = replicas[0].metrics();
    assert!(
        metrics.contains("portcullis_rate_limit_decisions_total{limit=\"login\",result=\"allowed\",store=\"redis\"}")
    );
    assert!(metrics.contains("portcullis_redis_commands_total{operation=\"rate_limit\",result=\"ok\"}"));
}

#[test]
fn a_revocation_reaches_every_replica_within_a_second_and_a_replica_started_later() {
    let redis = RedisServer::start();
    let fleet = Fleet::new(&standalone(&redis), |c| c);
    let replicas = [fleet.replica(), fleet.replica(), fleet.replica()];
    let issued = now() - 60;
    let leaked = fleet.token("alice", "jti-leaked", issued);
    let other = fleet.token("alice", "jti-other", issued);
    for replica in &replicas {
        assert_eq!(read_with(replica, &leaked), 200, "cached on every replica before the revocation");
    }

    let config = replicas[0].config_path.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(&["revoke", "-c", config, "--jti", "jti-leaked"], &ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("jti-leaked"), "{stdout}");
    let revoked_at = Instant::now();
    for replica in &replicas {
        assert!(
            wait_until(Duration::from_secs(1), || read_with(replica, &leaked) == 401),
            "replica {} still accepts the revoked token {:?} after the revocation",
            replica.addr,
            revoked_at.elapsed()
        );
        let answer = get(replica, "/todos/1", &[("Authorization", &format!("Bearer {leaked}"))]);
        assert!(answer.header("www-authenticate").is_some_and(|c| c.contains("revoked")), "{:?}", answer.headers);
        assert_eq!(read_with(replica, &other), 200, "another token of the same user still works");
    }
    let late = fleet.replica();
    assert_eq!(read_with(&late, &leaked), 401, "a replica started later refuses it from its first request");

    // Redis restarted empty: the replicas keep the revocation and write it
    // back, so a replica started after that still refuses the token.
    let mut redis = redis;
    redis.stop();
    redis.restart();
    assert!(
        wait_until(Duration::from_secs(5), || redis
            .command(&["ZRANGE", "portcullis:revocations", "0", "-1"])
            .contains("jti-leaked")),
        "the revocation was not written back to an empty Redis"
    );
    for replica in &replicas {
        assert_eq!(read_with(replica, &leaked), 401);
    }
    assert_eq!(read_with(&fleet.replica(), &leaked), 401, "a replica started after the wipe");

    // Every token of a subject issued before now; a token issued after
    // the revocation is accepted.
    let (code, stdout, stderr) = run_cli(&["revoke", "-c", config, "--subject", "alice", "--issuer", "sso"], &ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(wait_until(Duration::from_secs(1), || read_with(&late, &other) == 401));
    let fresh = fleet.token("alice", "jti-fresh", now() + 1);
    assert_eq!(read_with(&late, &fresh), 200);
    assert_eq!(read_with(&replicas[2], &fresh), 200);
    let metrics = late.metrics();
    assert!(metrics.contains("portcullis_revocations 2"), "{}", harness_lines(&metrics, "revocations"));
}

#[test]
fn the_admin_endpoint_revokes_only_with_the_admin_token_with_or_without_redis() {
    for with_redis in [true, false] {
        let redis = RedisServer::start();
        let fleet = Fleet::new(if with_redis { standalone(&redis) } else { String::new() }.as_str(), |c| c);
        let replica = fleet.replica();
        let token = fleet.token("bob", "jti-admin", now() - 5);
        assert_eq!(read_with(&replica, &token), 200);
        let body = br#"{"jti": "jti-admin"}"#;
        let post = |authorization: &str| {
            let mut headers = vec![("Content-Type", "application/json")];
            if !authorization.is_empty() {
                headers.push(("Authorization", authorization));
            }
            request(replica.admin, "POST", "/revocations", &headers, body)
        };
        assert_eq!(post("").status, 401);
        assert_eq!(post("Bearer not-the-admin-token-of-32-bytes").status, 401);
        assert_eq!(read_with(&replica, &token), 200, "a refused write changes nothing");
        let done = post(&format!("Bearer {ADMIN_TOKEN}"));
        assert_eq!(done.status, 200, "{}", done.text());
        assert_eq!(done.json()["shared"], with_redis);
        assert_eq!(read_with(&replica, &token), 401, "applied at once on the replica that took it");
        let bad = revoke_as_admin(&replica, br#"{"jti": "a", "sub": "b"}"#);
        assert_eq!(bad.status, 400, "{}", bad.text());
        // Issuers by name or iss; anything else would match nothing.
        let by_name = revoke_as_admin(&replica, br#"{"jti": "other", "iss": "sso"}"#);
        assert_eq!(by_name.status, 200, "{}", by_name.text());
        assert_eq!(by_name.json()["revoked"]["iss"], fleet.keys.issuer().as_str());
        let unknown = revoke_as_admin(&replica, br#"{"jti": "other", "iss": "https://nowhere.example"}"#);
        assert_eq!(unknown.status, 400, "{}", unknown.text());
        if with_redis {
            let members = redis.command(&["ZRANGE", "portcullis:revocations", "0", "-1"]);
            assert!(members.contains("jti-admin"), "{members}");
        }
        assert!(!replica.logs().contains(ADMIN_TOKEN), "the admin token reached the log");
    }
}

#[test]
fn while_redis_is_dead_each_on_store_error_mode_does_what_it_says_and_it_recovers() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::new(&standalone(&redis), |c| {
        c.rate_limit("fallback", "{key: client_ip, limit: 2, per: 1m, store: redis, on_store_error: local}")
            .rate_limit("open", "{key: client_ip, limit: 2, per: 1m, store: redis, on_store_error: allow}")
            .rate_limit("closed", "{key: client_ip, limit: 2, per: 1m, store: redis, on_store_error: deny}")
            .leading_route(&[("path", "/local/**"), ("public", "true"), ("rate_limit", "fallback")])
            .leading_route(&[("path", "/allow/**"), ("public", "true"), ("rate_limit", "open")])
            .leading_route(&[("path", "/deny/**"), ("public", "true"), ("rate_limit", "closed")])
    });
    let replica = fleet.replica();
    assert!(wait_until(Duration::from_secs(5), || get(&replica, "/deny/x", &[]).status == 200), "Redis in use");
    redis.stop();

    // A revocation while Redis is down: in force here at once (202), and
    // written to Redis once it is back.
    let token = fleet.token("dave", "jti-while-down", now() - 5);
    assert_eq!(read_with(&replica, &token), 200);
    let pending = revoke_as_admin(&replica, br#"{"jti": "jti-while-down"}"#);
    assert_eq!((pending.status, pending.json()["pending"].as_bool()), (202, Some(true)), "{}", pending.text());
    assert_eq!(read_with(&replica, &token), 401);

    let mut slowest = Duration::ZERO;
    let mut timed = |target: &str| {
        let started = Instant::now();
        let answer = get(&replica, target, &[]);
        slowest = slowest.max(started.elapsed());
        answer.status
    };
    let local: Vec<u16> = (0..4).map(|_| timed("/local/x")).collect();
    assert_eq!(local, [200, 200, 429, 429], "this replica's own limiter takes over");
    assert!((0..4).all(|_| timed("/allow/x") == 200), "allow lets everything through");
    let denied = get(&replica, "/deny/x", &[]);
    assert_eq!(denied.status, 503, "{}", denied.text());
    assert_eq!(denied.header("retry-after"), Some("1"));
    assert!((0..4).all(|_| timed("/healthz") == 200), "routes without limits never see Redis");
    assert!(slowest < Duration::from_secs(1), "a request waited {slowest:?} for a dead Redis");
    let metrics = replica.metrics();
    assert!(metrics.contains("decision=\"limit_unavailable\""));
    assert!(metrics.contains("portcullis_redis_breaker_open 1"), "{}", harness_lines(&metrics, "redis"));
    let ready = get_admin(&replica, "/readyz");
    assert_eq!(ready.status, 200, "a dead Redis does not fail readiness");
    assert_eq!(ready.json()["redis"], "unavailable");

    redis.restart();
    assert!(
        wait_until(Duration::from_secs(10), || get(&replica, "/deny/y", &[]).status == 200),
        "shared limits come back by themselves when Redis does"
    );
    assert!(replica.logs().contains("Redis answers again"));
    assert!(wait_until(Duration::from_secs(5), || get_admin(&replica, "/readyz").json()["redis"] == "connected"));
    assert!(
        wait_until(Duration::from_secs(35), || redis
            .command(&["ZRANGE", "portcullis:revocations", "0", "-1"])
            .contains("jti-while-down")),
        "the revocation made while Redis was down never reached it"
    );
}

/// `POST /revocations` with the admin token.
fn revoke_as_admin(proxy: &Proxy, body: &[u8]) -> Response {
    request(proxy.admin, "POST", "/revocations", &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))], body)
}

fn get_admin(proxy: &Proxy, path: &str) -> Response {
    request(proxy.admin, "GET", path, &[], b"")
}

#[test]
fn readiness_can_require_redis() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    redis.stop();
    let fleet = Fleet::new(&format!("  url: \"redis://127.0.0.1:{port}\"\n  required_for_readiness: true\n"), |c| c);
    let replica = Proxy::start_with(ProxyOptions { config: &fleet.config, env: &ENV, wait_ready: false });
    let ready = get_admin(&replica, "/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
    // Every replica with Redis waits for the revocations first.
    assert!(ready.text().contains("revocations have not been read"), "{}", ready.text());
    // Down for a while (the retries have reached their longest wait), then
    // up: the replica is ready within about a second (2 s allowed).
    std::thread::sleep(Duration::from_secs(3));
    redis.restart();
    let up = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || get_admin(&replica, "/readyz").status == 200),
        "not ready {:?} after Redis came up",
        up.elapsed()
    );
    // Once read, a Redis outage fails readiness only when required.
    redis.stop();
    assert!(wait_until(Duration::from_secs(5), || {
        let ready = get_admin(&replica, "/readyz");
        ready.status == 503 && ready.text().contains("Redis is unavailable")
    }));
}

#[test]
fn a_redis_cluster_shares_limits_and_revocations() {
    let cluster = RedisCluster::start();
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let fleet = Fleet::new(&format!("  mode: cluster\n  urls: [{}]\n", urls.join(", ")), |c| login_limit(c, "deny"));
    let replicas = [fleet.replica(), fleet.replica()];
    assert!(
        wait_until(Duration::from_secs(10), || get(&replicas[0], "/public/warmup", &[("X-User", "w")]).status == 200)
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(&replicas[1], "/public/warmup", &[("X-User", "w2")]).status == 200)
    );
    shared_limit_holds_across(&replicas);

    let token = fleet.token("carol", "jti-cluster", now() - 5);
    assert_eq!(read_with(&replicas[1], &token), 200);
    let config = replicas[0].config_path.to_str().unwrap();
    let (code, stdout, stderr) = run_cli(&["revoke", "-c", config, "--jti", "jti-cluster"], &ENV);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for replica in &replicas {
        assert!(wait_until(Duration::from_secs(1), || read_with(replica, &token) == 401));
    }
}

#[test]
fn replicas_find_the_master_through_sentinel() {
    let master = RedisServer::start();
    let sentinel = RedisSentinel::start(&master);
    let section =
        format!("  mode: sentinel\n  urls: [\"{}\"]\n  master_name: {}\n", sentinel.url(), RedisSentinel::MASTER_NAME);
    let fleet = Fleet::new(&section, |c| login_limit(c, "deny"));
    let replicas = [fleet.replica(), fleet.replica()];
    for replica in &replicas {
        assert!(
            wait_until(Duration::from_secs(10), || get(replica, "/public/warmup", &[("X-User", "w")]).status != 503)
        );
    }
    master.command(&["FLUSHALL"]);
    shared_limit_holds_across(&replicas);
    assert!(!master.command(&["--scan", "--pattern", "portcullis:rl:*"]).is_empty(), "the keys are on the master");
}

#[test]
fn check_names_redis_mistakes_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    let config = TestConfig::new("https://sso.example.com", "http://127.0.0.1:9")
        .extra("redis:\n  url: \"redis://user:pw@127.0.0.1:6379\"\n  hash_key_env: NOT_SET_ANYWHERE\n")
        .rate_limit("x", "{key: client_ip, limit: 1, per: 1m, store: redis, on_store_error: maybe}")
        .render();
    std::fs::write(&path, &config).unwrap();
    let (code, stdout, stderr) = run_cli(&["check", "-c", path.to_str().unwrap()], &[]);
    let output = format!("{stdout}{stderr}");
    assert_ne!(code, 0, "{output}");
    let line_of = |needle: &str| config.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let file = path.display();
    assert!(output.contains(&format!("{file}:{}:", line_of("user:pw"))), "{output}");
    assert!(output.contains("no credentials in the URL"), "{output}");
    assert!(output.contains("'maybe' is not one of: local, allow, deny"), "{output}");
    assert!(!output.contains(":pw@") || output.contains("no credentials"), "{output}");

    let config = TestConfig::new("https://sso.example.com", "http://127.0.0.1:9")
        .rate_limit("x", "{key: client_ip, limit: 1, per: 1m, store: redis}")
        .render();
    std::fs::write(&path, &config).unwrap();
    let (code, stdout, _) = run_cli(&["check", "-c", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(stdout.contains("store: redis needs a 'redis:' section"), "{stdout}");
}

/// The lines of a metrics text that mention `word`, for failure messages.
fn harness_lines(metrics: &str, word: &str) -> String {
    metrics.lines().filter(|l| l.contains(word) && !l.starts_with('#')).collect::<Vec<_>>().join("\n")
}
