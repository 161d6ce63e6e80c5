//! Calibration of the embedding-cache pipeline model from the GPU harness's micro-measurements
//! (`perfcast-gpu embcache micro`), and the predictor of its end-to-end iteration times
//! (`perfcast-gpu embcache e2e`), issue 16.
//!
//! # Model
//! One training iteration with `B` samples, `U` unique rows, of which `h` hit the device cache,
//! `m` are fetched from host memory and `w` are written back (evicted, or not kept after the
//! step), every term a function of its count (0 for `n = 0`; see *Row terms* below):
//! - dense step `c(B)` (forward, backward, optimizers, lookups of the work rows) — `compute`;
//! - gathering the `h` hit rows from the cache `g(h)` — `gather`; storing the `U` updated rows
//!   back into slots `s(U − q)` (`q` rows not kept) — `scatter`;
//! - the miss path `f(m)`: host gather into pinned staging + H2D copy + store — `fetch_path`;
//! - the write-back path `wb(w)`: device gather + D2H copy + host scatter — `writeback_path`.
//!
//! On demand (LRU, FIFO, LFU, static top-k, Belady; the harness's one-stream execution):
//! `t_b = c(B) + d_b·τ(B) + g(h_b) + s(k_b) + f(m_b) + wb(w_b)`.
//!
//! `c(B)` is the step as the micro-measurement times it: back to back, the host launching step
//! `b+1` while the device still runs step `b`, so it costs `max(host launches, device work)`.
//! The harness's on-demand loop (`validation/src/embcache/engine.rs`) waits on the host for every
//! write-back copy it issues on the compute stream: after the `post_wb` copy (right after the
//! step) and after the `pre_wb` copy (before the next batch's step). Either wait drains the
//! device, so the device work still queued behind the step's last launch — the tail `τ(B)` — is
//! no longer hidden under the next step's launches. `d_b = 1` when step `b` is drained: batch
//! `b` writes back rows it does not keep (`post_wb > 0`), batch `b+1` evicts rows before its
//! step (`pre_wb > 0`), or `b` is the last batch (the timed loop ends with a device
//! synchronization). `τ(B) = S(B) − c(B)`, where `S(B)` is the step synchronized after every call
//! (the overlap micro's `overlap_compute_s`, median over its row counts): the device backlog
//! grows with the step's device work, so `τ` is interpolated linearly in `B` through the
//! measured batch sizes from `τ(0) = 0` (the last segment's slope above the largest). At small
//! batches the step is host-launch bound and `τ` vanishes; at 4096 samples it is ~2 ms.
//! The resident run and the prefetching loop never wait on the step (`d_b = 0`): the prefetch
//! loop's host waits are on copy-stream events that do not follow the step.
//! Prefetching (Bagpipe lookahead): batch `b+1`'s misses and batch `b`'s write-backs run on a
//! second stream during batch `b`'s step: with `C_b = c(B) + g(U_b) + s(U_b)` and
//! `X_b = f(m_{b+1}) + wb(w_b)`, `t_b = max(C_b, X_b) + (1 − φ)·min(C_b, X_b)`, where `φ` is the
//! measured overlap fraction (1: the shorter is hidden), plus `f(m_0)` once.
//! The mean over batches is the iteration time (`iter_s`).
//!
//! The step `c(B)` and tail `τ(B)` are those of the e2e row's model shape when the micro rows
//! time the step at more than one table count ([`Calibration::for_tables`]; the e2e grid runs a
//! 26-table and a 2-table model), else the pooled ones.
//!
//! # Row terms
//! The four row paths are interpolated piecewise linearly through the measured medians per row
//! count ([`Calibration::gather_s`] …; flat below the smallest count, the last segment's slope
//! above the largest), not priced by their affine fits. The cost per row is not constant over the
//! micro grid's 64…262 144 rows, for reasons in the harness itself: the host gather and scatter
//! (`validation/src/embcache/xfer.rs`) run on one thread below 4096 rows and on up to 8 spawned
//! threads from 4096 (`rows / 2048`), and the rows they touch fit in the host's caches at small
//! counts and not at large ones; the copies are latency-bound at small counts. On run 20's micro
//! rows the relative affine fits missed their own medians by up to 61% (`fetch_path`,
//! `writeback_path`) and priced 5 000 rows at less than half the medians around that count
//! (fetch 0.19 vs 0.42–1.05 ms measured at 4 096–16 384 rows): exactly the range an e2e batch
//! moves (2 000–14 000 rows at batch 1024/4096), so every miss-heavy point was under-predicted.
//! The affine fits are still computed and reported (and used when a calibration has fewer than
//! two sizes of a term, e.g. a file written before the points were stored).
//!
//! # Fit
//! The points of a term are its micro medians, the mean of the medians at a size measured more
//! than once. Each affine term is a least-squares fit of the micro medians minimising the
//! *relative* residuals `Σ ((t_i − α − β·n_i) / t_i)²`, with `α, β ≥ 0` (a negative intercept is
//! refitted through the origin). `φ` is the median of the measured `overlap_fraction`s; `τ` as
//! above (medians per batch size, clamped at 0).

pub mod run;

use super::policy::{self, Policy, PolicyKind};
use super::trace::DenseTrace;
use crate::error::{Error, Result};
use serde::Serialize;

/// `t(n) = alpha_s + beta_s · n` for `n > 0`, 0 for `n = 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Affine {
    /// Fixed cost per call, s.
    pub alpha_s: f64,
    /// Cost per unit (row or sample), s.
    pub beta_s: f64,
}

