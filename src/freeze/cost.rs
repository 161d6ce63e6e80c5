//! Cost semantics of a partly frozen model, and the run simulation with activation caching.
//!
//! **One iteration.** A layer's weight gradient and optimizer step run iff it is trainable; its
//! input gradient runs iff some layer below it is trainable (the gradient must flow down to
//! it); every forward runs unless a cache supplies the prefix output:
//! `t_iter = Σ_i fwd_i + Σ_{i trainable} (wgrad_i + opt_i) + Σ_{i : ∃ j < i trainable} igrad_i`.
//! With the first `k` layers frozen this is
//! `t(k) = Σ_i fwd_i + Σ_{i ≥ k} (wgrad_i + opt_i) + Σ_{i > k} igrad_i`. For 12 uniform layers
//! (1 ms each) `t(6) = 12 + 6 + 5 = 23` ms and `t(0) = 12 + 12 + 11 = 35` ms.
//!
//! **Caching the frozen prefix** (AutoFreeze §4.2). While the first `k > 0` layers are frozen the
//! output of layer `k − 1` for each sample depends only on the sample, so it can be written once
//! (`bytes = batch · act_{k−1} / write_bw` per iteration, on top of the forward) and read
//! instead of recomputing the prefix in later epochs (`batch · act_{k−1} / read_bw`, saving
//! `Σ_{i<k} fwd_i`). The cache is tracked per position of the epoch (each sample is visited once
//! per epoch; under shuffling the per-epoch totals are the same in expectation). With
//! AutoFreeze's **one-epoch lag** (`lag`), entries are written only in epochs that start with the
//! current prefix already frozen (the first full epoch after the freeze), read from the next;
//! without it, writing starts at the freeze step and each entry is read on the sample's next
//! visit.
//!
//! **Prefix growth** invalidates every entry: the cache must be rewritten for the new boundary
//! `k' > k`. A stale entry still saves work: the sample's old output at `k` is read, layers
//! `k..k'` run forward, and (when writing is allowed) the output at `k'` replaces the old entry,
//! so the cache size becomes `N · act_{k'−1}`. The report counts the bytes written and read, and
//! the peak size.
//!
//! Reads and writes are on the critical path (not overlapped with compute): a conservative
//! choice; last partial batches are costed as full ones for compute and exactly for cache bytes.

use super::profile::{LayerCost, Profile};
use super::schedule::Timeline;
use crate::catalog::Gpu;
use crate::check;
use crate::error::{Error, Result};
use serde::Serialize;

/// Iteration time of `layers` with the given trainable mask (see the module docs), seconds.
///
/// # Panics
/// Never; a mask shorter than `layers` treats the missing layers as frozen.
pub fn iteration_s(layers: &[LayerCost], trainable: &[bool]) -> f64 {
    let mut t = 0.0;
    let mut below_trainable = false;
    for (i, l) in layers.iter().enumerate() {
        let tr = trainable.get(i).copied().unwrap_or(false);
        t += l.forward_s;
        if tr {
            t += l.weight_grad_s + l.optimizer_s;
        }
        if below_trainable {
            t += l.input_grad_s;
        }
        below_trainable |= tr;
    }
    t
}

/// Per-prefix iteration costs of a profile, precomputed for `k = 0..=L`.
#[derive(Debug, Clone, PartialEq)]
pub struct IterCosts {
    /// `base[k]`: iteration time with the first `k` layers frozen, no cache, seconds.
    pub base: Vec<f64>,
    /// `fwd_prefix[k] = Σ_{i<k} fwd_i`, seconds.
    pub fwd_prefix: Vec<f64>,
    /// `act[k]`: output bytes per sample of layer `k − 1` (the prefix-`k` boundary); `act[0] = 0`.
    pub act: Vec<f64>,
}

