//! Codec cost fit: [`CodecCost`] from codec micro-timings (rows of kind `codec`).
//!
//! Row contract (the GPU harness's codec timings): technique `gradcomp`, kind `codec`, model =
//! the method exactly as `Method::name()` prints it (`fp16`, `powersgd:rank=4`,
//! `topk:density=0.01`, ...), params `op=<stage>;rows=R;cols=C;elems=N` (stages as
//! [`CodecWork`]: PowerSGD `p`, `q`, `decode`; others `encode`, `decode`), batch = ranks whose
//! payloads a decode reads (1 when absent), metrics `time_s` (median seconds per call) and
//! `wire_bytes` (payload bytes per rank, not fitted).
//!
//! Each point's work counts come from the compressor itself ([`Compressor::codec_work`] of the
//! one-matrix bucket `R×C` plus `N − R·C` vector elements: the same counts the what-if prices),
//! so the fit is linear in `x = (launch_s, 1/cache_bw, 1/bw, 1/matmul_rate, 1/vector_rate)`:
//! `t = launches·x₀ + min(bytes, K)·x₁ + (bytes − K)⁺·x₂ + matmul·x₃ + vector·x₄` with the
//! two-regime bandwidth's knee K (one of [`CACHE_KNEES_BYTES`], the best fit; a stage's first K bytes move at the
//! rate of data still in L2: run 18's casts cost 3.0 ns per element at 2.4 M elements and 7.1 at
//! 23 M, which one bandwidth cannot price), solved by non-negative least squares
//! (Lawson & Hanson 1974, [`crate::validate::nnls`]) on relative error (each row divided by its
//! measured time). A fused stage ([`CodecWork::overlap`]: PowerSGD's `p` and `decode`) costs the
//! larger of its memory and vector terms, not their sum; its fit alternates between assigning
//! each point the term that binds it and refitting ([`fit_cost_at`]). A shared fit (one [`CodecCost`] for every compressor) is kept when every call
//! is within [`GOAL`]; otherwise each (compressor family, stage) gets its own fit over that
//! stage's points (`per-stage` mode; issue 14 item 4), with a per-family fit kept as the fallback
//! for a stage the set did not time. A rate whose work is zero in every point it is fitted on is
//! not identified and keeps the fallback's value.
//!
//! Why per stage: the harness's kernels do not follow the counted launches and bytes the same way
//! in every stage of one family (Top-k's encode runs three radix passes with a one-block pick
//! each, PowerSGD's `q` orthogonalizes in one block per matrix, at one SM's rate), so one family
//! cost cannot price all its stages. Per stage the regressors stay the model's own counts at the row's shape, so the fit
//! extrapolates by shape; the launch term is the stage's intercept divided by its counted
//! launches (a fitted `launch_s`), so a shape or rank that changes the launch count scales it.
//! The calibration set's own rows are its self-fit; [`leave_one_shape_out`] says how a stage's
//! fit extrapolates to a shape it did not see, and the hold-out sets (measured on fresh machines
//! after the fit was committed) say how it carries to another host (runs 49–53: launch-bound calls
//! carry their host's dispatch speed, ±10–20% in MAPE between H200 hosts; [`super::host`]).
//! Superseded stages
//! ([`super::step::SUPERSEDED`]) are neither fitted nor scored.

use super::GOAL;

/// Candidate knees of the two-regime bandwidth ([`CodecCost::cache_bytes`]), bytes: 0 (one
/// regime) and L2-scale sizes up to Hopper's 50 MB L2 (two 25 MB partitions; NVIDIA H100
/// Tensor Core GPU Architecture whitepaper, 2022). [`fit`] keeps the one with the least squared
/// relative error over the calibration's calls. Run 18's fp16 cast: 3.0 ns per element at
/// 2.4 M elements, 7.1 at 23 M.
pub const CACHE_KNEES_BYTES: [f64; 6] = [0.0, 8e6, 16e6, 25e6, 32e6, 50e6];
use crate::error::{Error, Result};
use crate::gradcomp::compressor::{BucketContent, CodecCost, CodecWork, Compressor, Method};
use crate::measure::Measurements;
use crate::validate::nnls::nnls;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One timed codec call.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecPoint {
    /// Set.
    pub set: String,
    /// Method name as printed (`powersgd:rank=4`).
    pub method: String,
    /// Compressor family (`powersgd`).
    pub family: String,
    /// Stage (`encode`, `decode`, `p`, `q`).
    pub op: String,
    /// The stage's work counts.
    pub work: CodecWork,
    /// The row's shape `(rows, cols, elems)`.
    pub shape: (u64, u64, u64),
    /// Median time per call, seconds.
    pub time_s: f64,
    /// Provenance date (ISO 8601).
    pub date: String,
    /// How the call ran: `eager` (every op issued by the host; rows without `exec`) or `graph`
    /// (captured once as a CUDA graph and replayed, [`EXECS`]).
    pub exec: String,
}

/// The values of a codec row's `exec` param: `eager` (the default) and `graph`. The two are
/// calibrated apart ([`of_exec`]): an eager call under ~100 µs runs at its host's issue rate,
/// a replayed graph at the GPU's.
pub const EXECS: [&str; 2] = ["eager", "graph"];

/// The points of `pts` that ran as `exec`.
pub fn of_exec(pts: &[CodecPoint], exec: &str) -> Vec<CodecPoint> {
    pts.iter().filter(|p| p.exec == exec).cloned().collect()
}

impl CodecPoint {
    /// Whether the point times a stage the harness has since replaced
    /// ([`super::step::SUPERSEDED`]).
    pub fn is_superseded(&self) -> bool {
        super::step::superseded(&self.family, Some(&self.op), &self.date).is_some()
    }
}

fn num(r: &crate::measure::Row, o: &crate::measure::Origin, key: &str) -> Result<u64> {
    let v = r.params.get(key).ok_or_else(|| {
        o.err(format!(
            "gradcomp codec row needs params `{key}` (op=<stage>;rows=R;cols=C;elems=N; got '{}')",
            r.params
        ))
    })?;
    v.parse::<u64>()
        .map_err(|_| o.err(format!("params {key} = '{v}': an integer >= 0")))
}

/// A codec row's method, stage and one-matrix bucket (`rows×cols` plus `elems − rows·cols` vector
/// elements).
fn parse_row(
    r: &crate::measure::Row,
    o: &crate::measure::Origin,
) -> Result<(Method, String, BucketContent)> {
    let m = Method::parse(&r.model).map_err(|e| o.err(format!("model: {e}")))?;
    let op = r
        .params
        .get("op")
        .ok_or_else(|| o.err("gradcomp codec row needs params `op`"))?;
    let (rr, cc, n) = (num(r, o, "rows")?, num(r, o, "cols")?, num(r, o, "elems")?);
    if n < rr * cc {
        return Err(o.err(format!(
            "params elems = {n}: at least rows·cols = {}",
            rr * cc
        )));
    }
    let bucket = BucketContent {
        matrices: if rr * cc > 0 {
            vec![(rr, cc)]
        } else {
            Vec::new()
        },
        vector_elems: n - rr * cc,
    };
    Ok((m, op.to_string(), bucket))
}

