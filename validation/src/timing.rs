//! The timing protocol every `perfcast-gpu` measurement follows (DESIGN.md §7): time on the host
//! clock between two device synchronizations, after warm-up repeats, over several timed repeats,
//! and summarize them by their median and p10/p90 spread ([`Stats`]).
//!
//! - [`Repeats`]: `warmup` untimed repeats, then `repeats` timed ones; only the timed repeats'
//!   outputs are kept.
//! - [`synced`]: wall-clock seconds of one piece of work with the device synchronized before the
//!   clock starts and before it stops (no queued work leaks in or out).
//! - [`pipelined`]: `n` steps issued back to back between two synchronizations, per step (what a
//!   decode loop does: the host runs ahead of the device); [`pipelined_and_synced`] times a step
//!   both ways in each repeat, so the two figures see the same conditions.
//! - [`synced_excluding`]: as [`synced`], minus one-time set-up the work reports (CUDA-graph
//!   capture is set-up, not decoding).
//! - [`rate`]: a per-second figure (tokens/s) per timed repeat, summarized.
//!
//! Anything that can wait for its queued work implements [`Synchronize`] (candle's [`Device`]
//! here). gradcomp's `nccl-sweep` (CUDA-only code, `gradcomp/nccl.rs`) follows the same protocol
//! over its NCCL streams (warm-up operations, then timed batches of `iters` back-to-back
//! operations between synchronizations) with its own loop; it is not yet routed through this
//! module because that code cannot be compiled without CUDA.

use std::time::Instant;

use candle_core::Device;

use crate::measure::Stats;

/// Something whose queued work the host can wait for.
pub trait Synchronize {
    /// Error of a failed synchronization.
    type Error;
    /// Blocks until every operation queued so far has finished.
    ///
    /// # Errors
    /// The device reports a failure.
    fn synchronize(&self) -> Result<(), Self::Error>;
}

impl Synchronize for Device {
    type Error = candle_core::Error;
    fn synchronize(&self) -> candle_core::Result<()> {
        Device::synchronize(self)
    }
}

/// Warm-up and timed repeat counts of one measured point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeats {
    /// Untimed repeats first (graph capture, caches, clocks).
    pub warmup: usize,
    /// Timed repeats after them.
    pub repeats: usize,
}

impl Repeats {
    /// `warmup` untimed repeats, then `repeats` timed ones.
    pub fn new(warmup: usize, repeats: usize) -> Repeats {
        Repeats { warmup, repeats }
    }

    /// Calls `f(r)` for every repeat `r` in `0..warmup + repeats`, in order, and returns the
    /// outputs of the timed ones (`r >= warmup`), in order. `r` lets a repeat seed itself or keep
    /// the first repeat's output (e.g. tokens for a correctness comparison).
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn run<T, E>(self, mut f: impl FnMut(usize) -> Result<T, E>) -> Result<Vec<T>, E> {
        let mut out = Vec::with_capacity(self.repeats);
        for r in 0..self.warmup + self.repeats {
            let x = f(r)?;
            if r >= self.warmup {
                out.push(x);
            }
        }
        Ok(out)
    }
}

/// Runs `f` between two synchronizations of `dev`; returns its output and the seconds between
/// them.
///
/// # Errors
/// A failed synchronization or the error of `f`.
pub fn synced<D, T, E>(dev: &D, f: impl FnOnce() -> Result<T, E>) -> Result<(T, f64), E>
where
    D: Synchronize,
    E: From<D::Error>,
{
    dev.synchronize()?;
    let t0 = Instant::now();
    let out = f()?;
    dev.synchronize()?;
    Ok((out, t0.elapsed().as_secs_f64()))
}

