//! gradcomp's calibration: collective time models fitted to NCCL sweeps and codec costs fitted to
//! codec micro-timings, written as `models/calibration/<gpu>-gradcomp.toml` by `perfcast
//! calibrate` and read by the what-if (`perfcast gradcomp`, `perfcast collective` with `--gpu`).
//!
//! # Collectives ([`fit_collective`])
//! Rows of kind `collective` (`perfcast-gpu nccl-sweep`: model = op, batch = ranks, params
//! `bytes=S` plus the NCCL transport knobs, metrics `time_s` and `busbw_bytes_per_s`) are grouped
//! by [`CollectiveKey`] (op, ranks, transport). Per key the calibration set is the one with the
//! latest date (the newest sweep); older sets of the same key are validation-only. The fit starts
//! with one α–β line in nccl-tests terms, `t = α + S·f/busbw_max` (Thakur, Rabenseifner & Gropp
//! 2005; nccl-tests `doc/PERFORMANCE.md` for `f`), fitted by non-negative least squares on the
//! relative time error over every measured size. When that line misses the measured bus bandwidth
//! by more than [`GOAL`] at some size ≥ 1 MiB, the model is three size regimes, each its own α–β
//! line, with the two breakpoints at measured sizes chosen to minimise the largest relative
//! error over all sizes ([`RegimeModel`]; NCCL switches protocol and channel count with size).
//!
//! # Codecs ([`codec`])
//! Rows of kind `codec` (model = method name, params `op=<stage>;rows=R;cols=C;elems=N`, metric
//! `time_s`, `wire_bytes`) fit [`CodecCost`] from the compressors' own stage counts: one shared,
//! or per (compressor family, stage) when the shared one misses a call by more than the goal.

pub mod cite;
pub mod codec;
pub mod coupling;
pub mod host;
pub mod run;
pub mod step;

use super::collective::{CalibratedCollectives, Op, Regime, RegimeModel};
use super::compressor::CodecCost;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::measure::{Measurements, Origin, Row};
use crate::validate::nnls::nnls;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fidelity goal of a collective's bus bandwidth at every size ≥ [`GOAL_MIN_BYTES`] and of a
/// codec call's time: 10% (issue 15).
pub const GOAL: f64 = 0.10;

/// Smallest nccl-tests size the collective goal applies to, bytes (1 MiB): below it a call is
/// latency-bound and busbw is a poor summary of its time.
pub const GOAL_MIN_BYTES: f64 = 1048576.0;

/// Most size regimes of a fitted collective.
pub const MAX_REGIMES: usize = 3;

/// What a collective measurement is of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CollectiveKey {
    /// `allreduce|allgather|reducescatter|broadcast`.
    pub op: String,
    /// Ranks.
    pub ranks: u32,
    /// NCCL transport: `default`, or the restricting knobs of the row's `params`
    /// (`nccl_max_nchannels=1`, `nccl_p2p_disable=1`; `nccl_nvls_enable=0`, set in every
    /// committed sweep and not recorded by run 11, is not part of the key).
    pub transport: String,
}

impl CollectiveKey {
    /// The parsed op.
    ///
    /// # Errors
    /// [`Error::UnknownName`] for a name that is not an op.
    pub fn op(&self) -> Result<Op> {
        Op::parse(&self.op)
    }
}

impl std::fmt::Display for CollectiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ×{} {}", self.op, self.ranks, self.transport)
    }
}

/// One measured collective size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CollectivePoint {
    /// nccl-tests size, bytes.
    pub bytes: f64,
    /// Median time per call, seconds.
    pub time_s: f64,
    /// Measured nccl-tests bus bandwidth, bytes/s (computed from `time_s` when the row is absent).
    pub busbw_bytes_per_s: f64,
}

/// One set's sweep of one key, sizes ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectiveSweep {
    /// Set name.
    pub set: String,
    /// Key.
    pub key: CollectiveKey,
    /// Date of the set (latest row), ISO 8601.
    pub date: String,
    /// Commit the rows were measured at.
    pub commit: String,
    /// GPU name of the rows.
    pub gpu: String,
    /// How the sweep was timed: `host` (every call issued by the host in the timed loop, as
    /// nccl-tests does; where the host's issue rate binds — ≤ 1 MiB on two H200s, 16–26 µs a
    /// call depending on the host — it times the CPU) or `graph` (`perfcast-gpu nccl-sweep
    /// --timing graph`: the batch replayed as CUDA graphs, device time). From the rows'
    /// `timing` param; absent means `host`.
    pub timing: String,
    /// Points, ascending in bytes.
    pub points: Vec<CollectivePoint>,
}

