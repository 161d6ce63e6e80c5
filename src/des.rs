//! A small discrete-event kernel shared by the simulators.
//!
//! # Guarantees
//! - **Integer time.** Time is a `u64` count of nanoseconds ([`Ns`]); durations given in seconds
//!   are rounded to the nearest nanosecond once, by [`ns`]. No floating-point clock drifts.
//! - **Total order.** Events are ordered by the key `(time, seq)`, where `seq` is the order in
//!   which they were scheduled. Events at the same time therefore pop in FIFO order, whatever the
//!   heap does internally.
//! - **Reproducible.** Given the same sequence of `schedule` calls the kernel pops the same events
//!   in the same order at the same times, bit for bit, on every run and machine. The kernel draws no
//!   random numbers and uses no hashing or wall-clock time.
//! - **No time travel.** Scheduling in the past is clamped to `now` (and so runs after every event
//!   already scheduled for `now`).
//!
//! Cancellation is left to the model: keep a generation counter and ignore stale events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time, nanoseconds.
pub type Ns = u64;

/// Converts seconds to nanoseconds, rounding to nearest; negative and NaN become 0.
pub fn ns(seconds: f64) -> Ns {
    if seconds.is_nan() || seconds <= 0.0 {
        0
    } else {
        (seconds * 1e9).round() as Ns
    }
}

/// Converts nanoseconds to seconds.
pub fn secs(t: Ns) -> f64 {
    t as f64 * 1e-9
}

/// The event queue: a min-heap on `(time, seq)` holding events of type `E`.
#[derive(Debug, Clone)]
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<(Ns, u64, usize)>>,
    slots: Vec<Option<E>>,
    free: Vec<usize>,
    now: Ns,
    seq: u64,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Queue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty queue with room for `n` pending events.
    pub fn with_capacity(n: usize) -> Self {
        Queue {
            heap: BinaryHeap::with_capacity(n),
            slots: Vec::with_capacity(n),
            free: Vec::new(),
            now: 0,
            seq: 0,
        }
    }

    /// Empties the queue and resets the clock to 0, keeping the allocations.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.slots.clear();
        self.free.clear();
        self.now = 0;
        self.seq = 0;
    }

    /// Current time (the time of the last popped event).
    pub fn now(&self) -> Ns {
        self.now
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Schedules `event` at absolute time `at` (clamped to `now`).
    pub fn schedule(&mut self, at: Ns, event: E) {
        let at = at.max(self.now);
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(event);
                i
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((at, self.seq, slot)));
        self.seq += 1;
    }

    /// Schedules `event` `delay` nanoseconds from now.
    pub fn schedule_in(&mut self, delay: Ns, event: E) {
        self.schedule(self.now.saturating_add(delay), event);
    }

    /// Pops the earliest event (FIFO among equal times) and advances the clock to it.
    pub fn pop(&mut self) -> Option<(Ns, E)> {
        let Reverse((t, _, slot)) = self.heap.pop()?;
        self.now = t;
        let e = self.slots[slot]
            .take()
            .expect("every heap entry owns its slot");
        self.free.push(slot);
        Some((t, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_time_events_are_fifo_and_time_is_monotone() {
        let mut q = Queue::new();
        q.schedule(10, 'a');
        q.schedule(5, 'b');
        q.schedule(10, 'c');
        q.schedule(5, 'd');
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, 'b'), (5, 'd'), (10, 'a'), (10, 'c')]);
    }

    #[test]
    fn past_events_are_clamped_to_now_and_run_after_pending_ones() {
        let mut q = Queue::new();
        q.schedule(100, 1);
        q.schedule(100, 2);
        assert_eq!(q.pop(), Some((100, 1)));
        q.schedule(50, 3);
        assert_eq!(q.pop(), Some((100, 2)));
        assert_eq!(q.pop(), Some((100, 3)));
        assert!(q.is_empty());
    }

    #[test]
    fn seconds_round_to_nearest_nanosecond() {
        assert_eq!(ns(1.5e-9), 2);
        assert_eq!(ns(0.1503), 150_300_000);
        assert_eq!(ns(-1.0), 0);
        assert_eq!(ns(f64::NAN), 0);
        assert_eq!(secs(2_500_000_000), 2.5);
    }

    /// Interleaved schedule/pop sequences replay identically (slot reuse does not leak order).
    #[test]
    fn runs_are_reproducible() {
        let run = || {
            let mut q = Queue::new();
            let mut out = Vec::new();
            let mut x: u64 = 7;
            for i in 0..200u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                q.schedule_in((x >> 60) * 3, i);
                if i % 3 == 0 {
                    out.push(q.pop());
                }
            }
            while let Some(e) = q.pop() {
                out.push(Some(e));
            }
            out
        };
        assert_eq!(run(), run());
    }
}