impl Calibration {
    /// Device tail of a drained step of `batch` samples, s: `τ(B)` interpolated through
    /// `(0, 0)` and [`Calibration::tail_points`] (the last segment's slope above; 0 without
    /// points).
    pub fn tail_s(&self, batch: f64) -> f64 {
        let mut p = Vec::with_capacity(self.tail_points.len() + 1);
        p.push((0.0, 0.0));
        p.extend(self.tail_points.iter().copied().filter(|q| q.0 > 0.0));
        if p.len() < 2 || batch <= 0.0 {
            return 0.0;
        }
        let i = p
            .iter()
            .position(|q| q.0 >= batch)
            .unwrap_or(p.len() - 1)
            .max(1);
        let ((x0, y0), (x1, y1)) = (p[i - 1], p[i]);
        (y0 + (y1 - y0) * (batch - x0) / (x1 - x0)).max(0.0)
    }

    /// Dense step time for `batch` samples, s.
    pub fn compute_s(&self, batch: f64) -> f64 {
        match self.compute_points.len() {
            0 => self.compute.at(batch),
            // One measured batch size (a model shape timed at its e2e batch only): flat.
            1 => self.compute_points[0].1,
            _ => interpolate(&self.compute_points, batch),
        }
    }

    /// The calibration an e2e row of a model with `tables` lookup tables is predicted with: the
    /// step and tail measured at that table count when the micro rows have them
    /// ([`Calibration::shapes`]), else the pooled ones. The row paths do not depend on the model.
    ///
    /// Why: the step is host-launch bound at small batches and device bound at large ones, and
    /// its device work grows with the interaction's `(T+1)²` pairs; the e2e grid runs a 26-table
    /// model (Criteo-like) and a 2-table one (MovieLens), so one table count's step says little
    /// about the other's.
    pub fn for_tables(&self, tables: u32) -> Calibration {
        let mut c = self.clone();
        if let Some(sh) = self.shapes.iter().find(|s| s.tables == tables) {
            c.compute_points = sh.compute_points.clone();
            if !sh.tail_points.is_empty() {
                c.tail_points = sh.tail_points.clone();
            }
        }
        c
    }

    /// Gathering `n` hit rows from the cache, s (0 for `n = 0`).
    pub fn gather_s(&self, n: f64) -> f64 {
        row_term(&self.gather_points, &self.gather, n)
    }

    /// Storing `n` updated rows into their slots, s (0 for `n = 0`).
    pub fn scatter_s(&self, n: f64) -> f64 {
        row_term(&self.scatter_points, &self.scatter, n)
    }

    /// The miss path of `n` rows (host gather, H2D, store), s (0 for `n = 0`).
    pub fn fetch_s(&self, n: f64) -> f64 {
        row_term(&self.fetch_points, &self.fetch, n)
    }

    /// The write-back path of `n` rows (device gather, D2H, host scatter), s (0 for `n = 0`).
    pub fn writeback_s(&self, n: f64) -> f64 {
        row_term(&self.writeback_points, &self.writeback, n)
    }
}

/// Piecewise-linear interpolation through `p` (sorted by `x`, at least 2 points): flat below the
/// first point, the last segment's slope above the last, clamped at 0.
fn interpolate(p: &[(f64, f64)], x: f64) -> f64 {
    if x <= p[0].0 || p.len() == 1 {
        return p[0].1;
    }
    let i = p
        .iter()
        .position(|q| q.0 >= x)
        .unwrap_or(p.len() - 1)
        .max(1);
    let ((x0, y0), (x1, y1)) = (p[i - 1], p[i]);
    (y0 + (y1 - y0) * (x - x0) / (x1 - x0)).max(0.0)
}

/// A row term at `n` rows: 0 for none, else interpolated through its measured medians, or the
/// affine fit when fewer than two sizes were measured.
fn row_term(points: &[(f64, f64)], affine: &Affine, n: f64) -> f64 {
    if n <= 0.0 {
        0.0
    } else if points.len() < 2 {
        affine.at(n)
    } else {
        interpolate(points, n)
    }
}

/// `(size, value)` points sorted by size, the mean of the values at a repeated size.
fn medians_by_size(mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64, f64)> = Vec::new();
    for (x, y) in pts {
        match out.last_mut() {
            Some(last) if last.0 == x => {
                last.1 += y;
                last.2 += 1.0;
            }
            _ => out.push((x, y, 1.0)),
        }
    }
    out.into_iter().map(|(x, y, k)| (x, y / k)).collect()
}

impl Affine {
    /// Time for `n` units, s.
    pub fn at(&self, n: f64) -> f64 {
        if n <= 0.0 {
            0.0
        } else {
            self.alpha_s + self.beta_s * n
        }
    }