/// The codec points of `rows` (metric `time_s` of kind `codec`).
///
/// # Errors
/// An unknown method, a stage the method does not have, missing or bad shape params, or
/// `elems < rows·cols`, naming file and line.
pub fn codec_points(rows: &Measurements) -> Result<Vec<CodecPoint>> {
    let mut out = Vec::new();
    for (o, r) in &rows.rows {
        if r.kind != "codec" || r.metric != "time_s" {
            continue;
        }
        let (m, op, bucket) = parse_row(r, o)?;
        let shape = (num(r, o, "rows")?, num(r, o, "cols")?, num(r, o, "elems")?);
        if !(r.value > 0.0 && r.value.is_finite()) {
            return Err(o.err(format!("time_s = {}: must be > 0", r.value)));
        }
        let exec = r.params.get("exec").unwrap_or("eager");
        if !EXECS.contains(&exec) {
            return Err(o.err(format!("params exec = '{exec}': eager or graph")));
        }
        let mut work = Vec::new();
        m.codec_work(&bucket, r.batch.unwrap_or(1).max(1), &mut work);
        let names: Vec<&str> = work.iter().map(|w| w.op).collect();
        let w = work.iter().find(|w| w.op == op).ok_or_else(|| {
            o.err(format!(
                "params op = '{op}': not a codec stage of {} at {} (stages: {})",
                r.model,
                r.params,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })?;
        out.push(CodecPoint {
            set: r.set.clone(),
            method: m.name(),
            family: m.family(),
            op,
            work: *w,
            shape,
            time_s: r.value,
            date: r.provenance.date.clone(),
            exec: exec.to_string(),
        });
    }
    Ok(out)
}

/// The codec calibration set of `pts`: the newest (highest `-runN`) set whose name does not
/// contain `holdout` (a hold-out is measured on a fresh machine after the calibration and is
/// only ever predicted), or `None` without one. Older codec sets are predicted by its fit, as
/// embcache's and freeze's older sets are: the harness's codecs change between runs (run 44's
/// Top-k selects on the device, run 18's read three histograms per call on the host).
pub fn calibration_set(pts: &[CodecPoint]) -> Option<String> {
    pts.iter()
        .map(|p| p.set.as_str())
        .filter(|s| !s.contains("holdout"))
        .max_by_key(|s| (super::run_number(s).unwrap_or(0), s.to_string()))
        .map(str::to_string)
}

/// Provenance date from which codec sets time the current harness under the current protocol
/// (PowerSGD's one-launch orthogonalization, 10 calls per timed repeat, pool trimmed at each
/// synchronization: run 48 on).
pub const PROTOCOL_SINCE: &str = "2026-11-30T11:45:00Z";

/// Smallest median call of an eager set that calibrates eager codec costs, seconds. An eager
/// call under ~100 µs runs at its host's issue rate (runs 49–60), so a set whose median call is
/// shorter mostly measures its host: run 66's and 67's eager sets at ResNet-50's shapes (median
/// 29.6 and 32.3 µs; the BERT-base grid's sets 63–73 µs), pooled with runs 48/57/58, moved the
/// eager hold-outs 59 and 60 from 7.6 / 10.1% to 14.4 / 8.8% MAPE and run 65's eager calls at
/// ResNet's shapes from 10.5% to 20.5%. Graph-replayed sets are pooled at any median (a replay
/// costs one launch).
pub const EAGER_MIN_MEDIAN_S: f64 = 50e-6;

/// Median of `t` (0 when empty).
fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(0.0)
}

/// The codec calibration sets of `pts`: every non-hold-out set whose rows were all measured
/// since [`PROTOCOL_SINCE`], pooled (several calibration hosts: runs 49–60 put launch-bound
/// calls at 0.98–1.33× run 48's on other hosts of the same GPU model and driver, so one host sits
/// wherever it sits in that spread), except eager sets whose median call is under
/// [`EAGER_MIN_MEDIAN_S`]; else the newest non-hold-out set alone ([`calibration_set`]), as
/// before the protocol. Sorted by name.
pub fn calibration_sets(pts: &[CodecPoint]) -> Vec<String> {
    let mut current: Vec<String> = pts
        .iter()
        .filter(|p| !p.set.contains("holdout"))
        .map(|p| p.set.clone())
        .collect();
    current.sort();
    current.dedup();
    current.retain(|s| {
        let mine = || pts.iter().filter(|p| &p.set == s);
        mine().all(|p| p.date.as_str() >= PROTOCOL_SINCE)
            && (mine().any(|p| p.exec != "eager")
                || median(mine().map(|p| p.time_s).collect()) >= EAGER_MIN_MEDIAN_S)
    });
    if current.is_empty() {
        calibration_set(pts).into_iter().collect()
    } else {
        current
    }
}

/// The points of `pts` in any of `sets` that time the harness's current code ([`points_of`]).
pub fn points_of_sets(pts: &[CodecPoint], sets: &[String]) -> Vec<CodecPoint> {
    sets.iter().flat_map(|s| points_of(pts, s)).collect()
}

/// The points of `pts` in `set` that time the harness's current code (superseded stages,
/// [`super::step::SUPERSEDED`], are left out: a fit of them would price code that no longer
/// exists).
pub fn points_of(pts: &[CodecPoint], set: &str) -> Vec<CodecPoint> {
    pts.iter()
        .filter(|p| p.set == set && !p.is_superseded())
        .cloned()
        .collect()
}

/// One `wire_bytes` row against the compressor's payload model ([`Compressor::wire_bytes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WireCheck {
    /// Set.
    pub set: String,
    /// Method and params, for messages.
    pub what: String,
    /// Measured payload bytes per rank.
    pub measured_bytes: f64,
    /// The model's payload bytes per rank.
    pub model_bytes: f64,
}

impl WireCheck {
    /// Whether the model's payload equals the measured one (within 1 byte and 1e-6 relative).
    pub fn matches(&self) -> bool {
        (self.measured_bytes - self.model_bytes).abs() <= 1.0f64.max(1e-6 * self.model_bytes)
    }
}

