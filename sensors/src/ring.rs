//! The ring every sensor adapter pushes into: lock-free, single producer,
//! single consumer, **drop-oldest**, no allocation in steady state.
//!
//! Rules it enforces (DESIGN.md, "Rules that hold everywhere"):
//! * the producer (a sensor thread) never blocks and never fails: when the ring
//!   is full, the push replaces the **oldest** unread item and counts it as
//!   dropped;
//! * every item pushed is either delivered to the consumer, exactly once and in
//!   push order, or counted as dropped, exactly once
//!   (`pushed == delivered + dropped + len` whenever both ends are idle);
//! * items are filled in place ([`RingProducer::push_with`]) in nodes that cycle
//!   between producer and consumer, so a sensor refilling a frame buffer does
//!   not allocate per sample.
//!
//! ## Why not `ringbuf` alone
//! `ringbuf`'s split producer can only *refuse* a push when full
//! (`push_overwrite` needs both ends, i.e. `&mut` on the whole ring). Dropping
//! the newest sample instead of the oldest would make a stalled consumer see
//! stale data forever, so the data path is a slot array of owned nodes that the
//! producer swaps in atomically (getting the overwritten oldest node back), and
//! `ringbuf`'s SPSC queue carries consumed nodes back to the producer for reuse.
//!
//! ## How the lock-free protocol works
//! Item `n` lives in slot `n % capacity`, tagged with its sequence number. The
//! producer swaps its node into the slot and publishes `head = n + 1`; a
//! non-null node swapped out is the oldest unread item (`n - capacity`): it is
//! counted as dropped and reused. The consumer keeps `next`, skips ahead to
//! `head - capacity` if it was lapped (those items were already counted by the
//! producer), and swaps the slot to null to take the item. If the node it
//! finds is newer than `next` (the producer lapped it between the two reads),
//! it puts the node back with a compare-exchange; if the producer wrote a newer
//! one meanwhile, the consumer drops the node it holds and counts it itself.

use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use ringbuf::traits::{Consumer as _, Producer as _, Split as _};
use ringbuf::{HeapCons, HeapProd, HeapRb};

struct Node<T> {
    seq: u64,
    value: T,
}