    /// Relative least squares with `α, β ≥ 0` over `(n, t)` points (at least 2 distinct `n`).
    ///
    /// # Errors
    /// Fewer than two distinct sizes; non-positive times.
    pub fn fit(term: &str, pts: &[(f64, f64)]) -> Result<Affine> {
        if let Some(&(n, t)) = pts.iter().find(|p| !(p.1 > 0.0 && p.0 >= 0.0)) {
            return Err(Error::range(
                format!("{term} measurement"),
                format!("n={n}, t={t}"),
                "a positive time at a size >= 0",
            ));
        }
        let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        if xs.len() < 2 {
            return Err(Error::range(
                format!("{term} sizes"),
                xs.len(),
                "at least 2 distinct sizes to fit a fixed and a per-unit cost",
            ));
        }
        // Weighted normal equations with weights 1/t²: rows (1/t, n/t) → target 1.
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(n, t) in pts {
            let (u, v) = (1.0 / t, n / t);
            a11 += u * u;
            a12 += u * v;
            a22 += v * v;
            b1 += u;
            b2 += v;
        }
        let det = a11 * a22 - a12 * a12;
        let (alpha, beta) = ((b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det);
        if alpha >= 0.0 && beta >= 0.0 && det.abs() > 0.0 {
            return Ok(Affine {
                alpha_s: alpha,
                beta_s: beta,
            });
        }
        // Constrained: through the origin (β only) or constant (α only), whichever fits better.
        let beta0 = b2 / a22;
        let alpha0 = b1 / a11;
        let err = |a: f64, b: f64| -> f64 {
            pts.iter()
                .map(|&(n, t)| ((t - a - b * n) / t).powi(2))
                .sum()
        };
        Ok(if err(0.0, beta0) <= err(alpha0, 0.0) {
            Affine {
                alpha_s: 0.0,
                beta_s: beta0.max(0.0),
            }
        } else {
            Affine {
                alpha_s: alpha0.max(0.0),
                beta_s: 0.0,
            }
        })
    }
}

/// One micro-measurement median, as the fit needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroPoint {
    /// `op` parameter (`gather`, `scatter`, `fetch_path`, `writeback_path`, `compute`, `overlap`, …).
    pub op: String,
    /// Rows moved (row ops, overlap) or samples (compute).
    pub size: f64,
    /// Metric (`<op>_s`, `overlap_fraction`, …).
    pub metric: String,
    /// Value (median).
    pub value: f64,
    /// Lookup tables of the model the step was timed with (`tables` parameter of the `compute`
    /// and `overlap` rows; `None` for the row ops and rows without it).
    pub tables: Option<u32>,
}

/// The dense step of one model shape (table count), when the micro rows time the step at more
/// than one: the e2e rows of a shape use its own step and tail (see
/// [`Calibration::for_tables`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepShape {
    /// Lookup tables of the model.
    pub tables: u32,
    /// The step's medians `(samples, s)` at this shape (as [`Calibration::compute_points`]).
    pub compute_points: Vec<(f64, f64)>,
    /// The device tail at this shape (as [`Calibration::tail_points`]); empty: the pooled tail.
    pub tail_points: Vec<(f64, f64)>,
}

/// The fitted pipeline model of one GPU and software stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Dense step per batch, per sample (the affine fit, reported; predictions use
    /// [`Calibration::compute_s`]).
    pub compute: Affine,
    /// Measured dense-step medians `(samples, s)`, sorted by samples: the step is host-launch
    /// bound at small batches and device bound at large ones (not affine), so predictions
    /// interpolate these piecewise linearly (flat below the smallest batch, the last segment's
    /// slope above the largest).
    pub compute_points: Vec<(f64, f64)>,
    /// Gather of hit rows from the cache, per row (the affine fit, reported; predictions use
    /// [`Calibration::gather_s`]).
    pub gather: Affine,
    /// Store of updated rows into slots, per row (affine fit; see [`Calibration::scatter_s`]).
    pub scatter: Affine,
    /// The miss path (host gather + H2D + store), per row (affine fit; see
    /// [`Calibration::fetch_s`]).
    pub fetch: Affine,
    /// The write-back path (device gather + D2H + host scatter), per row (affine fit; see
    /// [`Calibration::writeback_s`]).
    pub writeback: Affine,
    /// Measured `gather_s` medians `(rows, s)`, sorted by rows (empty: the affine fit prices it).
    pub gather_points: Vec<(f64, f64)>,
    /// Measured `scatter_s` medians `(rows, s)`, sorted by rows.
    pub scatter_points: Vec<(f64, f64)>,
    /// Measured `fetch_path_s` medians `(rows, s)`, sorted by rows.
    pub fetch_points: Vec<(f64, f64)>,
    /// Measured `writeback_path_s` medians `(rows, s)`, sorted by rows.
    pub writeback_points: Vec<(f64, f64)>,
    /// Fraction of the shorter of step and transfer hidden when both run together, in [0, 1].
    pub overlap: f64,
    /// Device tail of a step the host waits for, `(samples, s)` sorted by samples: the step
    /// synchronized after every call (`overlap_compute_s`, median per batch size) minus
    /// [`Calibration::compute_s`] at that size, clamped at 0. See [`Calibration::tail_s`].
    pub tail_points: Vec<(f64, f64)>,
    /// Largest relative residual of each fitted term over its points, in term order above.
    pub max_rel_residual: [f64; 5],
    /// The step per table count, when the micro rows time more than one model shape (empty
    /// otherwise: the pooled [`Calibration::compute_points`] are that one shape's).
    pub shapes: Vec<StepShape>,
}

fn points_of(p: &[MicroPoint], op: &str, metric: &str) -> Vec<(f64, f64)> {
    p.iter()
        .filter(|x| x.op == op && x.metric == metric)
        .map(|x| (x.size, x.value))
        .collect()
}

fn max_rel(a: &Affine, pts: &[(f64, f64)]) -> f64 {
    pts.iter()
        .map(|&(n, t)| ((a.at(n) - t) / t).abs())
        .fold(0.0, f64::max)
}

