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

use super::BatchCounts;
use crate::check;
use crate::error::Result;
use serde::Serialize;

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
            compute_s: check::positive("compute_s", compute_s)?,
            row_bytes: check::positive("row_bytes", row_bytes)?,
            fetch_bw_bytes_per_s: check::positive("fetch_bw_bytes_per_s", fetch_bw_bytes_per_s)?,
            fetch_latency_s: check::non_negative("fetch_latency_s", fetch_latency_s)?,
        })
    }

    /// Time to move `rows` rows, s.
    pub fn xfer_s(&self, rows: u32) -> f64 {
        if rows == 0 {
            0.0
        } else {
            self.fetch_latency_s + f64::from(rows) * self.row_bytes / self.fetch_bw_bytes_per_s
        }
    }

    /// Mean iteration time without a cache, s.
    pub fn no_cache_s(&self, bc: &BatchCounts) -> f64 {
        mean(
            bc.unique
                .iter()
                .map(|&u| self.compute_s + 2.0 * self.xfer_s(u)),
        )
    }

    /// Mean iteration time with misses (fetch and write-back) on the critical path, s.
    pub fn on_demand_s(&self, bc: &BatchCounts) -> f64 {
        mean(
            bc.misses
                .iter()
                .map(|&m| self.compute_s + 2.0 * self.xfer_s(m)),
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
                .compute_s
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
        IterTimes {
            no_cache_s,
            iter_s,
            speedup: no_cache_s / iter_s,
            compute_bound_fraction: self.compute_s / iter_s,
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
    /// compute_s / iter_s (1 = embedding traffic fully hidden).
    pub compute_bound_fraction: f64,
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
}