/// Every `wire_bytes` row of kind `codec` in `rows`, checked against the payload model.
///
/// # Errors
/// As [`codec_points`].
pub fn wire_checks(rows: &Measurements) -> Result<Vec<WireCheck>> {
    let mut out = Vec::new();
    for (o, r) in &rows.rows {
        if r.kind != "codec" || r.metric != "wire_bytes" {
            continue;
        }
        let (m, _, bucket) = parse_row(r, o)?;
        out.push(WireCheck {
            set: r.set.clone(),
            what: format!("{} {}", r.model, r.params),
            measured_bytes: r.value,
            model_bytes: m.wire_bytes(&bucket),
        });
    }
    Ok(out)
}

/// One fitted [`CodecCost`] with which of its four parameters the points identified.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedCost {
    /// The costs.
    pub cost: CodecCost,
    /// Whether `launch_s`, `bw` (beyond the cache knee), `matmul`, `vector` were fitted (else
    /// datasheet).
    pub identified: [bool; 4],
    /// Whether `cache_bw_bytes_per_s` was fitted (some point moved bytes).
    #[serde(default)]
    pub cache_identified: bool,
    /// Whether `sync_s` and `block_step_s` were fitted (some point ran a one-block kernel).
    #[serde(default)]
    pub sync_identified: bool,
    /// Points fitted.
    pub points: usize,
    /// Largest |relative error| per call over those points, fraction.
    pub max_abs_pct_err: f64,
}

/// The codec section of the calibration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecFit {
    /// `shared` (one cost for every compressor), `per-family` (older files) or `per-stage`.
    pub mode: String,
    /// Knee of the shared fit's two-regime bandwidth, bytes (0: one regime); each family and
    /// stage fit has its own (`cost.cache_bytes`, [`fit_cost_best_knee`]).
    #[serde(default)]
    pub knee_bytes: f64,
    /// Sets fitted.
    pub sets: Vec<String>,
    /// The shared fit (always computed; what `shared` mode uses).
    pub shared: FittedCost,
    /// Per compressor family, in `per-family` and `per-stage` modes (in `per-stage` the fallback
    /// for a stage without its own fit).
    #[serde(default)]
    pub family: BTreeMap<String, FittedCost>,
    /// Per compressor family, per stage (`p`, `q`, `decode`, `encode`), in `per-stage` mode.
    #[serde(default)]
    pub stage: BTreeMap<String, BTreeMap<String, FittedCost>>,
    /// The calibration host's launch probe, seconds ([`super::host`]; absent when its run timed
    /// none): provenance, and the reference of `validate`'s host diagnostic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_launch_s: Option<f64>,
}

impl CodecFit {
    /// The cost for `method` (a name or a family).
    pub fn cost_for(&self, method: &str) -> Option<CodecCost> {
        let fam = method.split(':').next().unwrap_or(method);
        Some(self.family.get(fam).map_or(self.shared.cost, |f| f.cost))
    }

    /// The cost of stage `op` of `method` (a name or a family): the stage's own fit, else the
    /// family's, else the shared one.
    pub fn stage_cost(&self, method: &str, op: &str) -> CodecCost {
        let fam = method.split(':').next().unwrap_or(method);
        match self.stage.get(fam).and_then(|s| s.get(op)) {
            Some(f) => f.cost,
            None => self.family.get(fam).map_or(self.shared.cost, |f| f.cost),
        }
    }

    /// Every (family, stage, cost) of the per-stage fits: what
    /// [`crate::gradcomp::compressor::Env::codec_by_stage`] holds.
    pub fn stage_costs(&self) -> Vec<(String, String, CodecCost)> {
        self.stage
            .iter()
            .flat_map(|(f, ops)| {
                ops.iter()
                    .map(move |(op, c)| (f.clone(), op.clone(), c.cost))
            })
            .collect()
    }
}

/// Predicted time of `p` under `c`, seconds.
pub fn predict_s(c: &CodecCost, p: &CodecPoint) -> f64 {
    c.time_of(&p.work)
}

fn inv(x: f64) -> f64 {
    if x > 0.0 {
        1.0 / x
    } else {
        f64::INFINITY
    }
}

/// NNLS fit of one [`CodecCost`] with one bandwidth regime (knee 0).
///
/// # Errors
/// [`Error::OutOfRange`] for no points.
pub fn fit_cost(pts: &[&CodecPoint], datasheet: &CodecCost) -> Result<FittedCost> {
    fit_cost_at(pts, datasheet, 0.0)
}