/// The timing method of a collective row (see [`CollectiveSweep::timing`]).
pub fn timing_of(r: &Row) -> String {
    r.params.get("timing").unwrap_or("host").to_string()
}

fn param_f(r: &Row, o: &Origin, key: &str) -> Result<f64> {
    let v = r.params.get(key).ok_or_else(|| {
        o.err(format!(
            "gradcomp {} row needs params `{key}` (got '{}')",
            r.kind, r.params
        ))
    })?;
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| o.err(format!("params {key} = '{v}': a number >= 0")))
}

/// The transport key of a collective row's params (see [`CollectiveKey::transport`]).
pub fn transport_of(r: &Row) -> String {
    let knobs: Vec<String> = r
        .params
        .iter()
        .filter(|(k, v)| {
            *k != "bytes" && *k != "timing" && !(*k == "nccl_nvls_enable" && *v == "0")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if knobs.is_empty() {
        "default".into()
    } else {
        knobs.join(";")
    }
}

/// Every collective sweep among `rows`, by set and key.
///
/// # Errors
/// A collective row without `bytes`, ranks (`batch`), or with an unknown op; a non-positive
/// time.
pub fn collective_sweeps(rows: &Measurements) -> Result<Vec<CollectiveSweep>> {
    type Acc = (String, String, String, String, BTreeMap<u64, (f64, f64)>);
    let mut by: BTreeMap<(String, CollectiveKey), Acc> = BTreeMap::new();
    for (o, r) in &rows.rows {
        if r.kind != "collective" {
            continue;
        }
        Op::parse(&r.model).map_err(|e| o.err(format!("model: {e}")))?;
        let ranks = r
            .batch
            .ok_or_else(|| o.err("gradcomp collective row needs batch = ranks"))?;
        let bytes = param_f(r, o, "bytes")?;
        let key = CollectiveKey {
            op: r.model.to_ascii_lowercase(),
            ranks,
            transport: transport_of(r),
        };
        let e = by.entry((r.set.clone(), key)).or_insert_with(|| {
            (
                String::new(),
                r.provenance.commit.clone(),
                r.provenance.gpu.clone(),
                timing_of(r),
                BTreeMap::new(),
            )
        });
        if r.provenance.date > e.0 {
            e.0 = r.provenance.date.clone();
        }
        if timing_of(r) != e.3 {
            return Err(o.err(format!(
                "set {} mixes timing {} and {} for {}",
                r.set,
                e.3,
                timing_of(r),
                r.model
            )));
        }
        let slot = e.4.entry(bytes as u64).or_insert((f64::NAN, f64::NAN));
        match r.metric.as_str() {
            "time_s" => {
                if !(r.value > 0.0 && r.value.is_finite()) {
                    return Err(o.err(format!("time_s = {}: must be > 0", r.value)));
                }
                slot.0 = r.value;
            }
            "busbw_bytes_per_s" => slot.1 = r.value,
            _ => {}
        }
    }
    let mut out = Vec::new();
    for ((set, key), (date, commit, gpu, timing, pts)) in by {
        let f = key.op()?.bus_factor(key.ranks);
        let points: Vec<CollectivePoint> = pts
            .into_iter()
            .filter(|(_, (t, _))| t.is_finite())
            .map(|(b, (t, bw))| {
                let b = b as f64;
                CollectivePoint {
                    bytes: b,
                    time_s: t,
                    busbw_bytes_per_s: if bw.is_finite() { bw } else { b * f / t },
                }
            })
            .collect();
        if !points.is_empty() {
            out.push(CollectiveSweep {
                set,
                key,
                date,
                commit,
                gpu,
                timing,
                points,
            });
        }
    }
    Ok(out)
}

/// A fitted collective with the errors that chose its form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectiveFit {
    /// `allreduce|allgather|reducescatter|broadcast`.
    pub op: String,
    /// Ranks.
    pub ranks: u32,
    /// Transport (see [`CollectiveKey::transport`]).
    pub transport: String,
    /// The calibration set.
    pub set: String,
    /// Commit the set was measured at.
    pub commit: String,
    /// GPU name of the set's rows.
    pub gpu_name: String,
    /// `alpha-beta` (one regime) or `regimes` (three).
    pub form: String,
    /// Largest |busbw error| of the single α–β line at sizes ≥ 1 MiB of the calibration set,
    /// fraction (why the form was chosen).
    pub alpha_beta_max_abs_pct_err: f64,
    /// Largest |busbw error| of the chosen form at sizes ≥ 1 MiB of the calibration set,
    /// fraction.
    pub max_abs_pct_err: f64,
    /// Largest |time error| of the chosen form over every measured size, fraction.
    pub max_abs_pct_err_all_sizes: f64,
    /// The regimes (see [`RegimeModel`]).
    pub regime: Vec<Regime>,
}

impl CollectiveFit {
    /// The key.
    pub fn key(&self) -> CollectiveKey {
        CollectiveKey {
            op: self.op.clone(),
            ranks: self.ranks,
            transport: self.transport.clone(),
        }
    }

    /// The model.
    pub fn model(&self) -> RegimeModel {
        RegimeModel {
            regimes: self.regime.clone(),
        }
    }
}

/// One α–β line fitted to `pts` by NNLS on relative time error: minimises
/// `Σ ((α + S·f·x)/t − 1)²` over `α, x ≥ 0`, `x = 1/busbw`.
fn line(pts: &[CollectivePoint], f: f64) -> Regime {
    let a = DMatrix::<f64>::from_fn(pts.len(), 2, |i, j| {
        let p = &pts[i];
        if j == 0 {
            1.0 / p.time_s
        } else {
            f * p.bytes / p.time_s
        }
    });
    let b = DVector::<f64>::from_element(pts.len(), 1.0);
    let x = nnls(&a, &b);
    Regime {
        from_bytes: pts[0].bytes,
        alpha_s: x[0],
        busbw_bytes_per_s: if x[1] > 0.0 {
            1.0 / x[1]
        } else {
            f64::INFINITY
        },
    }
}

/// Signed busbw error `(predicted − measured)/measured` of `m` at `p`.
pub fn busbw_err(m: &RegimeModel, op: Op, ranks: u32, p: &CollectivePoint) -> f64 {
    let pred = m.busbw_bytes_per_s(op, ranks, p.bytes);
    (pred - p.busbw_bytes_per_s) / p.busbw_bytes_per_s
}

fn max_err(m: &RegimeModel, op: Op, ranks: u32, pts: &[CollectivePoint], min_bytes: f64) -> f64 {
    pts.iter()
        .filter(|p| p.bytes >= min_bytes)
        .map(|p| (m.time_s(op, ranks, p.bytes) / p.time_s - 1.0).abs())
        .fold(0.0, f64::max)
}

fn max_busbw_err(m: &RegimeModel, op: Op, ranks: u32, pts: &[CollectivePoint]) -> f64 {
    pts.iter()
        .filter(|p| p.bytes >= GOAL_MIN_BYTES)
        .map(|p| busbw_err(m, op, ranks, p).abs())
        .fold(0.0, f64::max)
}

/// The best `k`-regime model of `pts` (ascending sizes): every choice of `k − 1` breakpoints at
/// measured sizes leaving each regime ≥ 2 points, each regime's line by [`line`], the one with the
/// smallest largest |relative time error| over all points. `None` when `pts` is too short.
pub fn fit_regimes(pts: &[CollectivePoint], op: Op, ranks: u32, k: usize) -> Option<RegimeModel> {
    let n = pts.len();
    let f = op.bus_factor(ranks);
    if k == 0 || n < 2 * k {
        return None;
    }
    let mut best: Option<(f64, RegimeModel)> = None;
    let mut cuts: Vec<usize> = (1..k).map(|i| 2 * i).collect();
    loop {
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(cuts.iter().copied())
            .chain(std::iter::once(n))
            .collect();
        if bounds.windows(2).all(|w| w[1] - w[0] >= 2) {
            let m = RegimeModel {
                regimes: bounds
                    .windows(2)
                    .map(|w| line(&pts[w[0]..w[1]], f))
                    .collect(),
            };
            let e = max_err(&m, op, ranks, pts, 0.0);
            if best.as_ref().is_none_or(|(b, _)| e < *b) {
                best = Some((e, m));
            }
        }
        // Next combination of cut positions in [2, n − 2], ascending.
        let mut i = cuts.len();
        loop {
            if i == 0 {
                return best.map(|(_, m)| m);
            }
            i -= 1;
            let limit = n - 2 * (cuts.len() - i);
            if cuts[i] < limit {
                cuts[i] += 1;
                for j in i + 1..cuts.len() {
                    cuts[j] = cuts[j - 1] + 2;
                }
                break;
            }
        }
        if cuts.is_empty() {
            return best.map(|(_, m)| m);
        }
    }
}

/// Fits one sweep (ranks ≥ 2): α–β if within [`GOAL`] of the measured busbw at every size ≥ 1 MiB,
/// else [`MAX_REGIMES`] regimes (see the module doc).
///
/// # Errors
/// [`Error::OutOfRange`] for one rank (busbw is 0 by definition) or fewer than 2 sizes.
pub fn fit_collective(s: &CollectiveSweep) -> Result<CollectiveFit> {
    let op = s.key.op()?;
    let ranks = s.key.ranks;
    if ranks < 2 {
        return Err(Error::range(
            format!("collective set {} {} ranks", s.set, s.key.op),
            ranks,
            "at least 2 (one rank has no bus bandwidth)",
        ));
    }
    let ab = fit_regimes(&s.points, op, ranks, 1).ok_or_else(|| {
        Error::range(
            format!("collective set {} {} sizes", s.set, s.key),
            s.points.len(),
            "at least 2 measured sizes",
        )
    })?;
    let ab_err = max_busbw_err(&ab, op, ranks, &s.points);
    let (form, model) = if ab_err <= GOAL {
        ("alpha-beta", ab)
    } else {
        match fit_regimes(&s.points, op, ranks, MAX_REGIMES) {
            Some(m) => ("regimes", m),
            None => ("alpha-beta", ab),
        }
    };
    Ok(CollectiveFit {
        op: s.key.op.clone(),
        ranks,
        transport: s.key.transport.clone(),
        set: s.set.clone(),
        commit: s.commit.clone(),
        gpu_name: s.gpu.clone(),
        form: form.into(),
        alpha_beta_max_abs_pct_err: ab_err,
        max_abs_pct_err: max_busbw_err(&model, op, ranks, &s.points),
        max_abs_pct_err_all_sizes: max_err(&model, op, ranks, &s.points, 0.0),
        regime: model.regimes,
    })
}

/// Per key, the calibration sweep among those of ≥ 2 ranks that are not hold-outs
/// ([`is_holdout`]): a graph-timed one before any host-timed one, then the latest date (ties:
/// the later set name).
pub fn calibration_sweeps(sweeps: &[CollectiveSweep]) -> Vec<&CollectiveSweep> {
    // The newest of each timing per key; a graph-timed one (device time) wins over host-timed.
    let mut by: BTreeMap<CollectiveKey, &CollectiveSweep> = BTreeMap::new();
    for ((key, _), s) in calibration_sweeps_by_timing(sweeps) {
        let e = by.entry(key).or_insert(s);
        if s.timing == "graph" {
            *e = s;
        }
    }
    by.into_values().collect()
}

/// Whether a sweep is a hold-out (its set name contains `holdout`): measured on a fresh machine
/// after the calibration was fixed, it is only ever predicted, never fitted, whatever its date.
pub fn is_holdout(s: &CollectiveSweep) -> bool {
    s.set.contains("holdout")
}

/// Like [`calibration_sweeps`], but per (key, timing): the newest sweep of each timing method,
/// so a host-timed set is validated against a host-timed fit and a graph-timed set against a
/// graph-timed one (a host-timed set at ≤ 1 MiB times the issuing CPU, which a device-time fit
/// does not predict).
pub fn calibration_sweeps_by_timing(
    sweeps: &[CollectiveSweep],
) -> BTreeMap<(CollectiveKey, String), &CollectiveSweep> {
    let mut by: BTreeMap<(CollectiveKey, String), &CollectiveSweep> = BTreeMap::new();
    for s in sweeps.iter().filter(|s| s.key.ranks >= 2 && !is_holdout(s)) {
        let e = by.entry((s.key.clone(), s.timing.clone())).or_insert(s);
        if (s.date.as_str(), s.set.as_str()) > (e.date.as_str(), e.set.as_str()) {
            *e = s;
        }
    }
    by
}

/// The file `perfcast calibrate` writes as `models/calibration/<gpu>-gradcomp.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradcompCalibration {
    /// Catalog GPU.
    pub gpu: String,
    /// Writer and version.
    pub generated_by: String,
    /// When written, ISO 8601.
    pub date: String,
    /// The command line.
    pub command: String,
    /// Fitted collectives, one per (op, ranks, transport).
    #[serde(default)]
    pub collective: Vec<CollectiveFit>,
    /// Fitted codec costs of eager calls (every op issued by the host, as the harness's steps
    /// run them), absent until codec rows are measured.
    #[serde(default)]
    pub codec: Option<codec::CodecFit>,
    /// Fitted codec costs of calls captured as CUDA graphs and replayed (rows `exec=graph`: the
    /// device-side cost, free of the host's issue rate), absent until such rows are measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec_graph: Option<codec::CodecFit>,
    /// Rank coupling per multi-GPU DDP step, absent until token steps are measured.
    #[serde(default)]
    pub ddp_coupling: Option<coupling::DdpCoupling>,
}