impl IterCosts {
    /// Precomputes the costs of every frozen prefix (O(L)).
    pub fn new(p: &Profile) -> Self {
        let l = p.layers.len();
        let fwd_all: f64 = p.layers.iter().map(|x| x.forward_s).sum();
        let mut fwd_prefix = vec![0.0; l + 1];
        let mut act = vec![0.0; l + 1];
        for i in 0..l {
            fwd_prefix[i + 1] = fwd_prefix[i] + p.layers[i].forward_s;
            act[i + 1] = p.layers[i].activation_bytes_per_sample;
        }
        // suffix[k] = Σ_{i≥k} (wgrad + opt) + Σ_{i>k} igrad, built from the top.
        let mut base = vec![fwd_all; l + 1];
        let mut upd = 0.0; // Σ_{i≥k} (wgrad + opt)
        let mut ig_above = 0.0; // Σ_{i>k} igrad
        for k in (0..l).rev() {
            upd += p.layers[k].weight_grad_s + p.layers[k].optimizer_s;
            base[k] = fwd_all + upd + ig_above;
            ig_above += p.layers[k].input_grad_s;
        }
        IterCosts {
            base,
            fwd_prefix,
            act,
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Tier::parse(s)
    }
}

/// Where cached prefix outputs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// No caching: frozen layers still run forward.
    None,
    /// GPU memory (HBM): read and written at the GPU's memory bandwidth.
    Gpu,
    /// Host RAM: over PCIe, one direction each way (half the catalog's both-directions
    /// `pcie_bw_bytes_per_s`; 32 GB/s per direction when the catalog has none).
    Ram,
    /// Local NVMe disk: 7 GB/s read, 5 GB/s write by default (PCIe Gen4 x4 class), capped by the
    /// GPU's PCIe bandwidth per direction.
    Disk,
}

impl Tier {
    /// Parses `none|gpu|ram|disk`.
    ///
    /// # Errors
    /// [`Error::UnknownName`].
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Tier::None),
            "gpu" => Ok(Tier::Gpu),
            "ram" => Ok(Tier::Ram),
            "disk" => Ok(Tier::Disk),
            o => Err(Error::unknown(
                "cache tier",
                o,
                ["none", "gpu", "ram", "disk"],
            )),
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Gpu => "gpu",
            Tier::Ram => "ram",
            Tier::Disk => "disk",
        }
    }
}

/// PCIe bandwidth (both directions, like the catalog's field) assumed when the catalog GPU has
/// none, bytes/s (PCIe Gen4 x16 nominal: 32 GB/s per direction).
pub const DEFAULT_PCIE_BW: f64 = 64e9;
/// Default host RAM available for the cache, bytes.
pub const DEFAULT_RAM_CAPACITY: f64 = 512.0 * 1024.0 * 1024.0 * 1024.0;
/// Default local disk capacity, bytes (a 3.84 TB NVMe drive).
pub const DEFAULT_DISK_CAPACITY: f64 = 3.84e12;

/// A cache configuration with its bandwidths.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cache {
    /// Tier.
    pub tier: Tier,
    /// Read bandwidth into the GPU, bytes/s.
    pub read_bw_bytes_per_s: f64,
    /// Write bandwidth from the GPU, bytes/s.
    pub write_bw_bytes_per_s: f64,
    /// Capacity of the tier, bytes (GPU: device memory less 16 bytes per parameter for the
    /// training state when built by `PointSpec::to_params`; activations are not counted).
    pub capacity_bytes: f64,
    /// AutoFreeze's one-epoch lag before entries are written.
    pub lag: bool,
}

impl Cache {
    /// No cache.
    pub fn none() -> Self {
        Cache {
            tier: Tier::None,
            read_bw_bytes_per_s: f64::INFINITY,
            write_bw_bytes_per_s: f64::INFINITY,
            capacity_bytes: 0.0,
            lag: false,
        }
    }

    /// The tier's defaults on `gpu`, with optional overrides (bytes/s, bytes).
    ///
    /// # Errors
    /// Non-positive overrides.
    pub fn new(
        tier: Tier,
        gpu: &Gpu,
        lag: bool,
        read_bw: Option<f64>,
        write_bw: Option<f64>,
        capacity: Option<f64>,
    ) -> Result<Self> {
        // The catalog gives both directions; a cache read (host → GPU) or write (GPU → host)
        // uses one.
        let pcie = gpu.pcie_bw_bytes_per_s.unwrap_or(DEFAULT_PCIE_BW) / 2.0;
        let (r, w, c) = match tier {
            Tier::None => {
                // Overrides of a cache that is not there would be ignored: refuse them.
                for (key, v) in [
                    ("cache_read_bw_bytes_per_s (--cache-read-bw)", read_bw),
                    ("cache_write_bw_bytes_per_s (--cache-write-bw)", write_bw),
                    ("cache_capacity_bytes (--cache-capacity)", capacity),
                ] {
                    if let Some(v) = v {
                        return Err(crate::error::Error::range(
                            key,
                            check::show(v),
                            "given only with a cache tier (--cache gpu, ram or disk)",
                        ));
                    }
                }
                return Ok(Cache {
                    lag,
                    ..Cache::none()
                });
            }
            Tier::Gpu => (
                gpu.hbm_bw_bytes_per_s,
                gpu.hbm_bw_bytes_per_s,
                gpu.memory_bytes,
            ),
            Tier::Ram => (pcie, pcie, DEFAULT_RAM_CAPACITY),
            Tier::Disk => (7e9_f64.min(pcie), 5e9_f64.min(pcie), DEFAULT_DISK_CAPACITY),
        };
        Ok(Cache {
            tier,
            read_bw_bytes_per_s: read_bw
                .map(|x| {
                    bounded(
                        "cache_read_bw_bytes_per_s",
                        x,
                        MAX_CACHE_BW_BYTES_PER_S,
                        "bytes/s",
                    )
                })
                .transpose()?
                .unwrap_or(r),
            write_bw_bytes_per_s: write_bw
                .map(|x| {
                    bounded(
                        "cache_write_bw_bytes_per_s",
                        x,
                        MAX_CACHE_BW_BYTES_PER_S,
                        "bytes/s",
                    )
                })
                .transpose()?
                .unwrap_or(w),
            capacity_bytes: capacity
                .map(|x| bounded("cache_capacity_bytes", x, MAX_CACHE_CAPACITY_BYTES, "bytes"))
                .transpose()?
                .unwrap_or(c),
            lag,
        })
    }
}

