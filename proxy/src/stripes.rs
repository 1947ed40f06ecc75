//! What every request updates, kept per stripe of worker threads so that
//! no word is written by every core on every request.
//!
//! One atomic word that all cores write (a counter, an `Arc`'s reference
//! count) bounces between their caches: with two threads, a shared counter
//! and histogram did 0.24× the work of one (`benches/contention.rs`). Each
//! thread takes a stripe when it first asks and keeps it; the holders below
//! write only their stripe's words.

use std::ops::Deref;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// As many as the worker threads of a 16-core machine, few enough to sum
/// at each scrape. A power of two.
pub(crate) const STRIPES: usize = 16;

/// This thread's stripe: threads take stripes in turn as they first ask.
pub(crate) fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

/// One `T` per stripe; each thread uses its stripe's.
pub struct PerStripe<T>(Box<[T; STRIPES]>);

impl<T> PerStripe<T> {
    pub(crate) fn new(make: impl FnMut(usize) -> T) -> PerStripe<T> {
        PerStripe(Box::new(std::array::from_fn(make)))
    }

    /// This thread's.
    pub fn local(&self) -> &T {
        self.at(stripe())
    }

    pub(crate) fn at(&self, stripe: usize) -> &T {
        // A power of two: the modulo is a mask, and never out of bounds.
        &self.0[stripe % STRIPES]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }
}

/// A value replaced as a whole (the runtime a reload builds), which each
/// request holds from its start to its end.
///
/// Holding the value's own `Arc` would count every request on one
/// reference count that every core writes. Each stripe holds a [`Held`]
/// reference of its own instead, and a request counts itself on its
/// stripe's. [`store`](Self::store) replaces every stripe's, so an old
/// value lives on only in the requests still using it.
pub struct StripedSwap<T> {
    value: ArcSwap<T>,
    held: PerStripe<ArcSwap<Held<T>>>,
    /// Stores one at a time: two racing stores could leave stripes holding
    /// the one that lost.
    storing: Mutex<()>,
}

/// A stripe's reference to the value: what a request holds.
pub struct Held<T>(Arc<T>);

impl<T> Deref for Held<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> StripedSwap<T> {
    pub fn new(value: T) -> StripedSwap<T> {
        let value = Arc::new(value);
        StripedSwap {
            held: PerStripe::new(|_| ArcSwap::from_pointee(Held(Arc::clone(&value)))),
            value: ArcSwap::new(value),
            storing: Mutex::new(()),
        }
    }

    /// For a request: the value in force, counted on this thread's stripe.
    pub fn hold(&self) -> Arc<Held<T>> {
        self.held.local().load_full()
    }

    /// For everything else (admin, reload): the value itself.
    pub fn load_full(&self) -> Arc<T> {
        self.value.load_full()
    }

    /// A short look at the value, without counting a reference.
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.value.load()
    }

    /// Put `value` in force: requests that start from now on hold it.
    pub fn store(&self, value: Arc<T>) {
        // A poisoned lock only means a store panicked between two stripes:
        // this store rewrites every one of them.
        let _storing = self.storing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.value.store(Arc::clone(&value));
        for stripe in self.held.iter() {
            stripe.store(Arc::new(Held(Arc::clone(&value))));
        }
    }
}

/// The requests in flight, which graceful shutdown waits on. Each stripe
/// counts in a cache line of its own; [`total`](Self::total) sums them.
pub struct InFlightCount(PerStripe<Arc<StripeCount>>);

/// A stripe's count, alone in its cache line (128 bytes: two lines, which
/// adjacent-line prefetching fetches together). A request that ends on
/// another thread than it started on still gives back to the stripe it
/// took from, so no stripe's count stays negative at rest.
#[repr(align(128))]
struct StripeCount(AtomicIsize);

/// One request in flight, until dropped.
pub struct InFlight(Arc<StripeCount>);

impl InFlightCount {
    pub fn new() -> InFlightCount {
        InFlightCount(PerStripe::new(|_| Arc::new(StripeCount(AtomicIsize::new(0)))))
    }

    /// Count a request until the returned guard is dropped.
    pub fn enter(&self) -> InFlight {
        let stripe = self.0.local();
        stripe.0.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(stripe))
    }

    /// Requests in flight now.
    pub fn total(&self) -> usize {
        let sum: isize = self.0.iter().map(|stripe| stripe.0.load(Ordering::Acquire)).sum();
        usize::try_from(sum).unwrap_or(0)
    }
}

impl Default for InFlightCount {
    fn default() -> InFlightCount {
        InFlightCount::new()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_as_in_flight_until_dropped_whichever_thread_ends_them() {
        let count = Arc::new(InFlightCount::new());
        let first = count.enter();
        let second = count.enter();
        assert_eq!(count.total(), 2);
        // Ended on other threads than the one that started them.
        std::thread::spawn(move || drop(first)).join().ok();
        assert_eq!(count.total(), 1);
        let started_elsewhere: Vec<InFlight> = (0..STRIPES + 3)
            .map(|_| {
                let count = Arc::clone(&count);
                std::thread::spawn(move || count.enter()).join()
            })
            .filter_map(Result::ok)
            .collect();
        assert_eq!(count.total(), STRIPES + 4);
        drop(started_elsewhere);
        drop(second);
        assert_eq!(count.total(), 0);
    }

    #[test]
    fn a_store_reaches_every_stripe_and_held_values_outlive_it() {
        let swap = Arc::new(StripedSwap::new(1));
        let held_before = swap.hold();
        swap.store(Arc::new(2));
        assert_eq!(**held_before, 1, "a request keeps what it started with");
        assert_eq!(*swap.load_full(), 2);
        // Threads on every stripe (and then some) see the new value.
        let seen: Vec<i32> = (0..STRIPES + 3)
            .map(|_| {
                let swap = Arc::clone(&swap);
                std::thread::spawn(move || **swap.hold()).join().unwrap_or(0)
            })
            .collect();
        assert!(seen.iter().all(|&value| value == 2), "{seen:?}");
        // The old value is gone once the last request holding it is.
        let weak = Arc::downgrade(&held_before.0);
        drop(held_before);
        assert!(weak.upgrade().is_none());
    }
}
