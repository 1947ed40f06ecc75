//! Shared structures on the request path under N threads: does anything
//! serialise the cores? Each structure is hammered by 1, 2 and 4 threads
//! for a fixed time, and the report gives operations per second in total
//! and per thread. A structure that scales keeps its per-thread rate as
//! threads are added (up to the number of cores).
//!
//! `cargo bench -p portcullis --bench contention` (about 20 s).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::{LimitStore, RateKey, RateLimit};
use policy::{ClaimValues, IssuerId, ScopeSet};
use portcullis::{
    digest, Identity, InFlightCount, KeyValue, LimitCounters, Limiter, Metrics, Revocations, StripedSwap, TokenCache,
};

const RUN: Duration = Duration::from_millis(1500);
const THREADS: [usize; 3] = [1, 2, 4];
const TOKENS: usize = 10_000;

/// Run `work(thread, iteration)` on `threads` threads for [`RUN`]; total
/// operations per second.
fn measure(threads: usize, work: Arc<dyn Fn(usize, u64) + Send + Sync>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let (stop, work) = (Arc::clone(&stop), Arc::clone(&work));
            std::thread::spawn(move || {
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        work(thread, done);
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

fn report(name: &str, work: Arc<dyn Fn(usize, u64) + Send + Sync>) {
    let mut single = 0.0;
    for threads in THREADS {
        let rate = measure(threads, Arc::clone(&work));
        if threads == 1 {
            single = rate;
        }
        println!(
            "{name:<40} {threads} thread(s): {:>12.0} ops/s total, {:>12.0} per thread, {:.2}x one thread",
            rate,
            rate / threads as f64,
            rate / single
        );
    }
}

fn identity(n: usize) -> Arc<Identity> {
    Arc::new(Identity {
        issuer: IssuerId(0),
        issuer_uid: 1,
        key_id: Some(1),
        subject: Some(format!("user-{n}").into()),
        jti: Some(format!("jti-{n}").into()),
        issued_at: Some(1),
        scopes: ScopeSet::new(["tasks:read", "tasks:write"]),
        headers: Box::new([]),
        valid_until: u64::MAX,
        claims: ClaimValues::default(),
        binding: portcullis::CertificateBinding::Unbound,
    })
}

fn limiter(limit: u32) -> Limiter {
    let config = RateLimit {
        name: "bench".into(),
        key: RateKey::ClientIp,
        limit,
        per: Duration::from_secs(1),
        burst: limit,
        max_keys: 100_000,
        ipv6_prefix: 64,
        store: LimitStore::Local,
    };
    Limiter::new(config, LimitCounters::unregistered())
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{cores} core(s) available; {RUN:?} per measurement\n");

    // The verified-token cache: 10,000 identities, every thread reading
    // all of them (the 10k-tokens scenario's hit path).
    let cache = Arc::new(TokenCache::new(TOKENS * 2));
    let digests: Arc<Vec<_>> = Arc::new((0..TOKENS).map(|n| digest(&format!("token-{n}"))).collect());
    for (n, key) in digests.iter().enumerate() {
        cache.insert(*key, identity(n));
    }
    report("token cache hit (10k entries)", {
        let (cache, digests) = (Arc::clone(&cache), Arc::clone(&digests));
        Arc::new(move |thread, i| {
            let key = &digests[(i as usize * 7919 + thread * 4099) % TOKENS];
            std::hint::black_box(cache.get(key));
        })
    });

    // A client-address limit: each thread its own clients (no shared key),
    // then every thread the same client (one hot key).
    let many = Arc::new(limiter(u32::MAX / 2));
    report("rate limit, distinct client addresses", {
        let many = Arc::clone(&many);
        Arc::new(move |thread, i| {
            let ip = IpAddr::V4(Ipv4Addr::from(((thread as u32) << 24) | (i as u32 % 50_000)));
            std::hint::black_box(many.check(KeyValue::Ip(ip)).is_ok());
        })
    });
    let hot = Arc::new(limiter(u32::MAX / 2));
    report("rate limit, one client address (hot key)", {
        let hot = Arc::clone(&hot);
        Arc::new(move |_, _| {
            std::hint::black_box(hot.check(KeyValue::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))).is_ok());
        })
    });

    // What every request records: a request counter and a latency
    // histogram (one handle each, resolved once, as the proxy does). Each
    // is shared by every worker thread: atomic adds to the same words.
    let requests = prometheus::IntCounter::new("bench_requests_total", "bench").ok();
    let latency = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("bench_seconds", "bench")).ok();
    if let (Some(requests), Some(latency)) = (requests, latency) {
        report("metrics: request counter + histogram", {
            Arc::new(move |_, i| {
                requests.inc();
                latency.observe((i % 1000) as f64 * 1e-6);
            })
        });
    }

    // The same two as portcullis records them: each thread in its own
    // stripe's copy (handles resolved once per thread, as RouteMetrics
    // does), summed when scraped.
    let metrics = Arc::new(Metrics::new());
    report("metrics: the same, striped per thread", {
        let metrics = Arc::clone(&metrics);
        Arc::new(move |_, i| {
            thread_local! {
                static HANDLES: std::cell::OnceCell<(prometheus::IntCounter, prometheus::Histogram)> =
                    const { std::cell::OnceCell::new() };
            }
            HANDLES.with(|handles| {
                let (requests, latency) = handles.get_or_init(|| {
                    (
                        metrics.requests.local().with_label_values(&["/bench", "allow"]),
                        metrics.request_duration.local().with_label_values(&["/bench"]),
                    )
                });
                requests.inc();
                latency.observe((i % 1000) as f64 * 1e-6);
            });
        })
    });

    // What every request holds from start to end: the runtime it is
    // decided under, and its place in the in-flight count. Shared, each is
    // one word that every request of every thread writes twice (an `Arc`'s
    // reference count, a counter); striped, each thread writes its own.
    let runtime = Arc::new(arc_swap::ArcSwap::from_pointee(vec![0u8; 64]));
    report("runtime held: one shared Arc (load_full)", {
        let runtime = Arc::clone(&runtime);
        Arc::new(move |_, _| {
            std::hint::black_box(runtime.load_full());
        })
    });
    let striped_runtime = Arc::new(StripedSwap::new(vec![0u8; 64]));
    report("runtime held: per stripe (StripedSwap::hold)", {
        let runtime = Arc::clone(&striped_runtime);
        Arc::new(move |_, _| {
            std::hint::black_box(runtime.hold());
        })
    });
    let shared_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    report("in-flight count: one shared counter", {
        let count = Arc::clone(&shared_count);
        Arc::new(move |_, _| {
            count.fetch_add(1, Ordering::AcqRel);
            std::hint::black_box(Arc::clone(&count));
            count.fetch_sub(1, Ordering::AcqRel);
        })
    });
    let striped_count = Arc::new(InFlightCount::new());
    report("in-flight count: per stripe (InFlightCount)", {
        let count = Arc::clone(&striped_count);
        Arc::new(move |_, _| {
            std::hint::black_box(count.enter());
        })
    });

    // The revocation check on every authenticated request: one atomic load
    // of the denylist (empty here, the common case).
    let revocations = Revocations::new();
    report("revocation denylist load", {
        let revocations = Arc::clone(&revocations);
        Arc::new(move |_, _| {
            std::hint::black_box(revocations.load().is_empty());
        })
    });
}