/// Largest cache bandwidth override, bytes/s (the [`check::MAX_GBPS`] link, 125 TB/s).
pub const MAX_CACHE_BW_BYTES_PER_S: f64 = check::MAX_GBPS * 1e9 / 8.0;

/// Largest cache capacity override, bytes (1 EB).
pub const MAX_CACHE_CAPACITY_BYTES: f64 = 1e18;

/// `v` finite in `(0, max]` (`unit` for the message).
fn bounded(field: &str, v: f64, max: f64, unit: &str) -> Result<f64> {
    if v.is_finite() && v > 0.0 && v <= max {
        Ok(v)
    } else {
        Err(crate::error::Error::range(
            field,
            check::show(v),
            format!("in (0, {max:e}] {unit}"),
        ))
    }
}

/// The shape of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunShape {
    /// Epochs.
    pub epochs: u32,
    /// Training samples per epoch.
    pub samples: u64,
    /// Samples per iteration.
    pub batch: u32,
}

/// Largest number of iterations a run may have (the simulation visits each).
pub const MAX_STEPS: u64 = 100_000_000;

impl RunShape {
    /// A validated shape.
    ///
    /// # Errors
    /// Zero epochs/samples/batch, or more than [`MAX_STEPS`] iterations in all.
    pub fn new(epochs: u32, samples: u64, batch: u32) -> Result<Self> {
        check::int_in("epochs", i64::from(epochs), 1, 1_000_000)?;
        check::int_in("samples", samples.min(i64::MAX as u64) as i64, 1, i64::MAX)?;
        check::int_in("batch", i64::from(batch), 1, 1 << 24)?;
        let s = RunShape {
            epochs,
            samples,
            batch,
        };
        let steps = u128::from(s.iters_per_epoch()) * u128::from(epochs);
        if steps > u128::from(MAX_STEPS) {
            return Err(Error::range(
                "epochs × ⌈samples / batch⌉",
                steps,
                format!("at most {MAX_STEPS} iterations"),
            ));
        }
        Ok(s)
    }

    /// Iterations per epoch, `⌈samples / batch⌉`.
    pub fn iters_per_epoch(&self) -> u64 {
        self.samples.div_ceil(u64::from(self.batch))
    }

    /// Iterations of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.iters_per_epoch() * u64::from(self.epochs)
    }

    /// Samples in the batch at position `p` of an epoch (the last may be partial).
    fn samples_at(&self, p: u64) -> f64 {
        let b = u64::from(self.batch);
        (self.samples - p * b).min(b) as f64
    }
}

/// What a simulated run costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCost {
    /// Whole run, seconds.
    pub total_s: f64,
    /// Each epoch, seconds.
    pub epoch_s: Vec<f64>,
    /// Largest size the cache reached, bytes.
    pub cache_bytes: f64,
    /// Bytes written to the cache over the run.
    pub cache_written_bytes: f64,
    /// Bytes read from the cache over the run.
    pub cache_read_bytes: f64,
    /// Time spent writing the cache, seconds.
    pub cache_write_s: f64,
    /// Time spent reading the cache, seconds.
    pub cache_read_s: f64,
    /// Forward time the cache avoided, seconds.
    pub forward_saved_s: f64,
    /// How many distinct prefix boundaries were written (more than 1 means prefix growth forced
    /// rewrites).
    pub cache_boundaries: usize,
}