/// As [`synced`], minus the seconds of one-time set-up done inside `f`: `setup_s()` is a running
/// total of set-up seconds (e.g. [`crate::specdec::graph::Runner::capture_s`]), read before and
/// after.
///
/// # Errors
/// A failed synchronization or the error of `f`.
pub fn synced_excluding<D, T, E>(
    dev: &D,
    setup_s: impl Fn() -> f64,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<(T, f64), E>
where
    D: Synchronize,
    E: From<D::Error>,
{
    let s0 = setup_s();
    let (out, el) = synced(dev, f)?;
    Ok((out, el - (setup_s() - s0)))
}

/// Seconds per step of `n` steps issued back to back between two synchronizations of `dev`
/// (elapsed / `n`).
///
/// # Errors
/// A failed synchronization or the first error of `step`.
pub fn pipelined<D, E>(dev: &D, n: usize, mut step: impl FnMut() -> Result<(), E>) -> Result<f64, E>
where
    D: Synchronize,
    E: From<D::Error>,
{
    let ((), el) = synced(dev, || -> Result<(), E> {
        for _ in 0..n {
            step()?;
        }
        Ok(())
    })?;
    Ok(el / n as f64)
}

/// Times `step` two ways in each repeat of `reps`: [`pipelined`] over `pipeline` steps, then one
/// step [`synced`]. Returns the statistics of both (seconds per step).
///
/// # Errors
/// A failed synchronization or the first error of `step`.
pub fn pipelined_and_synced<D, E>(
    dev: &D,
    reps: Repeats,
    pipeline: usize,
    mut step: impl FnMut() -> Result<(), E>,
) -> Result<(Stats, Stats), E>
where
    D: Synchronize,
    E: From<D::Error>,
{
    let both = reps.run(|_| -> Result<(f64, f64), E> {
        let piped = pipelined::<D, E>(dev, pipeline, &mut step)?;
        let ((), one) = synced::<D, (), E>(dev, &mut step)?;
        Ok((piped, one))
    })?;
    let piped: Vec<f64> = both.iter().map(|x| x.0).collect();
    let one: Vec<f64> = both.iter().map(|x| x.1).collect();
    Ok((Stats::of(&piped), Stats::of(&one)))
}

/// Statistics of `units / t` over the timed seconds `times_s` (e.g. tokens/s of decodes that
/// each emit `units` tokens).
pub fn rate(units: f64, times_s: &[f64]) -> Stats {
    Stats::of(&times_s.iter().map(|t| units / t).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Counts synchronizations; fails on the `fail_at`-th one.
    struct Fake {
        syncs: Cell<usize>,
        fail_at: usize,
    }

    impl Synchronize for Fake {
        type Error = String;
        fn synchronize(&self) -> Result<(), String> {
            let n = self.syncs.get() + 1;
            self.syncs.set(n);
            if n == self.fail_at {
                Err(format!("sync {n} failed"))
            } else {
                Ok(())
            }
        }
    }

    fn fake() -> Fake {
        Fake {
            syncs: Cell::new(0),
            fail_at: usize::MAX,
        }
    }

    #[test]
    fn repeats_keep_only_the_timed_outputs_in_order() {
        let mut seen = Vec::new();
        let out = Repeats::new(2, 3)
            .run(|r| {
                seen.push(r);
                Ok::<_, ()>(r * 10)
            })
            .unwrap();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(out, vec![20, 30, 40]);
        let e = Repeats::new(0, 4).run(|r| if r == 1 { Err(r) } else { Ok(r) });
        assert_eq!(e, Err(1));
    }

    #[test]
    fn every_timing_synchronizes_before_and_after() {
        let dev = fake();
        let mut steps = 0;
        let per = pipelined(&dev, 4, || {
            steps += 1;
            Ok::<_, String>(())
        })
        .unwrap();
        assert_eq!((steps, dev.syncs.get()), (4, 2));
        assert!(per >= 0.0);
        let (pipe, one) = pipelined_and_synced(&dev, Repeats::new(1, 3), 5, || {
            steps += 1;
            Ok::<_, String>(())
        })
        .unwrap();
        // 4 repeats × (5 pipelined + 1 synced) steps, 4 synchronizations per repeat.
        assert_eq!((steps, dev.syncs.get()), (4 + 24, 2 + 16));
        assert_eq!((pipe.n, one.n), (3, 3));
        let bad = Fake {
            syncs: Cell::new(0),
            fail_at: 2,
        };
        let e = synced(&bad, || Ok::<_, String>(())).unwrap_err();
        assert_eq!(e, "sync 2 failed");
    }

    #[test]
    fn pipelined_divides_by_the_steps() {
        let dev = fake();
        let per = pipelined(&dev, 8, || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok::<_, String>(())
        })
        .unwrap();
        // Eight 5 ms sleeps: at least 5 ms per step, and far under the undivided 40 ms.
        assert!((0.005..0.03).contains(&per), "{per}");
    }

    #[test]
    fn set_up_seconds_are_subtracted() {
        let dev = fake();
        let setup = Cell::new(100.0);
        let (out, el) = synced_excluding(
            &dev,
            || setup.get(),
            || {
                setup.set(setup.get() + 1000.0);
                Ok::<_, String>(7)
            },
        )
        .unwrap();
        assert_eq!(out, 7);
        // The work took microseconds; 1000 s of reported set-up come off.
        assert!((-1000.0..-999.0).contains(&el), "{el}");
    }

    #[test]
    fn rate_is_units_over_each_time() {
        let s = rate(64.0, &[0.5, 0.25, 1.0]);
        assert_eq!((s.median, s.p10, s.p90, s.n), (128.0, 64.0, 256.0, 3));
    }
}