struct Shared<T> {
    slots: Box<[AtomicPtr<Node<T>>]>,
    /// Items published by the producer (= next sequence number).
    head: AtomicU64,
    /// Consumer position: every item below it was delivered or dropped.
    tail: AtomicU64,
    delivered: AtomicU64,
    /// Drops counted by the producer (overwrites of unread items).
    overwritten: AtomicU64,
    /// Drops counted by the consumer (an item it held when it was lapped).
    discarded: AtomicU64,
    /// Like `Mutex<T>`: shareable across threads when `T: Send`.
    _marker: PhantomData<std::sync::Mutex<T>>,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let p = slot.swap(ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: non-null slot pointers always come from Box::into_raw and are
                // owned by the slot; both endpoints are gone, so nobody else can take it.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

/// Counters of one ring, readable from any thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingCounters {
    /// Items pushed by the producer.
    pub pushed: u64,
    /// Items handed to the consumer.
    pub delivered: u64,
    /// Items dropped because the ring was full (always the oldest).
    pub dropped: u64,
    /// Items waiting (approximate while both ends are running).
    pub len: u64,
    /// Ring capacity.
    pub capacity: u64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored; nothing was lost.
    Stored,
    /// Stored, and the oldest unread item was dropped to make room.
    DroppedOldest,
}

/// A read-only handle on a ring's counters (for health reporting).
#[derive(Clone)]
pub struct RingMonitor<T> {
    shared: Arc<Shared<T>>,
}

impl<T> RingMonitor<T> {
    /// A snapshot of the counters.
    pub fn counters(&self) -> RingCounters {
        counters(&self.shared)
    }
}

fn counters<T>(s: &Shared<T>) -> RingCounters {
    let pushed = s.head.load(Ordering::Acquire);
    let tail = s.tail.load(Ordering::Acquire);
    RingCounters {
        pushed,
        delivered: s.delivered.load(Ordering::Acquire),
        dropped: s.overwritten.load(Ordering::Acquire) + s.discarded.load(Ordering::Acquire),
        len: pushed.saturating_sub(tail).min(s.slots.len() as u64),
        capacity: s.slots.len() as u64,
    }
}

/// The producing end (owned by the sensor thread).
pub struct RingProducer<T> {
    shared: Arc<Shared<T>>,
    free: HeapCons<Box<Node<T>>>,
    spare: Option<Box<Node<T>>>,
    init: Box<dyn FnMut() -> T + Send>,
    head: u64,
}

/// The consuming end (owned by the windower / recorder).
pub struct RingConsumer<T> {
    shared: Arc<Shared<T>>,
    free: HeapProd<Box<Node<T>>>,
    next: u64,
}

/// Creates a ring of `capacity` items (at least 1). `init` makes the value of a
/// fresh node; `capacity + 2` nodes are made up front, which is all the ring
/// ever needs, so steady-state pushes do not allocate.
pub fn channel<T: Send + 'static>(
    capacity: usize,
    mut init: impl FnMut() -> T + Send + 'static,
) -> (RingProducer<T>, RingConsumer<T>) {
    let capacity = capacity.max(1);
    let slots = (0..capacity)
        .map(|_| AtomicPtr::new(ptr::null_mut()))
        .collect::<Vec<_>>()
        .into_boxed_slice();
    let shared = Arc::new(Shared {
        slots,
        head: AtomicU64::new(0),
        tail: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        overwritten: AtomicU64::new(0),
        discarded: AtomicU64::new(0),
        _marker: PhantomData,
    });
    let nodes = capacity + 2;
    let rb = HeapRb::<Box<Node<T>>>::new(nodes);
    let (mut free_prod, free_cons) = rb.split();
    for _ in 0..nodes {
        let node = Box::new(Node {
            seq: 0,
            value: init(),
        });
        if free_prod.try_push(node).is_err() {
            unreachable!("free list sized for every node");
        }
    }
    (
        RingProducer {
            shared: shared.clone(),
            free: free_cons,
            spare: None,
            init: Box::new(init),
            head: 0,
        },
        RingConsumer {
            shared,
            free: free_prod,
            next: 0,
        },
    )
}

impl<T> RingProducer<T> {
    /// Pushes an item filled in place by `fill` (which gets a recycled value: a
    /// previous item's buffers, to be overwritten). Never blocks; when the ring is
    /// full the oldest unread item is dropped and counted.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut T)) -> PushOutcome {
        let mut node = match self.spare.take().or_else(|| self.free.try_pop()) {
            Some(n) => n,
            // Only reachable if the consumer keeps nodes it was never handed; kept
            // for robustness rather than panicking.
            None => Box::new(Node {
                seq: 0,
                value: (self.init)(),
            }),
        };
        fill(&mut node.value);
        node.seq = self.head;
        let cap = self.shared.slots.len() as u64;
        let slot = &self.shared.slots[(self.head % cap) as usize];
        let old = slot.swap(Box::into_raw(node), Ordering::AcqRel);
        self.head += 1;
        self.shared.head.store(self.head, Ordering::Release);
        if old.is_null() {
            PushOutcome::Stored
        } else {
            self.shared.overwritten.fetch_add(1, Ordering::AcqRel);
            // SAFETY: `old` came out of a slot, so it is a live Box::into_raw pointer
            // that the swap made ours alone.
            self.spare = Some(unsafe { Box::from_raw(old) });
            PushOutcome::DroppedOldest
        }
    }

    /// Pushes `value`, moving it in (the recycled value it replaces is dropped).
    pub fn push(&mut self, value: T) -> PushOutcome {
        self.push_with(|slot| *slot = value)
    }

    /// Free places before the next push would drop something (approximate while
    /// the consumer is running).
    pub fn free_len(&self) -> usize {
        let c = counters(&self.shared);
        (c.capacity - c.len) as usize
    }

    /// Counters of this ring.
    pub fn counters(&self) -> RingCounters {
        counters(&self.shared)
    }

    /// A handle for reading the counters from elsewhere.
    pub fn monitor(&self) -> RingMonitor<T> {
        RingMonitor {
            shared: self.shared.clone(),
        }
    }
}