/// Fits every term from micro points.
///
/// # Errors
/// A term with fewer than two sizes, non-positive times, or no overlap measurement.
pub fn fit(p: &[MicroPoint]) -> Result<Calibration> {
    let terms = [
        ("compute", "compute_s"),
        ("gather", "gather_s"),
        ("scatter", "scatter_s"),
        ("fetch_path", "fetch_path_s"),
        ("writeback_path", "writeback_path_s"),
    ];
    let mut fits = Vec::with_capacity(5);
    let mut medians = Vec::with_capacity(5);
    let mut res = [0.0; 5];
    for (i, (op, metric)) in terms.iter().enumerate() {
        let pts = points_of(p, op, metric);
        let a = Affine::fit(op, &pts)?;
        res[i] = max_rel(&a, &pts);
        fits.push(a);
        medians.push(medians_by_size(pts));
    }
    let mut phis: Vec<f64> = p
        .iter()
        .filter(|x| x.op == "overlap" && x.metric == "overlap_fraction")
        .map(|x| x.value)
        .collect();
    if phis.is_empty() {
        return Err(Error::range(
            "overlap_fraction measurements",
            0,
            "at least 1 (perfcast-gpu embcache micro --overlap-batches)",
        ));
    }
    phis.sort_by(f64::total_cmp);
    let overlap = phis[phis.len() / 2].clamp(0.0, 1.0);
    let mut synced = points_of(p, "overlap", "overlap_compute_s");
    if synced.is_empty() {
        return Err(Error::range(
            "overlap_compute_s measurements",
            0,
            "at least 1 (the step synchronized every call: perfcast-gpu embcache micro --overlap-batches)",
        ));
    }
    synced.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    // Several medians at one batch size or row count: keep their mean.
    let mut medians = medians.into_iter();
    let mut next = || medians.next().unwrap_or_default();
    let compute_points = next();
    let (gather_points, scatter_points, fetch_points, writeback_points) =
        (next(), next(), next(), next());
    let mut cal = Calibration {
        compute_points,
        gather_points,
        scatter_points,
        fetch_points,
        writeback_points,
        compute: fits[0],
        gather: fits[1],
        scatter: fits[2],
        fetch: fits[3],
        writeback: fits[4],
        overlap,
        tail_points: Vec::new(),
        max_rel_residual: res,
        shapes: Vec::new(),
    };
    cal.tail_points = tail_points(&cal, &synced);
    // Step shapes: the compute rows' table counts, when there is more than one.
    let mut counts: Vec<u32> = p
        .iter()
        .filter(|x| x.op == "compute" && x.metric == "compute_s")
        .filter_map(|x| x.tables)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() > 1 {
        for t in counts {
            let of = |op: &str, metric: &str| -> Vec<(f64, f64)> {
                p.iter()
                    .filter(|x| x.op == op && x.metric == metric && x.tables == Some(t))
                    .map(|x| (x.size, x.value))
                    .collect()
            };
            let mut shape = cal.clone();
            shape.compute_points = medians_by_size(of("compute", "compute_s"));
            let mut synced_t = of("overlap", "overlap_compute_s");
            synced_t.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let tail_points = tail_points(&shape, &synced_t);
            cal.shapes.push(StepShape {
                tables: t,
                compute_points: shape.compute_points,
                tail_points,
            });
        }
    }
    Ok(cal)
}

/// Median synchronized step per batch size (`synced` sorted by size, then time), minus the
/// back-to-back step of `cal` there, clamped at 0.
fn tail_points(cal: &Calibration, synced: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < synced.len() {
        let b = synced[i].0;
        let j = synced[i..].iter().take_while(|q| q.0 == b).count() + i;
        let med = median_sorted(&synced[i..j].iter().map(|q| q.1).collect::<Vec<_>>());
        out.push((b, (med - cal.compute_s(b)).max(0.0)));
        i = j;
    }
    out
}

/// Median of values sorted ascending (mean of the middle two for an even count).
fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Per-batch counts of one policy run, as the harness moves rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoveCounts {
    /// Unique rows per batch.
    pub unique: Vec<u32>,
    /// Rows fetched (first access missed) per batch.
    pub misses: Vec<u32>,
    /// Rows written back per batch: resident rows outside the batch that left, resident rows of
    /// the batch whose first access missed (evicted before it), and rows of the batch not
    /// resident after it (the harness's `pre_wb` + `post_wb`).
    pub writebacks: Vec<u32>,
    /// Rows of the batch not resident after it (bypassed or evicted during the batch).
    pub not_kept: Vec<u32>,
}