/// Closed form of a run without a cache: `Σ_segments steps(segment) · t(k_segment)` over the
/// timeline's constant pieces, seconds. The simulation must agree with it (tested).
pub fn no_cache_total_s(ic: &IterCosts, timeline: &Timeline) -> f64 {
    let c = &timeline.changes;
    c.iter()
        .enumerate()
        .map(|(i, ch)| {
            let end = c.get(i + 1).map_or(timeline.total_steps, |n| n.step);
            end.saturating_sub(ch.step) as f64 * ic.base[ch.frozen_layers]
        })
        .sum()
}

/// Simulates a run iteration by iteration (see the module docs).
pub fn simulate(ic: &IterCosts, timeline: &Timeline, shape: &RunShape, cache: &Cache) -> RunCost {
    let ipe = shape.iters_per_epoch();
    let caching = cache.tier != Tier::None;
    // Boundary cached per epoch position (0 = none); layers ≤ MAX_LAYERS = 10 000 fit in u16, so a
    // run at the MAX_STEPS limit needs at most 200 MB here.
    let mut entry: Vec<u16> = if caching {
        vec![0; ipe as usize]
    } else {
        Vec::new()
    };
    let mut out = RunCost {
        total_s: 0.0,
        epoch_s: Vec::with_capacity(shape.epochs as usize),
        cache_bytes: 0.0,
        cache_written_bytes: 0.0,
        cache_read_bytes: 0.0,
        cache_write_s: 0.0,
        cache_read_s: 0.0,
        forward_saved_s: 0.0,
        cache_boundaries: 0,
    };
    let mut boundaries = std::collections::BTreeSet::new();
    let mut bytes_now = 0.0;
    let mut ci = 0usize; // index of the timeline change in force
    let changes = &timeline.changes;
    for e in 0..u64::from(shape.epochs) {
        let start = e * ipe;
        let k_start = timeline.frozen_at(start);
        let mut epoch = 0.0;
        for pos in 0..ipe {
            let step = start + pos;
            while ci + 1 < changes.len() && changes[ci + 1].step <= step {
                ci += 1;
            }
            let k = changes[ci].frozen_layers;
            let mut t = ic.base[k];
            if caching && k > 0 {
                let n = shape.samples_at(pos);
                let c = entry[pos as usize] as usize;
                let write_ok = !cache.lag || k == k_start;
                if c > 0 && c <= k {
                    let rb = n * ic.act[c];
                    let rs = rb / cache.read_bw_bytes_per_s;
                    t += rs - ic.fwd_prefix[c];
                    out.cache_read_bytes += rb;
                    out.cache_read_s += rs;
                    out.forward_saved_s += ic.fwd_prefix[c];
                }
                if c != k && write_ok {
                    let wb = n * ic.act[k];
                    let ws = wb / cache.write_bw_bytes_per_s;
                    t += ws;
                    out.cache_written_bytes += wb;
                    out.cache_write_s += ws;
                    bytes_now += wb - if c > 0 { n * ic.act[c] } else { 0.0 };
                    out.cache_bytes = out.cache_bytes.max(bytes_now);
                    entry[pos as usize] = k as u16;
                    boundaries.insert(k);
                }
            }
            epoch += t;
        }
        out.total_s += epoch;
        out.epoch_s.push(epoch);
    }
    out.cache_boundaries = boundaries.len();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uni(l: usize) -> Profile {
        Profile::uniform(l, 1).unwrap()
    }

    #[test]
    fn worked_example_and_mask_semantics() {
        let p = uni(12);
        let ic = IterCosts::new(&p);
        // Tolerance 1e-12 s: sums of a few 1e-3 terms.
        assert!((ic.base[6] - 0.023).abs() < 1e-12, "{}", ic.base[6]);
        assert!((ic.base[0] - 0.035).abs() < 1e-12);
        assert!((ic.base[12] - 0.012).abs() < 1e-12);
        assert!((ic.base[11] - 0.013).abs() < 1e-12);
        for k in 0..=12 {
            let mask: Vec<bool> = (0..12).map(|i| i >= k).collect();
            assert!((iteration_s(&p.layers, &mask) - ic.base[k]).abs() < 1e-12);
        }
        // A non-prefix mask: only layer 3 trainable → 12 fwd + 1 wgrad + 8 igrad (layers 4..11).
        let mut m = vec![false; 12];
        m[3] = true;
        assert!((iteration_s(&p.layers, &m) - 0.021).abs() < 1e-12);
    }

    fn cached(act: f64, bw: f64, lag: bool) -> (Profile, Cache) {
        let mut p = uni(4);
        for l in &mut p.layers {
            l.activation_bytes_per_sample = act;
        }
        let c = Cache {
            tier: Tier::Ram,
            read_bw_bytes_per_s: bw,
            write_bw_bytes_per_s: bw,
            capacity_bytes: 1e12,
            lag,
        };
        (p, c)
    }

    #[test]
    fn cache_hand_worked_run() {
        // 4 layers, fixed k = 2 from step 0, 3 epochs × 2 iterations of batch 1 (2 samples).
        // Per-sample cache entry 1e6 bytes at 1e9 B/s = 1 ms to write or read.
        // t(2) = 4 + 2 + 1 = 7 ms. Epoch 0 writes: 7 + 1 = 8 ms/iter; epochs 1, 2 read:
        // 7 − 2 (prefix fwd) + 1 = 6 ms/iter. Total 2·(8 + 6 + 6) = 40 ms.
        let (p, c) = cached(1e6, 1e9, false);
        let ic = IterCosts::new(&p);
        let shape = RunShape::new(3, 2, 1).unwrap();
        let mut tl = Timeline::new(shape.total_steps());
        tl.grow(0, 2);
        let r = simulate(&ic, &tl, &shape, &c);
        let want = [0.016, 0.012, 0.012];
        for (g, w) in r.epoch_s.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{:?}", r.epoch_s);
        }
        assert_eq!(r.cache_bytes, 2e6);
        assert_eq!(r.cache_boundaries, 1);
        // With the one-epoch lag and the freeze at step 1 (mid-epoch 0): epoch 0 runs t(0) = 11 then
        // t(2) = 7 without writing; epoch 1 writes (8, 8); epoch 2 reads (6, 6). Total 46 ms.
        let (_, c) = cached(1e6, 1e9, true);
        let mut tl = Timeline::new(shape.total_steps());
        tl.grow(1, 2);
        let r = simulate(&ic, &tl, &shape, &c);
        assert!((r.total_s - 0.046).abs() < 1e-12, "{:?}", r.epoch_s);
        // Without the lag: epoch 0 = 11 + 8; epoch 1: position 0 writes (8), position 1 reads (6);
        // epoch 2 reads twice. Total 19 + 14 + 12 = 45 ms.
        let c2 = Cache { lag: false, ..c };
        let r = simulate(&ic, &tl, &shape, &c2);
        assert!((r.total_s - 0.045).abs() < 1e-12, "{:?}", r.epoch_s);
    }

    #[test]
    fn prefix_growth_rewrites_from_the_old_boundary() {
        // k = 1 in epoch 0 (write), k = 3 from epoch 1: epoch 1 reads boundary 1, runs layers 1, 2
        // forward and writes boundary 3; epoch 2 reads boundary 3. Batch 1, 1 sample, 1 ms I/O.
        // t(1) = 4 + 3 + 2 = 9; t(3) = 4 + 1 + 0 = 5.
        // Epoch 0: 9 + 1 (write) = 10. Epoch 1: 5 − 1 + 1 (read) + 1 (write) = 6. Epoch 2: 5 − 3 + 1 = 3.
        let (p, c) = cached(1e6, 1e9, false);
        let ic = IterCosts::new(&p);
        let shape = RunShape::new(3, 1, 1).unwrap();
        let mut tl = Timeline::new(3);
        tl.grow(0, 1);
        tl.grow(1, 3);
        let r = simulate(&ic, &tl, &shape, &c);
        for (g, w) in r.epoch_s.iter().zip([0.010, 0.006, 0.003]) {
            assert!((g - w).abs() < 1e-12, "{:?}", r.epoch_s);
        }
        assert_eq!(r.cache_boundaries, 2);
        assert_eq!(r.cache_bytes, 1e6);
        assert_eq!(r.cache_written_bytes, 2e6);
    }

    #[test]
    fn tiers_and_shapes_validate() {
        assert!(Tier::parse("ssd")
            .unwrap_err()
            .to_string()
            .contains("unknown cache tier 'ssd'"));
        assert!(RunShape::new(0, 1, 1)
            .unwrap_err()
            .to_string()
            .contains("epochs = 0"));
        assert!(RunShape::new(1000, 1_000_000_000, 1)
            .unwrap_err()
            .to_string()
            .contains("at most 100000000 iterations"));
        let s = RunShape::new(2, 10, 4).unwrap();
        assert_eq!(
            (s.iters_per_epoch(), s.total_steps(), s.samples_at(2)),
            (3, 6, 2.0)
        );
    }
}