impl<T> RingConsumer<T> {
    fn take(&mut self) -> Option<Box<Node<T>>> {
        let s = &*self.shared;
        let cap = s.slots.len() as u64;
        loop {
            let head = s.head.load(Ordering::Acquire);
            if self.next >= head {
                return None;
            }
            if head - self.next > cap {
                // Lapped: items below head - cap were overwritten and counted by the producer.
                self.next = head - cap;
            }
            let slot = &s.slots[(self.next % cap) as usize];
            let p = slot.swap(ptr::null_mut(), Ordering::AcqRel);
            if p.is_null() {
                // Cannot happen under the protocol (item `next` was published and only
                // the consumer empties slots); account for it rather than spin.
                debug_assert!(false, "ring slot {} empty below head", self.next);
                s.discarded.fetch_add(1, Ordering::AcqRel);
                self.next += 1;
                continue;
            }
            // SAFETY: non-null slot pointers are live Box::into_raw pointers; the swap
            // made this one ours alone.
            let node = unsafe { Box::from_raw(p) };
            if node.seq == self.next {
                self.next += 1;
                s.tail.store(self.next, Ordering::Release);
                return Some(node);
            }
            // The producer lapped us between reading `head` and the swap: the node is
            // newer than `next`. Put it back unless the producer already replaced it.
            let p = Box::into_raw(node);
            if slot
                .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: the put-back failed, so `p` is still exclusively ours.
                let node = unsafe { Box::from_raw(p) };
                s.discarded.fetch_add(1, Ordering::AcqRel);
                // (A full free list only means the producer allocated extra nodes.)
                let _ = self.free.try_push(node);
            }
        }
    }

    fn recycle(&mut self, node: Box<Node<T>>) {
        // A full free list only happens if the producer allocated extra nodes; then
        // the surplus node is simply freed.
        let _ = self.free.try_push(node);
    }

    /// Takes the oldest unread item, lends it to `read`, and recycles its node.
    /// Returns `None` when the ring is empty.
    pub fn pop_with<R>(&mut self, read: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut node = self.take()?;
        let r = read(&mut node.value);
        self.shared.delivered.fetch_add(1, Ordering::AcqRel);
        self.recycle(node);
        Some(r)
    }

    /// Takes the oldest unread item by value (its node gets `T::default()`, so the
    /// producer will allocate fresh buffers; prefer [`RingConsumer::pop_with`]).
    pub fn pop(&mut self) -> Option<T>
    where
        T: Default,
    {
        self.pop_with(std::mem::take)
    }

    /// Counters of this ring.
    pub fn counters(&self) -> RingCounters {
        counters(&self.shared)
    }

    /// A handle for reading the counters from elsewhere.
    pub fn monitor(&self) -> RingMonitor<T> {
        RingMonitor {
            shared: self.shared.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn fifo_below_capacity() {
        let (mut p, mut c) = channel(4, || 0u64);
        for i in 0..3 {
            assert_eq!(p.push(i), PushOutcome::Stored);
        }
        assert_eq!(c.pop(), Some(0));
        assert_eq!(c.pop(), Some(1));
        assert_eq!(p.push(3), PushOutcome::Stored);
        assert_eq!(c.pop(), Some(2));
        assert_eq!(c.pop(), Some(3));
        assert_eq!(c.pop(), None);
        let k = c.counters();
        assert_eq!((k.pushed, k.delivered, k.dropped, k.len), (4, 4, 0, 0));
    }

    #[test]
    fn overflow_drops_oldest_and_counts_exactly() {
        let (mut p, mut c) = channel(4, || 0u64);
        let mut outcomes = Vec::new();
        for i in 0..10 {
            outcomes.push(p.push(i));
        }
        assert_eq!(&outcomes[..4], &[PushOutcome::Stored; 4]);
        assert_eq!(&outcomes[4..], &[PushOutcome::DroppedOldest; 6]);
        assert_eq!(p.counters().dropped, 6);
        assert_eq!(p.counters().len, 4);
        // The newest four survive, in order.
        let got: Vec<u64> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(got, vec![6, 7, 8, 9]);
        let k = c.counters();
        assert_eq!((k.pushed, k.delivered, k.dropped), (10, 4, 6));
    }

    #[test]
    fn nodes_are_recycled_without_allocation() {
        // Buffers filled in place keep their capacity across the ring: the producer
        // sees a previously used Vec, not an empty one, once the ring has cycled.
        let (mut p, mut c) = channel(2, Vec::<u8>::new);
        let mut seen_caps = Vec::new();
        for round in 0..50u8 {
            p.push_with(|v| {
                seen_caps.push(v.capacity());
                v.clear();
                v.extend_from_slice(&[round; 1000]);
            });
            if round % 3 == 0 {
                c.pop_with(|v| assert_eq!(v.len(), 1000));
            }
        }
        // The first capacity + 2 pushes fill fresh nodes; every later one reuses a
        // buffer that already holds 1000 bytes, so it never reallocates.
        assert!(seen_caps[..4].iter().all(|&cap| cap == 0), "{seen_caps:?}");
        assert!(
            seen_caps[4..].iter().all(|&cap| cap >= 1000),
            "{seen_caps:?}"
        );
    }

    /// A deliberately slow consumer: the producer finishes all its pushes while
    /// the consumer has taken only a few, every push returns at once, the counters
    /// add up exactly, and what the consumer sees is strictly increasing.
    #[test]
    fn slow_consumer_never_blocks_producer() {
        const N: u64 = 200_000;
        const CAP: usize = 64;
        let (mut p, mut c) = channel(CAP, || 0u64);
        let producer_done = Arc::new(AtomicBool::new(false));
        let done = producer_done.clone();
        let consumer = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut taken_while_producing = 0usize;
            loop {
                let finished = done.load(Ordering::Acquire);
                match c.pop() {
                    Some(v) => {
                        seen.push(v);
                        if !finished {
                            taken_while_producing += 1;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    None if finished => break,
                    None => std::thread::yield_now(),
                }
            }
            (seen, taken_while_producing, c.counters())
        });
        let mut dropped_by_push = 0u64;
        for i in 0..N {
            if p.push(i) == PushOutcome::DroppedOldest {
                dropped_by_push += 1;
            }
        }
        producer_done.store(true, Ordering::Release);
        let (seen, taken_while_producing, k) = consumer.join().unwrap();
        // The producer pushed N items while a consumer that sleeps 200 us per item
        // took only a small fraction of them: it never waited for the consumer.
        assert!(
            (taken_while_producing as u64) < N / 10,
            "consumer took {taken_while_producing} of {N} while producing"
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "order violated");
        assert_eq!(*seen.last().unwrap(), N - 1, "newest item must survive");
        assert_eq!(k.pushed, N);
        assert_eq!(k.delivered, seen.len() as u64);
        assert_eq!(
            k.delivered + k.dropped,
            N,
            "every item delivered or counted"
        );
        assert!(k.dropped >= dropped_by_push);
        // Once the producer stopped, the last CAP items were all still there.
        let tail: Vec<u64> = seen.iter().rev().take(CAP).rev().copied().collect();
        assert_eq!(tail, ((N - CAP as u64)..N).collect::<Vec<_>>());
    }

    /// Producer and consumer racing at full speed: exact accounting under contention.
    #[test]
    fn racing_ends_account_exactly() {
        const N: u64 = 300_000;
        let (mut p, mut c) = channel(8, || 0u64);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let consumer = std::thread::spawn(move || {
            let mut last = None::<u64>;
            let mut n = 0u64;
            loop {
                let finished = stop2.load(Ordering::Acquire);
                match c.pop() {
                    Some(v) => {
                        if let Some(l) = last {
                            assert!(v > l, "{v} after {l}");
                        }
                        last = Some(v);
                        n += 1;
                    }
                    None if finished => break,
                    None => std::hint::spin_loop(),
                }
            }
            (n, c.counters())
        });
        for i in 0..N {
            p.push(i);
        }
        stop.store(true, Ordering::Release);
        let (n, k) = consumer.join().unwrap();
        assert_eq!(k.delivered, n);
        assert_eq!(k.delivered + k.dropped, N);
    }

    #[test]
    fn dropping_both_ends_frees_everything() {
        // Run under Miri/ASan to check; here it must simply not crash or leak-panic.
        let (mut p, c) = channel(3, || vec![0u8; 16]);
        for _ in 0..7 {
            p.push(vec![1; 16]);
        }
        drop(c);
        p.push(vec![2; 16]);
        drop(p);
    }
}