/// Drives `kind` with `capacity` over `trace` (the simulator's own policy objects, in trace
/// order) and counts what the harness moves per batch.
///
/// This takes a loaded trace, not a stream (unlike the study and `perfcast embcache`): it asks
/// the policy which of a batch's rows are resident before and after the batch (`contains`),
/// which the in-memory policy objects ([`policy::build`]: Belady's next uses, static top-k's
/// profile, lookahead's batches from the whole trace) answer, and its traces are those of the
/// e2e rows ([`run::trace_of`]): `batch × n_batches × tables` lookups that the GPU harness held
/// in memory itself to run them, so they are never longer than what was measured.
///
/// # Errors
/// The policy's errors (lookahead below the two-batch working set); a capacity of 0.
pub fn move_counts(trace: &DenseTrace, kind: PolicyKind, capacity: usize) -> Result<MoveCounts> {
    if capacity == 0 {
        return Err(Error::range("cache", 0, "≥ 1 row"));
    }
    let mut p = policy::build(kind, capacity, trace)?;
    let mut seen = vec![u32::MAX; trace.n_rows()];
    let mut was = vec![false; trace.n_rows()];
    let mut out = MoveCounts::default();
    let mut uniq = Vec::new();
    for b in 0..trace.n_batches() {
        // S0 membership of the batch's rows, before any of its accesses.
        uniq.clear();
        for &r in trace.batch(b) {
            if seen[r as usize] != b as u32 {
                seen[r as usize] = b as u32;
                was[r as usize] = p.contains(r);
                uniq.push(r);
            }
        }
        let len0 = p.len();
        let mut first = vec![true; uniq.len()];
        let mut missed_resident = 0u32; // rows of S0 whose first access missed
        let mut m = 0u32;
        let mut pos = std::collections::HashMap::with_capacity(uniq.len());
        for (i, &r) in uniq.iter().enumerate() {
            pos.insert(r, i);
        }
        for &r in trace.batch(b) {
            let hit = p.access(r);
            let i = pos[&r];
            if first[i] {
                first[i] = false;
                if !hit {
                    m += 1;
                    missed_resident += u32::from(was[r as usize]);
                }
            }
        }
        let (mut not_kept, mut new, mut gone_in) = (0u32, 0usize, 0usize);
        for &r in &uniq {
            let now = p.contains(r);
            not_kept += u32::from(!now);
            new += usize::from(now && !was[r as usize]);
            gone_in += usize::from(!now && was[r as usize]);
        }
        // |S0 \ S1| = |S0| + new − |S1|; those outside the batch are written back before it.
        let gone_out = (len0 + new - p.len()) - gone_in;
        out.unique.push(uniq.len() as u32);
        out.misses.push(m);
        out.not_kept.push(not_kept);
        out.writebacks
            .push(gone_out as u32 + missed_resident + not_kept);
    }
    Ok(out)
}

/// Whether a policy runs with prefetching (lookahead) or on demand.
pub fn prefetches(kind: PolicyKind) -> bool {
    matches!(kind, PolicyKind::Lookahead { .. })
}

/// Predicted mean iteration time, s, for `batch` samples per batch.
pub fn predict_iter_s(cal: &Calibration, mc: &MoveCounts, batch: f64, prefetch: bool) -> f64 {
    let n = mc.unique.len();
    if n == 0 {
        return 0.0;
    }
    let c = cal.compute_s(batch);
    let mut total = 0.0;
    if !prefetch {
        let tail = cal.tail_s(batch);
        for b in 0..n {
            let u = f64::from(mc.unique[b]);
            let m = f64::from(mc.misses[b]);
            let kept = u - f64::from(mc.not_kept[b]);
            total += c
                + if drained(mc, b) { tail } else { 0.0 }
                + cal.gather_s(u - m)
                + cal.scatter_s(kept)
                + cal.fetch_s(m)
                + cal.writeback_s(f64::from(mc.writebacks[b]));
        }
    } else {
        total += cal.fetch_s(f64::from(mc.misses[0]));
        for b in 0..n {
            let u = f64::from(mc.unique[b]);
            let m = f64::from(mc.misses[b]);
            // Fetched rows are read from staging; hits from the cache; all U are stored.
            let step = c + cal.gather_s(u - m) + cal.scatter_s(u);
            let next = mc.misses.get(b + 1).map_or(0.0, |&x| f64::from(x));
            let xfer = cal.fetch_s(next) + cal.writeback_s(f64::from(mc.writebacks[b]));
            total += step.max(xfer) + (1.0 - cal.overlap) * step.min(xfer);
        }
    }
    total / n as f64
}

/// Whether the on-demand loop's host waits drain batch `b`'s step: `b` writes back rows it does
/// not keep (`post_wb`), batch `b+1` writes back evicted rows before its step (`pre_wb`), or `b`
/// is the last batch (the timed loop ends with a synchronization).
pub fn drained(mc: &MoveCounts, b: usize) -> bool {
    if b + 1 >= mc.unique.len() {
        return true;
    }
    let pre_next = mc.writebacks[b + 1].saturating_sub(mc.not_kept[b + 1]);
    mc.not_kept[b] > 0 || pre_next > 0
}

