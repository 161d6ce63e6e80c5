//! DLRM training iteration time with embedding rows fetched over a link (host memory over PCIe,
//! or a parameter server over the network).
//!
//! Moving `n` rows costs `xfer(n) = latency + n · row_bytes / bandwidth` (0 when `n = 0`). Rows
//! updated by training are written back with the same cost. Per batch `b` with `U_b` unique rows,
//! `m_b` fetched (missed) rows and `w_b` evicted (written-back) rows:
//!
//! - **no cache**: `t_b = compute + xfer(U_b) + xfer(U_b)` (fetch every row, write every row back);
//! - **on-demand cache** (LRU, FIFO, LFU, static top-k, Belady): misses and write-backs are on the
//!   critical path, `t_b = compute + 2·xfer(m_b)`: every fetched row eventually displaces one
//!   updated row (or, bypassing the cache, is itself written back), so a batch writes back as many
//!   rows as it fetches. (The per-access simulation of a cache smaller than a batch's working set
//!   can evict a row twice within one batch; a trainer pins the batch's rows, so those evictions
//!   are not charged.) No cache is the case `m_b = U_b`;
//! - **lookahead prefetch** (Bagpipe): batch `b+1`'s rows are fetched and batch `b`'s evictions
//!   written back while batch `b` computes, `t_b = max(compute, xfer(m_{b+1}) + xfer(w_b))`, plus
//!   `xfer(m_0)` once before the first batch.
//!
//! The mean over batches is the iteration time; speedup = no cache / policy.
//!
//! **Several trainers, dense synchronization** (data-parallel DLRM training as in Bagpipe, Agarwal
//! et al., SOSP 2023: `T` trainers, each with its own cache and a batch stream like the trace's,
//! one embedding store). The trainers run in lock step, so their fetches and write-backs reach the
//! store at the same time and share its bandwidth: each moves rows at `bandwidth / T`,
//! `xfer_T(n) = latency + n · row_bytes · T / bandwidth`. After backward the dense (MLP)
//! parameters are all-reduced across the `T` trainers, `sync` seconds priced by the shared
//! collective model ([`crate::collective`], the one gradcomp uses: ring, tree or hierarchical
//! α–β over one trainer per node), on the critical path with the compute:
//! `t_b = compute + sync + 2·xfer_T(m_b)` on demand, `max(compute + sync, xfer_T(m_{b+1}) +
//! xfer_T(w_b))` with prefetch, and no cache as on demand with `m_b = U_b`. One trainer without
//! dense parameters is the single-trainer model above, unchanged.

use super::BatchCounts;
use crate::check;
use crate::collective::{self, Algo, Cluster, Op};
use crate::error::{Error, Result};
use serde::Serialize;

/// Trainers sharing the embedding store and the dense all-reduce among them (the `trainers`,
/// `dense_params`, `dense_param_bytes`, `sync_gbps`, `sync_latency_us` and `sync_algo` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSpec {
    /// Data-parallel trainers `T`, ≥ 1.
    pub trainers: i64,
    /// Dense (non-embedding) parameters all-reduced every iteration (0: no synchronization).
    pub dense_params: f64,
    /// Bytes per dense parameter in the all-reduce (4 = fp32 gradients).
    pub dense_param_bytes: f64,
    /// Network bandwidth of a trainer's node, Gb/s one direction (needed with dense parameters and
    /// more than one trainer).
    pub sync_gbps: Option<f64>,
    /// Per-step collective latency α, µs.
    pub sync_latency_us: f64,
    /// All-reduce algorithm: ring, tree, hierarchical.
    pub sync_algo: String,
}

impl Default for SyncSpec {
    fn default() -> Self {
        SyncSpec {
            trainers: 1,
            dense_params: 0.0,
            dense_param_bytes: 4.0,
            sync_gbps: None,
            sync_latency_us: 10.0,
            sync_algo: "ring".into(),
        }
    }
}