impl GradcompCalibration {
    /// `calibration/<gpu>-gradcomp.toml` of the catalog (embedded, or `--catalog DIR`), if any.
    ///
    /// # Errors
    /// A file that exists but is malformed ([`Error::Parse`] naming it).
    pub fn from_catalog(cat: &Catalog, gpu: &str) -> Result<Option<Self>> {
        let rel = format!("calibration/{}-gradcomp.toml", gpu.to_ascii_lowercase());
        if !cat.has_file(&rel) {
            return Ok(None);
        }
        cat.parse_toml(&rel).map(Some)
    }

    /// The fitted collectives of `ranks` ranks on `transport` (`default`: the machine's own
    /// links), labelled for output, e.g. `calibrated (2×H200 NVLink, run 12)`; `None` when no op
    /// was fitted there.
    pub fn collectives(&self, ranks: u32, transport: &str) -> Option<CalibratedCollectives> {
        let fits: Vec<&CollectiveFit> = self
            .collective
            .iter()
            .filter(|c| c.ranks == ranks && c.transport == transport)
            .collect();
        let models: Vec<(Op, RegimeModel)> = fits
            .iter()
            .filter_map(|c| Op::parse(&c.op).ok().map(|o| (o, c.model())))
            .collect();
        let first = fits.first()?;
        let link = if transport == "default" {
            "NVLink".to_string()
        } else {
            transport.to_string()
        };
        Some(CalibratedCollectives {
            ranks,
            models,
            label: format!(
                "calibrated ({ranks}×{} {link}, {})",
                self.gpu.to_ascii_uppercase(),
                run_of(&first.set)
            ),
        })
    }