/// The resident (uncached) run: every row on the device, nothing moves.
pub fn predict_resident_s(cal: &Calibration, unique: &[u32], batch: f64) -> f64 {
    if unique.is_empty() {
        return 0.0;
    }
    let c = cal.compute_s(batch);
    unique
        .iter()
        .map(|&u| c + cal.gather_s(f64::from(u)) + cal.scatter_s(f64::from(u)))
        .sum::<f64>()
        / unique.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synth(op: &str, metric: &str, f: impl Fn(f64) -> f64, sizes: &[f64]) -> Vec<MicroPoint> {
        sizes
            .iter()
            .map(|&n| MicroPoint {
                op: op.into(),
                size: n,
                metric: metric.into(),
                value: f(n),
                tables: None,
            })
            .collect()
    }

    fn truth() -> Calibration {
        Calibration {
            compute: Affine {
                alpha_s: 1e-3,
                beta_s: 2e-7,
            },
            gather: Affine {
                alpha_s: 8e-6,
                beta_s: 2e-10,
            },
            scatter: Affine {
                alpha_s: 9e-6,
                beta_s: 3e-10,
            },
            fetch: Affine {
                alpha_s: 3e-5,
                beta_s: 2e-8,
            },
            writeback: Affine {
                alpha_s: 4e-5,
                beta_s: 2.5e-8,
            },
            overlap: 0.8,
            max_rel_residual: [0.0; 5],
            compute_points: vec![],
            gather_points: vec![],
            scatter_points: vec![],
            fetch_points: vec![],
            writeback_points: vec![],
            tail_points: vec![(1024.0, 4e-4), (4096.0, 2e-3)],
            shapes: vec![],
        }
    }

    fn micro(t: &Calibration) -> Vec<MicroPoint> {
        let rows = [64.0, 1024.0, 16384.0, 262144.0];
        let mut v = synth(
            "compute",
            "compute_s",
            |n| t.compute.at(n),
            &[256.0, 1024.0, 4096.0, 16384.0],
        );
        v.extend(synth("gather", "gather_s", |n| t.gather.at(n), &rows));
        v.extend(synth("scatter", "scatter_s", |n| t.scatter.at(n), &rows));
        v.extend(synth(
            "fetch_path",
            "fetch_path_s",
            |n| t.fetch.at(n),
            &rows,
        ));
        v.extend(synth(
            "writeback_path",
            "writeback_path_s",
            |n| t.writeback.at(n),
            &rows,
        ));
        for phi in [0.7, 0.8, 0.9] {
            v.push(MicroPoint {
                op: "overlap".into(),
                size: 4096.0,
                metric: "overlap_fraction".into(),
                value: phi,
                tables: None,
            });
        }
        // The synchronized step at each overlap batch: compute + tail, with a slower and a
        // faster repeat around it (the median is the middle one).
        for &(b, tail) in &t.tail_points {
            for d in [-1e-4, 0.0, 3e-4] {
                v.push(MicroPoint {
                    op: "overlap".into(),
                    size: b,
                    metric: "overlap_compute_s".into(),
                    value: t.compute.at(b) + tail + d,
                    tables: None,
                });
            }
        }
        v
    }

    #[test]
    fn fit_recovers_synthetic_terms() {
        let t = truth();
        let c = fit(&micro(&t)).unwrap();
        for (got, want) in [
            (c.compute, t.compute),
            (c.gather, t.gather),
            (c.scatter, t.scatter),
            (c.fetch, t.fetch),
            (c.writeback, t.writeback),
        ] {
            assert!(
                (got.alpha_s / want.alpha_s - 1.0).abs() < 1e-9,
                "{got:?} {want:?}"
            );
            assert!(
                (got.beta_s / want.beta_s - 1.0).abs() < 1e-9,
                "{got:?} {want:?}"
            );
        }
        assert_eq!(c.overlap, 0.8);
        assert!(c.max_rel_residual.iter().all(|&r| r < 1e-9));
        assert_eq!(c.tail_points.len(), t.tail_points.len());
        for (got, want) in c.tail_points.iter().zip(&t.tail_points) {
            assert_eq!(got.0, want.0);
            assert!((got.1 / want.1 - 1.0).abs() < 1e-9, "{got:?} {want:?}");
        }
        let no_sync: Vec<MicroPoint> = micro(&t)
            .into_iter()
            .filter(|p| p.metric != "overlap_compute_s")
            .collect();
        assert!(fit(&no_sync)
            .unwrap_err()
            .to_string()
            .contains("overlap_compute_s"));
        // Missing overlap or a single size: one clear error naming the term.
        let no_phi: Vec<MicroPoint> = micro(&t)
            .into_iter()
            .filter(|p| p.op != "overlap")
            .collect();
        assert!(fit(&no_phi).unwrap_err().to_string().contains("overlap"));
        let one = [(64.0, t.gather.at(64.0)), (64.0, t.gather.at(64.0))];
        assert!(Affine::fit("gather", &one)
            .unwrap_err()
            .to_string()
            .contains("gather sizes"));
    }

    #[test]
    fn negative_intercepts_are_refitted_non_negative() {
        // Points on t = 1e-3·n − 1e-3 (n ≥ 2): the unconstrained α is negative.
        let pts = [(2.0, 1e-3), (4.0, 3e-3), (8.0, 7e-3)];
        let a = Affine::fit("x", &pts).unwrap();
        assert!(a.alpha_s >= 0.0 && a.beta_s > 0.0, "{a:?}");
    }

    #[test]
    fn hand_worked_predictions() {
        let t = truth();
        let mc = MoveCounts {
            unique: vec![100, 100],
            misses: vec![100, 10],
            writebacks: vec![0, 10],
            not_kept: vec![0, 0],
        };
        let c = t.compute.at(64.0);
        // Both steps drained (batch 1 evicts before its step; batch 1 is the last): each pays
        // the tail τ(64) = 64/1024 · 0.4 ms = 25 µs.
        let tau = 25e-6;
        assert!((t.tail_s(64.0) - tau).abs() < 1e-15);
        let od = (c
            + tau
            + t.scatter.at(100.0)
            + t.fetch.at(100.0)
            + c
            + tau
            + t.gather.at(90.0)
            + t.scatter.at(100.0)
            + t.fetch.at(10.0)
            + t.writeback.at(10.0))
            / 2.0;
        assert!((predict_iter_s(&t, &mc, 64.0, false) - od).abs() < 1e-15);
        let s0 = c + t.scatter.at(100.0);
        let x0 = t.fetch.at(10.0);
        let s1 = c + t.gather.at(90.0) + t.scatter.at(100.0);
        let x1 = t.writeback.at(10.0);
        let pf =
            (t.fetch.at(100.0) + s0.max(x0) + 0.2 * s0.min(x0) + s1.max(x1) + 0.2 * s1.min(x1))
                / 2.0;
        assert!((predict_iter_s(&t, &mc, 64.0, true) - pf).abs() < 1e-15);
        assert!(predict_iter_s(&t, &mc, 64.0, true) < predict_iter_s(&t, &mc, 64.0, false));
    }

    #[test]
    fn drained_steps_pay_the_interpolated_tail() {
        let t = truth();
        // τ through (0, 0), (1024, 0.4 ms), (4096, 2 ms); the last slope above.
        assert_eq!(t.tail_s(0.0), 0.0);
        assert!((t.tail_s(512.0) - 2e-4).abs() < 1e-15);
        assert!((t.tail_s(2560.0) - 1.2e-3).abs() < 1e-15);
        assert!((t.tail_s(5632.0) - 2.8e-3).abs() < 1e-15);
        // Four batches: 0 keeps everything and 1 evicts nothing before its step (0 not
        // drained); 1 does not keep a row (drained); 2 keeps all, but 3 evicts before its step
        // (drained); 3 is last (drained).
        let mc = MoveCounts {
            unique: vec![10, 10, 10, 10],
            misses: vec![10, 4, 0, 3],
            writebacks: vec![0, 2, 0, 3],
            not_kept: vec![0, 2, 0, 0],
        };
        let d: Vec<bool> = (0..4).map(|b| drained(&mc, b)).collect();
        assert_eq!(d, vec![false, true, true, true]);
        // On demand, 2560 samples: τ = 1.2 ms on 3 of 4 steps; prefetching pays none.
        let mut no_tail = t.clone();
        no_tail.tail_points.clear();
        let with = predict_iter_s(&t, &mc, 2560.0, false);
        let without = predict_iter_s(&no_tail, &mc, 2560.0, false);
        assert!(
            (with - without - 0.75 * 1.2e-3).abs() < 1e-15,
            "{with} {without}"
        );
        assert_eq!(
            predict_iter_s(&t, &mc, 2048.0, true),
            predict_iter_s(&no_tail, &mc, 2048.0, true)
        );
        // The resident run never waits on a step.
        assert_eq!(
            predict_resident_s(&t, &mc.unique, 2048.0),
            predict_resident_s(&no_tail, &mc.unique, 2048.0)
        );
    }

    #[test]
    fn move_counts_follow_the_simulator() {
        let t = DenseTrace::from_rows(&[1, 2, 3, 1, 4, 1, 2, 5, 1, 2, 3, 4], 3);
        for kind in [
            PolicyKind::Lru,
            PolicyKind::Belady,
            PolicyKind::StaticTopK {
                profile_fraction: 1.0,
            },
        ] {
            let mc = move_counts(&t, kind, 2).unwrap();
            let (_, bc) = super::super::simulate(&t, kind, 2).unwrap();
            assert_eq!(mc.unique, bc.unique);
            assert_eq!(mc.misses, bc.misses);
        }
        // Static top-k with 2 rows: rows 1 and 2 hot; every other row is fetched and written
        // back in its batch.
        let mc = move_counts(
            &t,
            PolicyKind::StaticTopK {
                profile_fraction: 1.0,
            },
            2,
        )
        .unwrap();
        assert_eq!(mc.not_kept, vec![1, 1, 1, 2]);
        assert_eq!(mc.writebacks, mc.not_kept);
        assert!(move_counts(&t, PolicyKind::Lru, 0).is_err());
    }
}