impl SyncSpec {
    /// Trainers and the all-reduce time of the dense parameters among them, seconds: the shared
    /// collective model's all-reduce of `dense_params · dense_param_bytes` bytes on `T` ranks, one
    /// per node, at `sync_gbps` and `sync_latency_us` (0 for one trainer or no dense parameters).
    ///
    /// # Errors
    /// Trainers outside [1, 65536]; negative parameters; bytes per parameter outside (0, 16];
    /// a missing or non-positive `--sync-gbps` when there is something to synchronize; negative
    /// latency; an unknown algorithm.
    pub fn resolve(&self) -> Result<(u32, f64)> {
        let t = check::int_in("--trainers", self.trainers, 1, 65536)?;
        check::non_negative("--dense-params", self.dense_params)?;
        check::in_closed("--dense-param-bytes", self.dense_param_bytes, 1e-9, 16.0)?;
        check::in_closed(
            "--sync-latency-us",
            check::non_negative("--sync-latency-us", self.sync_latency_us)?,
            0.0,
            check::MAX_SECONDS * 1e6,
        )?;
        let algo = Algo::parse(&self.sync_algo)?;
        if t == 1 || self.dense_params == 0.0 {
            return Ok((t as u32, 0.0));
        }
        let gbps = self.sync_gbps.ok_or_else(|| {
            Error::range(
                "--sync-gbps",
                "missing",
                "given with --dense-params and --trainers > 1 (Gb/s per trainer node)",
            )
        })?;
        check::positive("--sync-gbps", gbps)?;
        let c = Cluster::new(t, 1, gbps, gbps, self.sync_latency_us)?;
        let bytes = self.dense_params * self.dense_param_bytes;
        Ok((
            t as u32,
            collective::time(Op::AllReduce, algo, bytes, &c, None)?.time_s,
        ))
    }
}

/// Largest embedding row an input may give, bytes (1 GiB; rows are a few hundred bytes to a
/// few KiB: a larger value is a unit mistake).
pub const MAX_ROW_BYTES: f64 = 1_073_741_824.0;

/// Largest fetch bandwidth an input may give, bytes/s (the [`check::MAX_GBPS`] link, 125 TB/s).
pub const MAX_FETCH_BW_BYTES_PER_S: f64 = check::MAX_GBPS * 1e9 / 8.0;

/// Bytes per embedding row: finite, in `(0, MAX_ROW_BYTES]`.
///
/// # Errors
/// [`Error::OutOfRange`] naming `field` otherwise.
pub fn row_bytes_checked(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 && v <= MAX_ROW_BYTES {
        Ok(v)
    } else {
        Err(Error::range(
            field,
            check::show(v),
            "a size in (0, 1073741824] bytes (1 GiB)",
        ))
    }
}

/// Link and compute parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pipeline {
    /// Dense compute per iteration (forward + backward + optimizer, embedding lookups excluded), s.
    pub compute_s: f64,
    /// Bytes per embedding row (dimension × bytes per element).
    pub row_bytes: f64,
    /// Fetch bandwidth, bytes/s.
    pub fetch_bw_bytes_per_s: f64,
    /// Fixed latency per transfer, s.
    pub fetch_latency_s: f64,
    /// Trainers sharing the fetch bandwidth (1: the single-trainer model).
    pub trainers: u32,
    /// Dense-parameter all-reduce per iteration, s (on the critical path with the compute).
    pub dense_sync_s: f64,
}

impl Pipeline {
    /// Validated parameters.
    ///
    /// # Errors
    /// Non-positive compute, row bytes or bandwidth; negative latency.
    pub fn new(
        compute_s: f64,
        row_bytes: f64,
        fetch_bw_bytes_per_s: f64,
        fetch_latency_s: f64,
    ) -> Result<Self> {
        Ok(Pipeline {
            compute_s: check::seconds("compute_s", check::positive("compute_s", compute_s)?)?,
            row_bytes: row_bytes_checked("row_bytes", row_bytes)?,
            fetch_bw_bytes_per_s: if fetch_bw_bytes_per_s > 0.0
                && fetch_bw_bytes_per_s <= MAX_FETCH_BW_BYTES_PER_S
            {
                fetch_bw_bytes_per_s
            } else {
                return Err(Error::range(
                    "fetch_bw_bytes_per_s",
                    check::show(fetch_bw_bytes_per_s),
                    "a bandwidth in (0, 1.25e14] bytes/s",
                ));
            },
            fetch_latency_s: check::seconds("fetch_latency_s", fetch_latency_s)?,
            trainers: 1,
            dense_sync_s: 0.0,
        })
    }