    /// The fitted codec costs, if any, for `method` (`Method::name()`): the per-method entry when
    /// the fit is per compressor, else the shared one.
    pub fn codec_cost(&self, method: &str) -> Option<CodecCost> {
        self.codec.as_ref().and_then(|c| c.cost_for(method))
    }
}

/// The N of a set named `…-runN` (`h200x2-nccl-run12` → 12), `None` without that suffix.
pub fn run_number(set: &str) -> Option<u64> {
    match set.rsplit_once("-run") {
        Some((_, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => n.parse().ok(),
        _ => None,
    }
}

/// `h200x2-nccl-run12` → `run 12`; a set without a `-runN` suffix → `set <name>`.
pub fn run_of(set: &str) -> String {
    match run_number(set) {
        Some(n) => format!("run {n}"),
        None => format!("set {set}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(op: &str, ranks: u32, f: impl Fn(f64) -> f64) -> CollectiveSweep {
        let o = Op::parse(op).unwrap();
        let points = (3..=30)
            .map(|e| {
                let b = f64::from(1u32 << e.min(30));
                let t = f(b);
                CollectivePoint {
                    bytes: b,
                    time_s: t,
                    busbw_bytes_per_s: b * o.bus_factor(ranks) / t,
                }
            })
            .collect();
        CollectiveSweep {
            set: "s-run7".into(),
            key: CollectiveKey {
                op: op.into(),
                ranks,
                transport: "default".into(),
            },
            date: "2026-11-29T00:00:00Z".into(),
            commit: "abc".into(),
            gpu: "NVIDIA H200".into(),
            timing: "host".into(),
            points,
        }
    }

    /// Hand-worked α–β: all-reduce on 2 ranks (f = 1), α = 20 µs, busbw 300 GB/s; at 1 GiB
    /// `t = 20e-6 + 2³⁰/3e11 = 0.0035991 s`. An exact α–β sweep is recovered to 1e-9 and chosen.
    #[test]
    fn exact_alpha_beta_is_recovered() {
        let s = sweep("allreduce", 2, |b| 20e-6 + b / 3e11);
        let fit = fit_collective(&s).unwrap();
        assert_eq!(fit.form, "alpha-beta");
        let r = fit.regime[0];
        assert!((r.alpha_s - 20e-6).abs() < 1e-9 * 20e-6 + 1e-15, "{r:?}");
        assert!((r.busbw_bytes_per_s / 3e11 - 1.0).abs() < 1e-9, "{r:?}");
        let t = fit.model().time_s(Op::AllReduce, 2, 1073741824.0);
        assert!((t - 0.003_599_139_413_333_333).abs() < 1e-12, "{t}");
        assert!(fit.max_abs_pct_err < 1e-9);
        // All-gather on 4 ranks: f = 3/4, so busbw 300 GB/s moves S·3/4 bytes.
        let m = RegimeModel { regimes: vec![r] };
        let t = m.time_s(Op::AllGather, 4, 4e6);
        assert!((t - (20e-6 + 3e6 / 3e11)).abs() < 1e-15, "{t}");
    }

    /// A protocol switch (LL below 2 MiB at 7 GB/s, Simple above at 21 GB/s, as the one-channel
    /// sweep shows) is beyond one line but within 1e-6 of three regimes.
    #[test]
    fn a_protocol_switch_needs_regimes() {
        let s = sweep("allreduce", 2, |b| {
            if b < 2097152.0 {
                if b < 262144.0 {
                    22e-6 + b / 2e11
                } else {
                    6e-6 + b / 7e9
                }
            } else {
                14e-6 + b / 21e9
            }
        });
        let fit = fit_collective(&s).unwrap();
        assert!(fit.alpha_beta_max_abs_pct_err > GOAL, "{fit:?}");
        assert_eq!(fit.form, "regimes");
        assert_eq!(fit.regime.len(), 3);
        assert!(fit.max_abs_pct_err_all_sizes < 1e-6, "{fit:?}");
        assert_eq!(fit.regime[2].from_bytes, 2097152.0);
        assert_eq!(fit.regime[1].from_bytes, 262144.0);
    }

    #[test]
    fn one_rank_is_refused_and_runs_are_named() {
        let s = sweep("broadcast", 1, |b| 6e-6 + b / 2e12);
        let e = fit_collective(&s).unwrap_err().to_string();
        assert!(e.contains("ranks = 1") && e.contains("at least 2"), "{e}");
        assert_eq!(run_of("h200x2-nccl-run12"), "run 12");
        assert_eq!(run_of("h200x2-nccl"), "set h200x2-nccl");
    }

    /// The calibration sweep of a key: graph-timed before host-timed whatever the dates, then
    /// the newest; a hold-out never, even when it is the newest; per timing, the newest of each.
    #[test]
    fn calibration_sweep_prefers_graph_timing_and_skips_holdouts() {
        let mk = |set: &str, date: &str, timing: &str| {
            let mut s = sweep("allreduce", 2, |b| 20e-6 + b / 3e11);
            s.set = set.into();
            s.date = date.into();
            s.timing = timing.into();
            s
        };
        let sweeps = vec![
            mk("a-graph-run22", "2026-11-30T00:24:00Z", "graph"),
            mk("b-host-run23", "2026-11-30T01:00:00Z", "host"),
            mk("c-graph-holdout-run23", "2026-11-30T01:01:00Z", "graph"),
            mk("d-host-run18", "2026-11-29T20:59:00Z", "host"),
        ];
        let cal = calibration_sweeps(&sweeps);
        assert_eq!(cal.len(), 1);
        assert_eq!(cal[0].set, "a-graph-run22");
        let by = calibration_sweeps_by_timing(&sweeps);
        let names: Vec<(&str, &str)> = by
            .iter()
            .map(|((_, t), s)| (t.as_str(), s.set.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("graph", "a-graph-run22"), ("host", "b-host-run23")]
        );
        assert!(is_holdout(&sweeps[2]) && !is_holdout(&sweeps[0]));
    }
}