#[cfg(test)]
mod row_term_tests {
    use super::*;

    fn pt(op: &str, n: f64, t: f64) -> MicroPoint {
        MicroPoint {
            op: op.into(),
            size: n,
            metric: format!("{op}_s"),
            value: t,
            tables: None,
        }
    }

    /// Run 20's shape of the miss path: latency-bound to 1024 rows, a jump where the host
    /// gather goes multi-threaded and leaves the host caches (4096), then ~25–35 ns per row.
    #[test]
    fn row_paths_interpolate_their_medians_not_the_affine_fit() {
        let shape = [
            (64.0, 28.7e-6),
            (1024.0, 75.2e-6),
            (4096.0, 420.3e-6),
            (16384.0, 1053.7e-6),
            (262144.0, 7115.4e-6),
        ];
        let mut v = Vec::new();
        for op in ["gather", "scatter", "fetch_path", "writeback_path"] {
            v.extend(shape.iter().map(|&(n, t)| pt(op, n, t)));
        }
        // A second median at 4096 rows: the point is the mean of the two.
        v.push(pt("fetch_path", 4096.0, 380.3e-6));
        v.extend([pt("compute", 256.0, 3e-3), pt("compute", 4096.0, 5e-3)]);
        v.push(MicroPoint {
            op: "overlap".into(),
            size: 4096.0,
            metric: "overlap_fraction".into(),
            value: 0.0,
            tables: None,
        });
        v.push(MicroPoint {
            op: "overlap".into(),
            size: 4096.0,
            metric: "overlap_compute_s".into(),
            value: 6e-3,
            tables: None,
        });
        let c = fit(&v).unwrap();
        assert_eq!(c.fetch_points.len(), 5);
        assert_eq!(c.fetch_points[2], (4096.0, 400.3e-6));
        assert_eq!(c.writeback_points, shape.to_vec());
        // 5000 rows: between 4096 and 16384, by hand.
        let w = 420.3e-6 + (1053.7e-6 - 420.3e-6) * (5000.0 - 4096.0) / (16384.0 - 4096.0);
        assert!((c.writeback_s(5000.0) - w).abs() < 1e-15);
        let f = 400.3e-6 + (1053.7e-6 - 400.3e-6) * (5000.0 - 4096.0) / (16384.0 - 4096.0);
        assert!((c.fetch_s(5000.0) - f).abs() < 1e-15);
        // The affine fit of the same medians is far below there (what run 20 predicted with).
        assert!(c.fetch.at(5000.0) < 0.75 * f, "{:?}", c.fetch);
        // None moved: free; below the smallest count: flat; above the largest: last slope.
        assert_eq!(c.gather_s(0.0), 0.0);
        assert_eq!(c.scatter_s(10.0), 28.7e-6);
        let slope = (7115.4e-6 - 1053.7e-6) / (262144.0 - 16384.0);
        assert!((c.gather_s(300000.0) - (7115.4e-6 + slope * 37856.0)).abs() < 1e-15);
        // The on-demand prediction prices each batch's rows through the points.
        let mc = MoveCounts {
            unique: vec![5000],
            misses: vec![5000],
            writebacks: vec![5000],
            not_kept: vec![5000],
        };
        let want = c.compute_s(1024.0) + c.tail_s(1024.0) + f + w;
        assert!((predict_iter_s(&c, &mc, 1024.0, false) - want).abs() < 1e-15);
        // Without points (a calibration file written before they were stored) the affine fit
        // prices the rows.
        let mut old = c.clone();
        old.fetch_points.clear();
        assert_eq!(old.fetch_s(5000.0), c.fetch.at(5000.0));
    }
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    fn pt(op: &str, metric: &str, size: f64, value: f64, tables: Option<u32>) -> MicroPoint {
        MicroPoint {
            op: op.into(),
            size,
            metric: metric.into(),
            value,
            tables,
        }
    }