    /// The same pipeline run by `trainers` trainers sharing the store's bandwidth, with a
    /// dense all-reduce of `dense_sync_s` seconds per iteration (see [`SyncSpec::resolve`]).
    ///
    /// # Errors
    /// No trainers; a negative or non-finite synchronization time.
    pub fn with_sync(mut self, trainers: u32, dense_sync_s: f64) -> Result<Self> {
        if trainers == 0 {
            return Err(Error::range("--trainers", 0, "≥ 1"));
        }
        self.trainers = trainers;
        self.dense_sync_s = check::non_negative("dense_sync_s", dense_sync_s)?;
        Ok(self)
    }

    /// Time for one trainer to move `rows` rows while all `T` trainers move theirs, s:
    /// `latency + rows · row_bytes · T / bandwidth` (0 for no rows).
    pub fn xfer_s(&self, rows: u32) -> f64 {
        if rows == 0 {
            0.0
        } else {
            self.fetch_latency_s
                + f64::from(rows) * self.row_bytes * f64::from(self.trainers)
                    / self.fetch_bw_bytes_per_s
        }
    }

    /// Dense compute plus the dense all-reduce, s.
    pub(crate) fn busy_s(&self) -> f64 {
        self.compute_s + self.dense_sync_s
    }

    /// Mean iteration time without a cache, s.
    pub fn no_cache_s(&self, bc: &BatchCounts) -> f64 {
        mean(
            bc.unique
                .iter()
                .map(|&u| self.busy_s() + 2.0 * self.xfer_s(u)),
        )
    }

    /// Mean iteration time with misses (fetch and write-back) on the critical path, s.
    pub fn on_demand_s(&self, bc: &BatchCounts) -> f64 {
        mean(
            bc.misses
                .iter()
                .map(|&m| self.busy_s() + 2.0 * self.xfer_s(m)),
        )
    }

    /// Mean iteration time with next-batch prefetch overlapped with compute, s.
    pub fn prefetch_s(&self, bc: &BatchCounts) -> f64 {
        let n = bc.misses.len();
        if n == 0 {
            return 0.0;
        }
        let mut total = self.xfer_s(bc.misses[0]);
        for b in 0..n {
            let next = bc.misses.get(b + 1).copied().unwrap_or(0);
            total += self
                .busy_s()
                .max(self.xfer_s(next) + self.xfer_s(bc.evictions[b]));
        }
        total / n as f64
    }

    /// Iteration times for one policy's counts (prefetch for lookahead, on-demand otherwise).
    pub fn times(&self, bc: &BatchCounts, lookahead: bool) -> IterTimes {
        let no_cache_s = self.no_cache_s(bc);
        let iter_s = if lookahead {
            self.prefetch_s(bc)
        } else {
            self.on_demand_s(bc)
        };
        self.times_of(no_cache_s, iter_s)
    }

    /// Iteration times from the mean iteration without a cache and with the policy, s.
    pub fn times_of(&self, no_cache_s: f64, iter_s: f64) -> IterTimes {
        IterTimes {
            no_cache_s,
            iter_s,
            speedup: no_cache_s / iter_s,
            compute_bound_fraction: self.compute_s / iter_s,
            trainers: self.trainers,
            dense_sync_s: self.dense_sync_s,
        }
    }
}

/// Iteration times of one policy.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct IterTimes {
    /// Mean iteration time without a cache, s.
    pub no_cache_s: f64,
    /// Mean iteration time with the policy, s.
    pub iter_s: f64,
    /// no_cache_s / iter_s.
    pub speedup: f64,
    /// compute_s / iter_s (1 = embedding traffic and synchronization fully hidden).
    pub compute_bound_fraction: f64,
    /// Trainers sharing the store.
    pub trainers: u32,
    /// Dense all-reduce per iteration, s.
    pub dense_sync_s: f64,
}