/// NNLS fit of one [`CodecCost`] to `pts` on relative error, with a two-regime bandwidth of knee
/// `knee` bytes when the points identify it (at least two distinct byte counts on each side of
/// the knee; else one regime); `datasheet` fills what the points do not identify (the cache
/// bandwidth, when unidentified, is the datasheet's, or else the fitted beyond-knee one).
///
/// # Errors
/// [`Error::OutOfRange`] for no points.
pub fn fit_cost_at(pts: &[&CodecPoint], datasheet: &CodecCost, knee: f64) -> Result<FittedCost> {
    if pts.is_empty() {
        return Err(Error::range(
            "gradcomp codec points",
            0,
            "at least 1 row of kind codec with metric time_s",
        ));
    }
    let distinct = |f: &dyn Fn(f64) -> bool| {
        let mut v: Vec<u64> = pts
            .iter()
            .map(|p| p.work.bytes)
            .filter(|&b| f(b))
            .map(f64::to_bits)
            .collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    let knee = if knee > 0.0 && distinct(&|b| b <= knee) >= 2 && distinct(&|b| b > knee) >= 2 {
        knee
    } else {
        0.0
    };
    // Columns: launches, the bytes of a stage within the cache knee, those of one beyond it,
    // matmul, vector, block-wide reductions, block steps. An overlap stage's memory and vector
    // terms are one max: `regime` says which side binds it (true: memory), and only that side's
    // columns enter its row, so the fit stays linear for a fixed assignment. The assignment
    // starts from the sum (both sides' columns) and is redone from each fit until it no longer
    // changes (a fixed point of the piecewise-linear least squares; at most `ROUNDS` fits, the
    // best kept).
    let cols = |w: &CodecWork, regime: Option<bool>| {
        let cached = w.bytes.min(knee);
        let (mem, vec) = match regime {
            Some(true) => (1.0, 0.0),
            Some(false) => (0.0, 1.0),
            None => (1.0, 1.0),
        };
        [
            w.launches,
            cached * mem,
            (w.bytes - cached) * mem,
            w.matmul_flops,
            w.vector_flops * vec,
            w.syncs,
            w.block_steps,
        ]
    };
    const ROUNDS: usize = 20;
    let solve = |regimes: &[Option<bool>]| {
        let rows: Vec<[f64; 7]> = pts
            .iter()
            .zip(regimes)
            .map(|(p, &g)| cols(&p.work, g))
            .collect();
        let ident: [bool; 7] = std::array::from_fn(|j| rows.iter().any(|r| r[j] > 0.0));
        // Scale columns to unit max so the solver's tolerance is meaningful.
        let scale: [f64; 7] = std::array::from_fn(|j| {
            rows.iter()
                .zip(pts)
                .map(|(r, p)| r[j] / p.time_s)
                .fold(0.0, f64::max)
                .max(f64::MIN_POSITIVE)
        });
        let a = DMatrix::<f64>::from_fn(pts.len(), 7, |i, j| rows[i][j] / pts[i].time_s / scale[j]);
        let b = DVector::<f64>::from_element(pts.len(), 1.0);
        let x = nnls(&a, &b);
        let x: [f64; 7] = std::array::from_fn(|j| x[j] / scale[j]);
        let beyond_bw = if ident[2] {
            inv(x[2])
        } else {
            datasheet.bw_bytes_per_s
        };
        let cost = CodecCost {
            launch_s: if ident[0] { x[0] } else { datasheet.launch_s },
            bw_bytes_per_s: beyond_bw,
            matmul_flops_per_s: if ident[3] {
                inv(x[3])
            } else {
                datasheet.matmul_flops_per_s
            },
            vector_flops_per_s: if ident[4] {
                inv(x[4])
            } else {
                datasheet.vector_flops_per_s
            },
            cache_bytes: knee,
            cache_bw_bytes_per_s: if knee == 0.0 {
                0.0
            } else if ident[1] {
                inv(x[1])
            } else {
                beyond_bw
            },
            sync_s: if ident[5] { x[5] } else { datasheet.sync_s },
            block_step_s: if ident[6] {
                x[6]
            } else {
                datasheet.block_step_s
            },
        };
        let sse: f64 = pts
            .iter()
            .map(|p| (predict_s(&cost, p) / p.time_s - 1.0).powi(2))
            .sum();
        (cost, ident, sse)
    };
    let mut regimes: Vec<Option<bool>> = vec![None; pts.len()];
    let (mut cost, mut ident, mut best_sse) = solve(&regimes);
    let mut last = cost;
    // Without overlap points every assignment stays `None`: the first round stops.
    for _ in 0..ROUNDS {
        let next: Vec<Option<bool>> = pts
            .iter()
            .map(|p| {
                p.work.overlap.then(|| {
                    last.mem_s(p.work.bytes) >= p.work.vector_flops / last.vector_flops_per_s
                })
            })
            .collect();
        if next == regimes {
            break;
        }
        regimes = next;
        let (c, i, sse) = solve(&regimes);
        last = c;
        if sse < best_sse {
            (cost, ident, best_sse) = (c, i, sse);
        }
    }
    let identified = [ident[0], ident[2], ident[3], ident[4]];
    let max = pts
        .iter()
        .map(|p| (predict_s(&cost, p) / p.time_s - 1.0).abs())
        .fold(0.0, f64::max);
    Ok(FittedCost {
        cost,
        identified,
        cache_identified: ident[1],
        sync_identified: ident[5],
        points: pts.len(),
        max_abs_pct_err: max,
    })
}

/// The distinct `(family, stage)` pairs of `pts`, sorted.
fn stages_of(pts: &[CodecPoint]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pts
        .iter()
        .map(|p| (p.family.clone(), p.op.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The codec calibration of `pts`: shared when it is within [`GOAL`] per call, else per
/// (family, stage), each stage falling back to its family's fit, that to the shared one.
///
/// Every fit (shared, family, stage) takes the knee of [`CACHE_KNEES_BYTES`] with the least
/// Σ (relative error)² over its own points ([`fit_cost_best_knee`]); [`CodecFit::knee_bytes`]
/// is the shared fit's.
///
/// # Errors
/// As [`fit_cost`].
pub fn fit(pts: &[CodecPoint], datasheet: &CodecCost) -> Result<CodecFit> {
    let all: Vec<&CodecPoint> = pts.iter().collect();
    let shared = fit_cost_best_knee(&all, datasheet)?;
    let mut sets: Vec<String> = pts.iter().map(|p| p.set.clone()).collect();
    sets.sort();
    sets.dedup();
    let mut family = BTreeMap::new();
    let mut stage: BTreeMap<String, BTreeMap<String, FittedCost>> = BTreeMap::new();
    let mode = if shared.max_abs_pct_err <= GOAL {
        "shared"
    } else {
        for (f, op) in stages_of(pts) {
            let fam = match family.get(&f) {
                Some(c) => *c,
                None => {
                    let mine: Vec<&CodecPoint> = pts.iter().filter(|p| p.family == f).collect();
                    let c = fit_cost_best_knee(&mine, &shared.cost)?;
                    family.insert(f.clone(), c);
                    c
                }
            };
            let mine: Vec<&CodecPoint> =
                pts.iter().filter(|p| p.family == f && p.op == op).collect();
            stage
                .entry(f)
                .or_default()
                .insert(op, fit_cost_best_knee(&mine, &fam.cost)?);
        }
        "per-stage"
    };
    Ok(CodecFit {
        mode: mode.into(),
        knee_bytes: shared.cost.cache_bytes,
        sets,
        shared,
        family,
        stage,
        host_launch_s: None,
    })
}

/// [`fit_cost_at`] at the knee of [`CACHE_KNEES_BYTES`] with the least Σ (relative error)² over
/// `pts`: each fit's own knee (the share of its traffic still in L2 differs from stage to
/// stage: run 61's casts, radix passes and PowerSGD matmuls each fit best at another; one knee
/// for every stage left 13.5–15.9% of runs 61–64's graph-replayed calls over 10% under run
/// 61's fit, one per stage 9.5–11.1%).
///
/// # Errors
/// As [`fit_cost`].
pub fn fit_cost_best_knee(pts: &[&CodecPoint], fallback: &CodecCost) -> Result<FittedCost> {
    let mut best: Option<(f64, FittedCost)> = None;
    for knee in CACHE_KNEES_BYTES {
        let f = fit_cost_at(pts, fallback, knee)?;
        let sq: f64 = pts
            .iter()
            .map(|p| (predict_s(&f.cost, p) / p.time_s - 1.0).powi(2))
            .sum();
        if best.as_ref().is_none_or(|(b, _)| sq < *b) {
            best = Some((sq, f));
        }
    }
    Ok(best.expect("CACHE_KNEES_BYTES is not empty").1)
}

/// One (family, stage)'s errors: the self-fit and leave-one-shape-out.
#[derive(Debug, Clone, PartialEq)]
pub struct StageErr {
    /// Compressor family.
    pub family: String,
    /// Stage.
    pub op: String,
    /// Points (calls timed).
    pub points: usize,
    /// Distinct shapes among them.
    pub shapes: usize,
    /// Largest |relative error| of the stage's own fit over its points, fraction.
    pub self_max: f64,
    /// Mean |relative error| of the same, fraction.
    pub self_mean: f64,
    /// Largest |relative error| when each shape's points are predicted by a fit of the stage's
    /// other shapes, fraction (`None` with fewer than 2 shapes).
    pub loso_max: Option<f64>,
}

/// Per (family, stage) of `cf`, the calibration of `pts`: the error of the stage's own fit over
/// its points and the leave-one-shape-out error (a [`fit_cost_best_knee`] without a shape, its
/// family's fit filling unidentified rates as in [`fit`], predicting that shape's points).
///
/// # Errors
/// As [`fit_cost`].
pub fn leave_one_shape_out(pts: &[CodecPoint], cf: &CodecFit) -> Result<Vec<StageErr>> {
    let mut out = Vec::new();
    for (f, op) in stages_of(pts) {
        let fallback = cf.family.get(&f).map_or(cf.shared.cost, |c| c.cost);
        let own = cf.stage_cost(&f, &op);
        let mine: Vec<&CodecPoint> = pts.iter().filter(|p| p.family == f && p.op == op).collect();
        let errs: Vec<f64> = mine
            .iter()
            .map(|p| (predict_s(&own, p) / p.time_s - 1.0).abs())
            .collect();
        let mut shapes: Vec<(u64, u64, u64)> = mine.iter().map(|p| p.shape).collect();
        shapes.sort_unstable();
        shapes.dedup();
        let loso_max = if shapes.len() < 2 {
            None
        } else {
            let mut worst = 0.0f64;
            for s in &shapes {
                let train: Vec<&CodecPoint> =
                    mine.iter().copied().filter(|p| p.shape != *s).collect();
                let c = fit_cost_best_knee(&train, &fallback)?.cost;
                for p in mine.iter().filter(|p| p.shape == *s) {
                    worst = worst.max((predict_s(&c, p) / p.time_s - 1.0).abs());
                }
            }
            Some(worst)
        };
        out.push(StageErr {
            family: f,
            op,
            points: mine.len(),
            shapes: shapes.len(),
            self_max: errs.iter().copied().fold(0.0, f64::max),
            self_mean: errs.iter().sum::<f64>() / errs.len() as f64,
            loso_max,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    const TRUE: CodecCost = CodecCost {
        launch_s: 4e-6,
        bw_bytes_per_s: 3.2e12,
        matmul_flops_per_s: 2.5e14,
        vector_flops_per_s: 4e13,
        cache_bytes: 0.0,
        cache_bw_bytes_per_s: 0.0,
        sync_s: 0.0,
        block_step_s: 0.0,
    };

    /// The codec stages of `method` on a bucket of one `r × c` matrix, decoding `ranks` payloads.
    fn one_matrix_work(method: &Method, r: u64, c: u64, ranks: u32) -> Vec<CodecWork> {
        let b = BucketContent {
            matrices: vec![(r, c)],
            vector_elems: 0,
        };
        let mut w = Vec::new();
        method.codec_work(&b, ranks, &mut w);
        w
    }

    /// Every method and stage at 4 shapes from `truth` (per family `scale` of the bandwidth),
    /// times multiplied by `1 + noise·N(0,1)` (seeded).
    fn synth(truth: impl Fn(&str) -> CodecCost, noise: f64, seed: u64) -> Vec<CodecPoint> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let z = Normal::new(0.0, 1.0).unwrap();
        let mut out = Vec::new();
        for m in [
            "fp16",
            "bf16",
            "powersgd:rank=4",
            "powersgd:rank=1",
            "powersgd:rank=64",
            "topk:density=0.01",
            "randomk:density=0.01",
            "signsgd",
            "qsgd:bits=8",
        ] {
            let method = Method::parse(m).unwrap();
            for (r, c) in [(256, 256), (1024, 1024), (4096, 1024), (4096, 4096)] {
                for w in one_matrix_work(&method, r, c, 2) {
                    let t = truth(&method.family()).time_of(&w);
                    out.push(CodecPoint {
                        set: "synthetic".into(),
                        method: method.name(),
                        family: method.family(),
                        op: w.op.into(),
                        work: w,
                        shape: (r, c, r * c),
                        time_s: t * (1.0 + noise * z.sample(&mut rng)),
                        date: String::new(),
                        exec: "eager".into(),
                    });
                }
            }
        }
        out
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a / b - 1.0).abs()
    }

    /// (MAPE, share of calls within [`GOAL`]) of `pts` under `f`'s stage costs.
    fn call_errors(f: &CodecFit, pts: &[CodecPoint]) -> (f64, f64) {
        let e: Vec<f64> = pts
            .iter()
            .map(|p| rel(predict_s(&f.stage_cost(&p.method, &p.op), p), p.time_s))
            .collect();
        let n = e.len() as f64;
        (
            e.iter().sum::<f64>() / n,
            e.iter().filter(|&&x| x <= GOAL).count() as f64 / n,
        )
    }

    /// Pooling: every non-hold-out set measured since the protocol date is a calibration set;
    /// a set with any older row, every hold-out, and an eager set whose median call is under
    /// [`EAGER_MIN_MEDIAN_S`] (a graph-replayed one at the same times is pooled) are not;
    /// without a current set the newest non-hold-out set alone (the rule before the protocol).
    #[test]
    fn calibration_pools_the_current_non_holdout_sets() {
        let one = CodecPoint {
            time_s: 2.0 * EAGER_MIN_MEDIAN_S,
            ..synth(|_| TRUE, 0.0, 1).remove(0)
        };
        let at = |set: &str, date: &str| CodecPoint {
            set: set.into(),
            date: date.into(),
            ..one.clone()
        };
        let fast = |set: &str, exec: &str, time_s: f64| CodecPoint {
            exec: exec.into(),
            time_s,
            ..at(set, "2026-11-30T12:00:00Z")
        };
        let short = [
            fast("e-run66", "eager", 0.5 * EAGER_MIN_MEDIAN_S),
            fast("e-run66", "eager", 0.6 * EAGER_MIN_MEDIAN_S),
            fast("e-run66", "eager", 3.0 * EAGER_MIN_MEDIAN_S),
            fast("e-run67", "eager", 0.5 * EAGER_MIN_MEDIAN_S),
            fast("e-run67", "eager", 1.0 * EAGER_MIN_MEDIAN_S),
            fast("e-run67", "eager", 3.0 * EAGER_MIN_MEDIAN_S),
            fast("g-run66", "graph", 0.5 * EAGER_MIN_MEDIAN_S),
        ];
        assert_eq!(calibration_sets(&short), vec!["e-run67", "g-run66"]);
        let (old, new) = ("2026-11-30T09:00:00Z", "2026-11-30T12:00:00Z");
        let mut pts = vec![
            at("c-run44", old),
            at("c-run48", new),
            at("c-run57", new),
            at("c-holdout-run49", new),
            at("c-run50", new),
            at("c-run50", old),
        ];
        assert_eq!(calibration_sets(&pts), vec!["c-run48", "c-run57"]);
        assert_eq!(points_of_sets(&pts, &calibration_sets(&pts)).len(), 2);
        pts.retain(|p| p.date == old || p.set.contains("holdout"));
        assert_eq!(calibration_sets(&pts), vec!["c-run50"]);
    }

    /// Shared truth, no noise: every identified parameter recovered to 1e-6 and the shared mode
    /// chosen; the matmul rate is the datasheet's (no compressor has matmul FLOPs since PowerSGD's
    /// fused kernels do its products on the CUDA cores, as vector FLOPs). With 2% noise: launch
    /// and bandwidth within 5%; the vector rate within 30% (PowerSGD rank 64's products, the vote
    /// counts of signSGD), and every call within the 10% goal.
    #[test]
    fn shared_fit_recovers_known_parameters() {
        let ds = CodecCost {
            launch_s: 5e-6,
            bw_bytes_per_s: 1e12,
            matmul_flops_per_s: 1e14,
            vector_flops_per_s: 1e13,
            cache_bytes: 0.0,
            cache_bw_bytes_per_s: 0.0,
            sync_s: 0.0,
            block_step_s: 0.0,
        };
        let f = fit(&synth(|_| TRUE, 0.0, 1), &ds).unwrap();
        assert_eq!(f.mode, "shared");
        let c = f.shared.cost;
        assert!(rel(c.launch_s, TRUE.launch_s) < 1e-6, "{c:?}");
        assert!(rel(c.bw_bytes_per_s, TRUE.bw_bytes_per_s) < 1e-6, "{c:?}");
        assert_eq!(c.matmul_flops_per_s, ds.matmul_flops_per_s, "{c:?}");
        assert!(
            rel(c.vector_flops_per_s, TRUE.vector_flops_per_s) < 1e-6,
            "{c:?}"
        );
        let f = fit(&synth(|_| TRUE, 0.02, 2), &ds).unwrap();
        assert_eq!(f.mode, "shared", "{f:?}");
        let c = f.shared.cost;
        assert!(rel(c.launch_s, TRUE.launch_s) < 0.05, "{c:?}");
        assert!(rel(c.bw_bytes_per_s, TRUE.bw_bytes_per_s) < 0.05, "{c:?}");
        assert!(
            rel(c.vector_flops_per_s, TRUE.vector_flops_per_s) < 0.3,
            "{c:?}"
        );
        assert!(f.shared.max_abs_pct_err < GOAL, "{f:?}");
    }

    /// A fused stage ([`CodecWork::overlap`], PowerSGD's `decode` at ranks 1–64 over 4 shapes):
    /// rank 1 is bound by its bytes, rank 64 by its vector FLOPs, and the alternating fit
    /// recovers launch, bandwidth, vector rate and sync cost to 1e-6 (a fit of the sum would
    /// not: no single (bw, rate) prices both ends of a max). With 2% noise every call is within
    /// 10%.
    #[test]
    fn overlap_stages_are_fitted_as_a_roofline() {
        let truth = CodecCost {
            vector_flops_per_s: 4e12,
            sync_s: 0.2e-6,
            ..TRUE
        };
        let mut pts = Vec::new();
        let z = Normal::new(0.0, 1.0).unwrap();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        for noise in [0.0, 0.02] {
            pts.clear();
            for rank in [1u32, 2, 4, 8, 16, 32, 64] {
                let method = Method::parse(&format!("powersgd:rank={rank}")).unwrap();
                for (r, c) in [(512, 512), (1024, 4096), (4096, 4096), (16384, 4096)] {
                    let w = one_matrix_work(&method, r, c, 1)
                        .into_iter()
                        .find(|w| w.op == "decode")
                        .unwrap();
                    assert!(w.overlap);
                    pts.push(CodecPoint {
                        set: "synthetic".into(),
                        method: method.name(),
                        family: method.family(),
                        op: "decode".into(),
                        work: w,
                        shape: (r, c, r * c),
                        time_s: truth.time_of(&w) * (1.0 + noise * z.sample(&mut rng)),
                        date: String::new(),
                        exec: "graph".into(),
                    });
                }
            }
            let mem_bound = |p: &CodecPoint| {
                truth.mem_s(p.work.bytes) >= p.work.vector_flops / truth.vector_flops_per_s
            };
            assert!(pts.iter().any(mem_bound) && !pts.iter().all(mem_bound));
            let refs: Vec<&CodecPoint> = pts.iter().collect();
            let f = fit_cost_at(&refs, &TRUE, 0.0).unwrap();
            if noise == 0.0 {
                let c = f.cost;
                assert!(rel(c.launch_s, truth.launch_s) < 1e-6, "{c:?}");
                assert!(rel(c.bw_bytes_per_s, truth.bw_bytes_per_s) < 1e-6, "{c:?}");
                assert!(
                    rel(c.vector_flops_per_s, truth.vector_flops_per_s) < 1e-6,
                    "{c:?}"
                );
                assert!(rel(c.sync_s, truth.sync_s) < 1e-6, "{c:?}");
            } else {
                assert!(f.max_abs_pct_err < GOAL, "{f:?}");
            }
        }
    }

    /// Compressors whose kernels run at different bandwidths (Top-k at a third of the others'):
    /// no shared cost is within 10% per call, so each family is fitted on its own and recovers
    /// its bandwidth within 1e-6.
    #[test]
    fn families_that_differ_are_fitted_apart() {
        let truth = |f: &str| {
            let mut c = TRUE;
            if f == "topk" {
                c.bw_bytes_per_s /= 3.0;
            }
            c
        };
        let f = fit(&synth(truth, 0.0, 3), &TRUE).unwrap();
        assert_eq!(f.mode, "per-stage", "{:?}", f.shared);
        assert!(f.shared.max_abs_pct_err > GOAL);
        let topk = f.cost_for("topk:density=0.05").unwrap();
        assert!(
            rel(topk.bw_bytes_per_s, TRUE.bw_bytes_per_s / 3.0) < 1e-6,
            "{topk:?}"
        );
        let ps = f.cost_for("powersgd:rank=8").unwrap();
        assert!(rel(ps.bw_bytes_per_s, TRUE.bw_bytes_per_s) < 1e-6, "{ps:?}");
        assert!(f.family.values().all(|c| c.max_abs_pct_err < 1e-6));
    }

    /// The committed run-18 codec set (`validation/results/h200-gradcomp-codec-run18.csv`): the
    /// fit is per stage, every stage's own fit is within 70% per call (the record: MAPE 14.9%,
    /// max 66.7%), no worse in squared relative error than its family's fit on its own calls,
    /// and the set as a whole is within 16% MAPE.
    #[test]
    fn committed_codec_set_self_fit_is_bounded() {
        let path = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/validation/results/h200-gradcomp-codec-run18.csv"
        ));
        let rows = crate::measure::read_by_technique(&[path], &["gradcomp"])
            .unwrap()
            .remove(0);
        let all = codec_points(&rows).unwrap();
        assert_eq!(all.len(), 252);
        // Top-k's 48 calls and PowerSGD's 60 time code the harness replaced (its device-side
        // radix select; the fused PowerSGD kernels of run 76 on).
        let pts = points_of(&all, "h200-gradcomp-codec-run18");
        assert_eq!(pts.len(), 144);
        assert!(pts
            .iter()
            .all(|p| p.family != "powersgd" && p.family != "topk"));
        let cat = crate::catalog::Catalog::embedded().unwrap();
        let ds = CodecCost::for_gpu(cat.gpu("h200").unwrap());
        let f = fit(&pts, &ds).unwrap();
        assert_eq!(f.mode, "per-stage");
        let mut sum = 0.0;
        for p in &pts {
            let e = rel(predict_s(&f.stage_cost(&p.method, &p.op), p), p.time_s);
            assert!(e < 0.7, "{p:?}: {e}");
            sum += e;
        }
        // Each stage's fit is the least-squares optimum of relative error over its own calls,
        // and the family's cost is a feasible candidate there: on those calls the stage fit's
        // sum of squared relative errors is no larger (its max need not be: run 18's QSGD
        // encode is 39.6% against the family's 34.5%).
        for (fam, ops) in &f.stage {
            for (op, c) in ops {
                let sq = |cost: &CodecCost| -> f64 {
                    pts.iter()
                        .filter(|p| p.family == *fam && p.op == *op)
                        .map(|p| (predict_s(cost, p) / p.time_s - 1.0).powi(2))
                        .sum()
                };
                let (own, family) = (sq(&c.cost), sq(&f.family[fam].cost));
                assert!(
                    own <= family * (1.0 + 1e-6) + 1e-12,
                    "{fam} {op}: Σ rel² {own} with its own fit vs {family} with the family's"
                );
            }
        }
        assert!(
            sum / pts.len() as f64 <= 0.16,
            "MAPE {}",
            sum / pts.len() as f64
        );
    }

    /// Stages of one family that scale differently (Top-k's encode 40 µs more per launch and at a
    /// fifth of the bandwidth, its decode as the rest): no family cost is within 10% per call,
    /// the per-stage fits recover each stage's launch cost and bandwidth within 1% (with 0.2%
    /// seeded noise), every call of the set is then within 1%, and a leave-one-shape-out fit
    /// predicts the held-out shape within 10% (the two-regime bandwidth gives each stage a fifth
    /// rate; with a shape held out the rates beyond the knee rest on fewer points, which
    /// amplifies the noise: 8.7% at most here, against 2% with one regime).
    #[test]
    fn stages_that_differ_are_fitted_apart() {
        let enc = CodecCost {
            launch_s: TRUE.launch_s + 40e-6,
            bw_bytes_per_s: TRUE.bw_bytes_per_s / 5.0,
            ..TRUE
        };
        let mut pts = synth(|_| TRUE, 0.002, 4);
        for p in pts
            .iter_mut()
            .filter(|p| p.family == "topk" && p.op == "encode")
        {
            p.time_s *= enc.time_of(&p.work) / TRUE.time_of(&p.work);
        }
        let f = fit(&pts, &TRUE).unwrap();
        assert_eq!(f.mode, "per-stage");
        assert!(f.family["topk"].max_abs_pct_err > GOAL, "{:?}", f.family);
        let e = f.stage_cost("topk:density=0.01", "encode");
        assert!(rel(e.launch_s, enc.launch_s) < 0.01, "{e:?}");
        assert!(rel(e.bw_bytes_per_s, enc.bw_bytes_per_s) < 0.01, "{e:?}");
        let d = f.stage_cost("topk", "decode");
        assert!(rel(d.launch_s, TRUE.launch_s) < 0.01, "{d:?}");
        assert!(rel(d.bw_bytes_per_s, TRUE.bw_bytes_per_s) < 0.01, "{d:?}");
        for p in &pts {
            let c = f.stage_cost(&p.method, &p.op);
            assert!(rel(predict_s(&c, p), p.time_s) < 0.01, "{p:?}");
        }
        let lo = leave_one_shape_out(&pts, &f).unwrap();
        assert_eq!(lo.len(), stages_of(&pts).len());
        for s in &lo {
            assert_eq!(s.shapes, 4, "{s:?}");
            assert!(s.loso_max.unwrap() < 0.10, "{s:?}");
        }
    }

    /// Issue 14's codec goal on graph-replayed calls (committed runs 61–64, four fresh
    /// H200s): the fit of run 61 predicts the hold-outs 62, 63 and 64 (measured after it was
    /// committed) within 10% MAPE, no worse than 1.5 points above its own self-fit, with at
    /// least 88% of the calls within 10%; host to host the same calls agree within 2.5% for 90%
    /// of them. PowerSGD's calls time the cuBLAS products the fused kernels replaced and are not
    /// scored; the other families: 3.1–3.3% MAPE (self-fit 3.0%), 96.4–96.9% within 10% (with
    /// PowerSGD's, before: 4.4–4.6%, 88.9–89.7%).
    #[test]
    fn graph_replayed_hold_outs_meet_the_codec_goal() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/validation/results/");
        let sets = [
            "h200-gradcomp-codec-graph-run61",
            "h200-gradcomp-codec-graph-holdout-run62",
            "h200-gradcomp-codec-graph-holdout-run63",
            "h200-gradcomp-codec-graph-holdout-run64",
        ];
        let paths: Vec<_> = sets
            .iter()
            .map(|s| std::path::PathBuf::from(format!("{dir}{s}.csv")))
            .collect();
        let mut all = Vec::new();
        for m in crate::measure::read_by_technique(&paths, &["gradcomp"]).unwrap() {
            all.extend(codec_points(&m).unwrap());
        }
        assert!(all.iter().all(|p| p.exec == "graph"));
        assert_eq!(calibration_sets(&all), vec![sets[0].to_string()]);
        let cat = crate::catalog::Catalog::embedded().unwrap();
        let ds = CodecCost::for_gpu(cat.gpu("h200").unwrap());
        let f = fit(&points_of(&all, sets[0]), &ds).unwrap();
        let errs = |set: &str| {
            let pts = points_of(&all, set);
            // PowerSGD's 60 calls per set time the cuBLAS products the fused kernels replaced.
            assert_eq!(pts.len(), 192, "{set}");
            call_errors(&f, &pts)
        };
        let own = errs(sets[0]).0;
        for set in &sets[1..] {
            let (m, within) = errs(set);
            assert!(
                m <= GOAL && m <= own + 0.015,
                "{set}: MAPE {m} (self-fit {own})"
            );
            assert!(within >= 0.88, "{set}: {within} of the calls within 10%");
            let base = points_of(&all, sets[0]);
            let mut dev: Vec<f64> = points_of(&all, set)
                .iter()
                .map(|p| {
                    let b = base
                        .iter()
                        .find(|b| b.method == p.method && b.op == p.op && b.shape == p.shape)
                        .unwrap();
                    rel(p.time_s, b.time_s)
                })
                .collect();
            dev.sort_by(f64::total_cmp);
            assert!(
                dev[dev.len() * 9 / 10] <= 0.025,
                "{set}: p90 host deviation {}",
                dev[dev.len() * 9 / 10]
            );
        }
    }

    /// The graph-replayed fit over BERT-base's and ResNet-50's shapes (runs 61, 66, 67 and 73–76
    /// pooled; PowerSGD's rows from run 76 only, the fused kernels' final form; its `p` and
    /// `decode` priced as a roofline, 276e5cd) on the hold-outs: run 82 (one H200, measured after
    /// 276e5cd), runs 78 and 79 (one H200 each) and 77 and 80 (2-GPU hosts), measured after the
    /// fit's sets but before the roofline, and runs 68 and 69 (measured after the earlier fit;
    /// their PowerSGD rows time the replaced cuBLAS products and are not scored). Single-GPU
    /// hosts: every grid within 10% MAPE, at least 90% of the calls within 10% at BERT-base's and
    /// ResNet-50's shapes (runs 82 / 79 / 78: 4.0 / 4.1 / 4.0% and 93.3 / 93.3 / 93.7% BERT,
    /// 4.0 / 3.8 / 4.2% and 93.9 / 93.9 / 92.5% ResNet-50; before the roofline run 78's BERT grid
    /// was 89.7%) and at least 80% at VGG-16's and GPT-2's, which no set calibrated (6.3 / 6.2 /
    /// 6.0%, 83.8 / 83.8 / 85.4%). The 2-GPU hosts of runs 77 and 80 run short graph calls 3–6%
    /// slower in every family: within 10% MAPE, at least 65% of the calls within 10% (5.8 / 8.3 /
    /// 8.1% and 6.0 / 7.6 / 8.2%; 84.1 / 65.7 / 72.2% and 82.9 / 69.7 / 72.0%). The eager ResNet
    /// sets (median calls 30–32 µs) are not eager calibration sets.
    #[test]
    fn graph_fit_over_two_networks_carries_to_a_third() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/validation/results/");
        let cal = [
            "h200-gradcomp-codec-graph-bert-run73",
            "h200-gradcomp-codec-graph-bert-run74",
            "h200-gradcomp-codec-graph-bert-run75",
            "h200-gradcomp-codec-graph-bert-run76",
            "h200-gradcomp-codec-graph-resnet-run66",
            "h200-gradcomp-codec-graph-resnet-run67",
            "h200-gradcomp-codec-graph-resnet-run73",
            "h200-gradcomp-codec-graph-resnet-run74",
            "h200-gradcomp-codec-graph-resnet-run75",
            "h200-gradcomp-codec-graph-resnet-run76",
            "h200-gradcomp-codec-graph-run61",
        ];
        // (set, scored calls, least share of calls within 10%)
        let held = [
            ("h200-gradcomp-codec-graph-holdout-run82", 252, 0.90),
            ("h200-gradcomp-codec-graph-holdout-resnet-run82", 429, 0.90),
            ("h200-gradcomp-codec-graph-holdout-other-run82", 396, 0.80),
            ("h200-gradcomp-codec-graph-holdout-run78", 252, 0.90),
            ("h200-gradcomp-codec-graph-holdout-resnet-run78", 429, 0.90),
            ("h200-gradcomp-codec-graph-holdout-other-run78", 396, 0.80),
            ("h200-gradcomp-codec-graph-holdout-run79", 252, 0.90),
            ("h200-gradcomp-codec-graph-holdout-resnet-run79", 429, 0.90),
            ("h200-gradcomp-codec-graph-holdout-other-run79", 396, 0.80),
            ("h200-gradcomp-codec-graph-holdout-run77", 252, 0.65),
            ("h200-gradcomp-codec-graph-holdout-resnet-run77", 429, 0.65),
            ("h200-gradcomp-codec-graph-holdout-other-run77", 396, 0.65),
            ("h200-gradcomp-codec-graph-holdout-run80", 252, 0.65),
            ("h200-gradcomp-codec-graph-holdout-resnet-run80", 429, 0.65),
            ("h200-gradcomp-codec-graph-holdout-other-run80", 396, 0.65),
            ("h200-gradcomp-codec-graph-holdout-run68", 192, 0.80),
            ("h200-gradcomp-codec-graph-holdout-resnet-run68", 288, 0.80),
            ("h200-gradcomp-codec-graph-holdout-other-run68", 264, 0.80),
            ("h200-gradcomp-codec-graph-holdout-run69", 192, 0.80),
            ("h200-gradcomp-codec-graph-holdout-resnet-run69", 288, 0.80),
            ("h200-gradcomp-codec-graph-holdout-other-run69", 264, 0.80),
        ];
        let eager = [
            "h200-gradcomp-codec-run48",
            "h200-gradcomp-codec-resnet-run66",
            "h200-gradcomp-codec-resnet-run67",
        ];
        let paths: Vec<_> = cal
            .iter()
            .chain(held.iter().map(|(s, _, _)| s))
            .chain(&eager)
            .map(|s| std::path::PathBuf::from(format!("{dir}{s}.csv")))
            .collect();
        let mut all = Vec::new();
        for m in crate::measure::read_by_technique(&paths, &["gradcomp"]).unwrap() {
            all.extend(codec_points(&m).unwrap());
        }
        assert_eq!(
            calibration_sets(&of_exec(&all, "eager")),
            vec!["h200-gradcomp-codec-run48".to_string()]
        );
        let graph = of_exec(&all, "graph");
        assert_eq!(calibration_sets(&graph), cal.map(String::from).to_vec());
        let cat = crate::catalog::Catalog::embedded().unwrap();
        let ds = CodecCost::for_gpu(cat.gpu("h200").unwrap());
        let f = fit(&points_of_sets(&graph, &calibration_sets(&graph)), &ds).unwrap();
        for (set, n, least) in held {
            let pts = points_of(&graph, set);
            assert_eq!(pts.len(), n, "{set}");
            let (mape, within) = call_errors(&f, &pts);
            assert!(
                mape <= GOAL && within >= least,
                "{set}: MAPE {mape}, {within} of the calls within 10%"
            );
        }
    }
}