    fn rows_and_overlap() -> Vec<MicroPoint> {
        let mut v = Vec::new();
        for op in ["gather", "scatter", "fetch_path", "writeback_path"] {
            for (n, t) in [(64.0, 1e-5), (4096.0, 4e-4)] {
                v.push(pt(op, &format!("{op}_s"), n, t, None));
            }
        }
        v.push(pt("overlap", "overlap_fraction", 4096.0, 0.0, Some(26)));
        v
    }

    #[test]
    fn the_step_is_keyed_by_table_count_when_several_are_measured() {
        let mut v = rows_and_overlap();
        // 26 tables: 3.5 ms at 256, 5.4 ms at 4096 samples; synchronized 6.1 ms at 4096.
        v.push(pt("compute", "compute_s", 256.0, 3.5e-3, Some(26)));
        v.push(pt("compute", "compute_s", 4096.0, 5.4e-3, Some(26)));
        v.push(pt("overlap", "overlap_compute_s", 4096.0, 6.1e-3, Some(26)));
        // One table count only: no shapes, the pooled points are that shape's.
        let one = fit(&v).unwrap();
        assert!(one.shapes.is_empty());
        assert_eq!(one.for_tables(2), one);
        // 2 tables at batch 50 only: 4.3 ms, synchronized 4.5 ms.
        v.push(pt("compute", "compute_s", 50.0, 4.3e-3, Some(2)));
        v.push(pt("overlap", "overlap_compute_s", 50.0, 4.5e-3, Some(2)));
        let c = fit(&v).unwrap();
        assert_eq!(c.shapes.len(), 2);
        let two = c.for_tables(2);
        // One measured batch size: flat at it.
        assert_eq!(two.compute_s(50.0), 4.3e-3);
        assert_eq!(two.compute_s(1024.0), 4.3e-3);
        assert!((two.tail_s(50.0) - 0.2e-3).abs() < 1e-15);
        let many = c.for_tables(26);
        assert_eq!(many.compute_points, vec![(256.0, 3.5e-3), (4096.0, 5.4e-3)]);
        assert!((many.tail_s(4096.0) - 0.7e-3).abs() < 1e-15);
        // A table count never timed: the pooled step over every measured point.
        let other = c.for_tables(8);
        assert_eq!(other.compute_points.len(), 3);
        assert_eq!(other.compute_s(50.0), 4.3e-3);
        // The row paths do not depend on the model shape.
        assert_eq!(two.fetch_s(1000.0), many.fetch_s(1000.0));
    }
}

#[cfg(test)]
mod compute_tests {
    use super::*;

    #[test]
    fn compute_interpolates_launch_bound_then_device_bound_steps() {
        let a = Affine {
            alpha_s: 0.0,
            beta_s: 0.0,
        };
        let c = Calibration {
            compute: a,
            gather: a,
            scatter: a,
            fetch: a,
            writeback: a,
            overlap: 0.0,
            max_rel_residual: [0.0; 5],
            tail_points: vec![],
            gather_points: vec![],
            scatter_points: vec![],
            fetch_points: vec![],
            writeback_points: vec![],
            shapes: vec![],
            // Flat 6 ms up to 4096 samples, then 16 ms at 16384 (run 10's shape).
            compute_points: vec![(256.0, 6e-3), (4096.0, 6e-3), (16384.0, 16e-3)],
        };
        assert_eq!(c.compute_s(50.0), 6e-3);
        assert_eq!(c.compute_s(1024.0), 6e-3);
        assert!((c.compute_s(10240.0) - 11e-3).abs() < 1e-12);
        assert!((c.compute_s(28672.0) - 26e-3).abs() < 1e-12);
    }
}