impl IterTimes {
    /// Whether the multi-trainer terms are in use (more than one trainer or a dense all-reduce);
    /// outputs add `trainers` and `dense_sync_s` only then, so single-trainer rows keep their
    /// columns.
    pub fn multi_trainer(&self) -> bool {
        self.trainers > 1 || self.dense_sync_s > 0.0
    }
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in it {
        s += x;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_times() {
        // 1 ms compute, 100-byte rows, 1e6 B/s, 10 µs latency: xfer(10) = 1e-5 + 1e-3.
        let p = Pipeline::new(1e-3, 100.0, 1e6, 1e-5).unwrap();
        let bc = BatchCounts {
            unique: vec![10, 10],
            misses: vec![10, 2],
            evictions: vec![0, 2],
        };
        let x = |n: f64| 1e-5 + n * 1e-4;
        assert!((p.no_cache_s(&bc) - (1e-3 + 2.0 * x(10.0))).abs() < 1e-15);
        let od = (1e-3 + 2.0 * x(10.0) + 1e-3 + 2.0 * x(2.0)) / 2.0;
        assert!((p.on_demand_s(&bc) - od).abs() < 1e-15);
        // Prefetch: x(10) up front, then max(1e-3, x(2) + 0) and max(1e-3, 0 + x(2)).
        let pf = (x(10.0) + 1e-3 + 1e-3) / 2.0;
        assert!((p.prefetch_s(&bc) - pf).abs() < 1e-15);
        assert!(Pipeline::new(0.0, 1.0, 1.0, 0.0).is_err());
        assert!(Pipeline::new(1.0, 1.0, 1.0, -1.0).is_err());
    }

    /// Four trainers share 1e6 B/s, so a trainer moves 100-byte rows at 4e-4 s each:
    /// xfer_4(n) = 1e-5 + 4e-4·n; with a 2 ms dense all-reduce on the critical path:
    /// no cache = 1e-3 + 2e-3 + 2·xfer_4(10); prefetch = (xfer_4(10) + 2·max(3e-3, xfer_4(2))) / 2.
    #[test]
    fn hand_worked_multi_trainer_times() {
        let p = Pipeline::new(1e-3, 100.0, 1e6, 1e-5)
            .unwrap()
            .with_sync(4, 2e-3)
            .unwrap();
        let bc = BatchCounts {
            unique: vec![10, 10],
            misses: vec![10, 2],
            evictions: vec![0, 2],
        };
        let x = |n: f64| 1e-5 + n * 4e-4;
        let tol = 1e-15;
        assert!((p.no_cache_s(&bc) - (3e-3 + 2.0 * x(10.0))).abs() < tol);
        let od = (3e-3 + 2.0 * x(10.0) + 3e-3 + 2.0 * x(2.0)) / 2.0;
        assert!((p.on_demand_s(&bc) - od).abs() < tol);
        let pf = (x(10.0) + 3e-3_f64.max(x(2.0)) + 3e-3_f64.max(x(2.0))) / 2.0;
        assert!((p.prefetch_s(&bc) - pf).abs() < tol);
        let t = p.times(&bc, false);
        assert!(t.multi_trainer() && t.trainers == 4 && t.dense_sync_s == 2e-3);
        // One trainer and no synchronization is the single-trainer model, bit for bit.
        let one = Pipeline::new(1e-3, 100.0, 1e6, 1e-5).unwrap();
        let same = one.with_sync(1, 0.0).unwrap();
        assert_eq!(one.times(&bc, true), same.times(&bc, true));
        assert_eq!(one.times(&bc, false), same.times(&bc, false));
        assert!(!same.times(&bc, false).multi_trainer());
        assert!(one.with_sync(0, 0.0).is_err());
    }

    /// Ring all-reduce of 1e6 fp32 parameters (4e6 B) over 8 trainers, one per node, 10 Gb/s
    /// (1.25e9 B/s), 10 µs: 2·7·10 µs + 2·7/8 · 4e6 / 1.25e9 = 1.4e-4 + 5.6e-3 = 5.74e-3 s
    /// (relative tolerance 1e-12). One trainer or no dense parameters: 0.
    #[test]
    fn dense_sync_by_hand() {
        let s = SyncSpec {
            trainers: 8,
            dense_params: 1e6,
            sync_gbps: Some(10.0),
            ..SyncSpec::default()
        };
        let (t, sync) = s.resolve().unwrap();
        assert_eq!(t, 8);
        assert!((sync - 5.74e-3).abs() < 5.74e-3 * 1e-12, "{sync}");
        let one = SyncSpec {
            trainers: 1,
            ..s.clone()
        };
        assert_eq!(one.resolve().unwrap(), (1, 0.0));
        let none = SyncSpec {
            dense_params: 0.0,
            ..s.clone()
        };
        assert_eq!(none.resolve().unwrap(), (8, 0.0));
        let e = SyncSpec {
            sync_gbps: None,
            ..s.clone()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--sync-gbps"), "{e}");
        let e = SyncSpec {
            trainers: 0,
            ..s.clone()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--trainers"), "{e}");
        let e = SyncSpec {
            sync_algo: "star".into(),
            ..s
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(e.contains("star"), "{e}");
    }
}
