//! gradcomp's side of `perfcast calibrate` and `perfcast validate` ([`Gradcomp`], registered in
//! [`crate::techniques`]).
//!
//! - `calibrate` fits every collective (op, ranks, transport) from its newest sweep
//!   ([`super::fit_collective`]) and, when codec rows exist, the codec costs ([`super::codec`]);
//!   it writes `<gpu>-gradcomp.toml` beside `--out` (which names specdec's file) or in
//!   `models/calibration/`.
//! - `validate` fits the same calibration from the rows given (deterministic: it equals the
//!   committed file when given the committed rows) and reports, per collective set of ≥ 2 ranks,
//!   the busbw error at every size ≥ 1 MiB (the newest sweep of a key is its own calibration: a
//!   self-fit; older sweeps, e.g. another machine's, are independent checks) and, per codec set,
//!   the per-call time error. A set passes when MAPE and max |error| are within the tolerance
//!   (goal 10%; single-GPU step sets 5% / 10%, multi-GPU step sets 10% / 15%, see
//!   [`kind_tolerance`]) and, for a codec set, every `wire_bytes` row equals the compressor's payload
//!   model (`Compressor::wire_bytes`). One-rank sweeps (busbw 0 by definition; the what-if has no communication on
//!   one rank) are named and skipped.
//! - per set of single-GPU `step` rows (`comm=local`), the step time error of [`super::step`]'s
//!   predictor (compute from the layer micro rows, codec and local reduction from the codec
//!   fit); families in [`super::step::EXCLUDED`] and two-GPU NCCL steps are named and skipped.
//!   `gradcomp-points.csv` in the output directory holds every point.

use super::codec::{self, CodecFit};
use super::{
    busbw_err, calibration_sweeps, calibration_sweeps_by_timing, collective_sweeps, fit_collective,
    run_of, CollectiveFit, CollectiveKey, CollectiveSweep, GradcompCalibration, GOAL,
    GOAL_MIN_BYTES,
};
use super::{coupling, host, step};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::gradcomp::collective::{CalibratedCollectives, Op, RegimeModel};
use crate::gradcomp::compressor::{CodecCost, Compressor};
use crate::measure::{utc_now, Measurements};
use crate::report::{write_atomic, Format};
use crate::validate::{
    record_sets, sets_json, CalibrateRequest, ErrorStats, Report, SetSummary, Technique, Tolerance,
    ValidateRequest,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// gradcomp as a calibrated technique.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gradcomp;

impl Technique for Gradcomp {
    fn name(&self) -> &'static str {
        "gradcomp"
    }

    /// Issue 15: busbw within 10% at every size ≥ 1 MiB; codec calls within 10%.
    fn goal(&self) -> Tolerance {
        Tolerance {
            mape: GOAL,
            max_abs_pct_err: GOAL,
        }
    }

    fn calibrate(&self, rows: Measurements, req: &CalibrateRequest) -> Result<Report> {
        calibrate(&rows, req)
    }

    fn validate(&self, rows: Measurements, req: &ValidateRequest) -> Result<Report> {
        validate(&rows, req)
    }
}

/// `models/calibration/<gpu>-gradcomp.toml`.
pub fn default_path(gpu: &str) -> PathBuf {
    PathBuf::from(format!("models/calibration/{gpu}-gradcomp.toml"))
}

/// The datasheet codec costs of `gpu` (what codec fits fall back to for unidentified rates).
fn datasheet_codec(cat: &Catalog, gpu: &str) -> Result<CodecCost> {
    Ok(CodecCost::for_gpu(cat.gpu(gpu)?))
}

/// The calibration of `rows`: collective fits of the newest sweep per key, codec fit if any.
///
/// # Errors
/// Malformed rows (naming file and line); no collective sweep of ≥ 2 ranks and no codec row.
pub fn fit_all(
    rows: &Measurements,
    datasheet: &CodecCost,
    gpu: &str,
    command: &str,
) -> Result<GradcompCalibration> {
    let sweeps = collective_sweeps(rows)?;
    let collective = calibration_sweeps(&sweeps)
        .into_iter()
        .map(fit_collective)
        .collect::<Result<Vec<_>>>()?;
    let all = codec::codec_points(rows)?;
    let hosts = host::launches(rows)?;
    let eager = exec_calibration(&all, "eager", datasheet)?;
    let codec = eager.fit.map(|f| CodecFit {
        host_launch_s: host::of_sets(&hosts, &eager.sets),
        ..f
    });
    let codec_graph = exec_calibration(&all, "graph", datasheet)?.fit;
    let ddp_coupling = coupling::fit(&step::step_rows(rows)?.1);
    if collective.is_empty() && codec.is_none() && codec_graph.is_none() && ddp_coupling.is_none() {
        return Err(Error::range(
            "gradcomp rows",
            "no collective sweep of >= 2 ranks, no codec row and no token step",
            "rows of kind collective (perfcast-gpu nccl-sweep), codec, or token steps (gradcomp ddp --token-only 1)",
        ));
    }
    Ok(GradcompCalibration {
        gpu: gpu.to_ascii_lowercase(),
        generated_by: format!("perfcast {} calibrate", env!("CARGO_PKG_VERSION")),
        date: utc_now(),
        command: command.into(),
        collective,
        codec,
        codec_graph,
        ddp_coupling,
    })
}

/// The codec calibration of the calls of `all` that ran as `exec` (`eager` or `graph`): those
/// points, their calibration sets ([`codec::calibration_sets`], pooled), the sets' current points
/// and their fit (`None` without such points). Eager and graph-replayed calls are fitted apart.
///
/// # Errors
/// As [`codec::fit`].
fn exec_calibration(
    all: &[codec::CodecPoint],
    exec: &str,
    datasheet: &CodecCost,
) -> Result<ExecCalibration> {
    let pts = codec::of_exec(all, exec);
    let sets = codec::calibration_sets(&pts);
    let cal_pts = codec::points_of_sets(&pts, &sets);
    let fit = if cal_pts.is_empty() {
        None
    } else {
        Some(codec::fit(&cal_pts, datasheet)?)
    };
    Ok(ExecCalibration {
        pts,
        sets,
        cal_pts,
        fit,
    })
}

/// What [`exec_calibration`] returns.
struct ExecCalibration {
    pts: Vec<codec::CodecPoint>,
    sets: Vec<String>,
    cal_pts: Vec<codec::CodecPoint>,
    fit: Option<CodecFit>,
}

fn describe_fits(cal: &GradcompCalibration) -> String {
    let mut s = String::new();
    if !cal.collective.is_empty() {
        let _ = writeln!(
            s,
            "gradcomp collectives (t = α + S·f/busbw per size regime; errors: busbw at sizes ≥ 1 MiB of the calibration set)"
        );
        let _ = writeln!(
            s,
            "  {:<14} {:>5} {:<22} {:<20} {:>10} {:>10} {:>9}  regimes (from: α µs, busbw GB/s)",
            "op", "ranks", "transport", "set", "α–β max", "model max", "form"
        );
    }
    for c in &cal.collective {
        let regs: Vec<String> = c
            .regime
            .iter()
            .map(|r| {
                format!(
                    "[{}: {:.1}, {:.1}]",
                    human_bytes(r.from_bytes),
                    r.alpha_s * 1e6,
                    r.busbw_bytes_per_s / 1e9
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "  {:<14} {:>5} {:<22} {:<20} {:>9.1}% {:>9.1}% {:>9}  {}",
            c.op,
            c.ranks,
            c.transport,
            c.set,
            100.0 * c.alpha_beta_max_abs_pct_err,
            100.0 * c.max_abs_pct_err,
            c.form,
            regs.join(" ")
        );
    }
    match &cal.codec {
        Some(c) => describe_codec(&mut s, "", c),
        None => {
            let _ = writeln!(
                s,
                "gradcomp codec costs: no codec rows; the what-if keeps datasheet codec costs"
            );
        }
    }
    if let Some(c) = &cal.codec_graph {
        describe_codec(&mut s, " of graph-replayed calls", c);
    }
    if let Some(c) = &cal.ddp_coupling {
        let _ = writeln!(
            s,
            "gradcomp DDP rank coupling (median token-step excess over its twin, per step): async {:.2} ms ({} points), inline {:.2} ms ({} points); sets {}",
            c.async_s * 1e3,
            c.async_points,
            c.inline_s * 1e3,
            c.inline_points,
            c.sets.join(", ")
        );
    }
    s
}

/// The codec section of [`describe_fits`]: `title` after "gradcomp codec costs".
fn describe_codec(s: &mut String, title: &str, c: &CodecFit) {
    let _ = writeln!(
        s,
        "gradcomp codec costs{} ({} fit of {} points of {}; two-regime knee {}; shared max per-call error {:.1}%): launch {:.2} µs, {}, matmul {:.1} TFLOP/s, vector {:.1} TFLOP/s",
        title,
        c.mode,
        c.shared.points,
        c.sets.join(", "),
        if c.knee_bytes > 0.0 {
            format!("{:.0} MB", c.knee_bytes / 1e6)
        } else {
            "none (one regime)".to_string()
        },
        100.0 * c.shared.max_abs_pct_err,
        c.shared.cost.launch_s * 1e6,
        bw_desc(&c.shared.cost),
        c.shared.cost.matmul_flops_per_s / 1e12,
        c.shared.cost.vector_flops_per_s / 1e12
    );
    for (f, fc) in &c.family {
        let _ = writeln!(
            s,
            "  {f}: {} points, max {:.1}%: launch {:.2} µs, {}, matmul {:.1} TFLOP/s, vector {:.1} TFLOP/s",
            fc.points,
            100.0 * fc.max_abs_pct_err,
            fc.cost.launch_s * 1e6,
            bw_desc(&fc.cost),
            fc.cost.matmul_flops_per_s / 1e12,
            fc.cost.vector_flops_per_s / 1e12
        );
        for (op, sc) in c.stage.get(f).into_iter().flatten() {
            let _ = writeln!(
                s,
                "    {op}: {} points, max {:.1}%: launch {:.2} µs, {}, matmul {:.1} TFLOP/s, vector {:.3} TFLOP/s{}",
                sc.points,
                100.0 * sc.max_abs_pct_err,
                sc.cost.launch_s * 1e6,
                bw_desc(&sc.cost),
                sc.cost.matmul_flops_per_s / 1e12,
                sc.cost.vector_flops_per_s / 1e12,
                if sc.sync_identified {
                    format!(
                        ", block reduction {:.3} µs, block step {:.3} µs",
                        sc.cost.sync_s * 1e6,
                        sc.cost.block_step_s * 1e6
                    )
                } else {
                    String::new()
                }
            );
        }
    }
}

/// A codec cost's bandwidth: `B GB/s`, or `C GB/s to K MB, B GB/s beyond` with two regimes.
fn bw_desc(c: &CodecCost) -> String {
    if c.cache_bytes > 0.0 {
        format!(
            "{:.0} GB/s to {:.0} MB, {:.0} GB/s beyond",
            c.cache_bw_bytes_per_s / 1e9,
            c.cache_bytes / 1e6,
            c.bw_bytes_per_s / 1e9
        )
    } else {
        format!("{:.0} GB/s", c.bw_bytes_per_s / 1e9)
    }
}

fn human_bytes(b: f64) -> String {
    if b >= 1048576.0 {
        format!("{}M", b / 1048576.0)
    } else if b >= 1024.0 {
        format!("{}K", b / 1024.0)
    } else {
        format!("{b}")
    }
}

/// The calibration file's text.
///
/// # Errors
/// A value TOML cannot hold.
pub fn to_toml(cal: &GradcompCalibration) -> Result<String> {
    let body = toml::to_string(cal).map_err(|e| {
        Error::range(
            "gradcomp calibration",
            e.to_string(),
            "serializable as TOML",
        )
    })?;
    Ok(format!(
        "# gradcomp calibration of {} — generated by `perfcast calibrate`; do not edit by hand.\n\
         # [[collective]]: per (op, ranks, transport) the newest NCCL sweep's fit, t = alpha_s + S*f/busbw_bytes_per_s\n\
         # in the size regime whose from_bytes is the largest <= S (S: nccl-tests size, f: nccl-tests bus factor).\n\
         # [codec]: CodecCost fitted to codec micro-timings (absent: datasheet); [codec.stage.<family>.<stage>]:\n\
         # per (compressor family, stage) fit, what the what-if prices that stage with (else the family's, else shared);\n\
         # each stage at its own two-regime knee (cache_bytes, the least-squares one of 0, 8, 16, 25, 32, 50 MB).\n\
         # [codec_graph]: the same from codec rows with exec=graph (calls captured as CUDA graphs and replayed), what\n\
         # `perfcast gradcomp --codec-exec graph` prices codecs with.\n{body}",
        cal.gpu
    ))
}

fn calibrate(rows: &Measurements, req: &CalibrateRequest) -> Result<Report> {
    let cal = fit_all(
        rows,
        &datasheet_codec(req.catalog, &req.gpu)?,
        &req.gpu,
        &req.command,
    )?;
    let path = match &req.out {
        Some(o) => o
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}-gradcomp.toml", req.gpu)),
        None => default_path(&req.gpu),
    };
    let mut out = describe_fits(&cal);
    if req.dry_run {
        let _ = writeln!(out, "gradcomp: dry run, nothing written");
    } else {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        write_atomic(&path, to_toml(&cal)?.as_bytes())?;
        let _ = writeln!(out, "gradcomp: wrote {}", path.display());
    }
    if req.format == Format::Json {
        out = serde_json::to_string_pretty(&cal).unwrap_or_default() + "\n";
    }
    Ok(Report {
        stdout: out,
        pass: true,
    })
}

/// `host-timed` or `graph-timed` (see [`crate::gradcomp::calib::CollectiveSweep::timing`]).
fn timing_label(s: Option<&crate::gradcomp::calib::CollectiveSweep>) -> String {
    format!("{}-timed", s.map_or("host", |s| s.timing.as_str()))
}

/// One validated point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointErr {
    /// Set.
    pub set: String,
    /// Kind (`collective`, `codec`).
    pub kind: &'static str,
    /// Op / key (`allreduce ×2 default`) or method and stage (`fp16 encode`).
    pub what: String,
    /// nccl-tests size (collective) or elements (codec).
    pub size: f64,
    /// Measured busbw (bytes/s) or time (s).
    pub measured: f64,
    /// Predicted, same unit.
    pub predicted: f64,
    /// Signed relative error.
    pub rel_err: f64,
}

/// Per-size busbw errors of `sweep` under `fit` (sizes ≥ 1 MiB).
pub fn sweep_errors(sweep: &CollectiveSweep, fit: &CollectiveFit) -> Result<Vec<PointErr>> {
    let op = Op::parse(&fit.op)?;
    let m = fit.model();
    Ok(sweep
        .points
        .iter()
        .filter(|p| p.bytes >= GOAL_MIN_BYTES)
        .map(|p| PointErr {
            set: sweep.set.clone(),
            kind: "collective",
            what: sweep.key.to_string(),
            size: p.bytes,
            measured: p.busbw_bytes_per_s,
            predicted: m.busbw_bytes_per_s(op, sweep.key.ranks, p.bytes),
            rel_err: busbw_err(&m, op, sweep.key.ranks, p),
        })
        .collect())
}

/// The per-size busbw error table of one set: a row per size, a column per op, percent.
pub fn error_table(points: &[PointErr]) -> String {
    // Columns by op (a set holds one rank count and transport).
    let op_of = |p: &PointErr| p.what.split(' ').next().unwrap_or("").to_string();
    let mut ops: Vec<String> = points.iter().map(op_of).collect();
    ops.sort_unstable();
    ops.dedup();
    let mut sizes: Vec<u64> = points.iter().map(|p| p.size as u64).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut s = String::new();
    let _ = write!(s, "    {:>8}", "MiB");
    for o in &ops {
        let _ = write!(s, " {:>14}", o);
    }
    s.push('\n');
    for b in sizes {
        let _ = write!(s, "    {:>8}", b as f64 / 1048576.0);
        for o in &ops {
            match points.iter().find(|p| op_of(p) == *o && p.size as u64 == b) {
                Some(p) => {
                    let _ = write!(s, " {:>13.1}%", 100.0 * p.rel_err);
                }
                None => {
                    let _ = write!(s, " {:>14}", "-");
                }
            }
        }
        s.push('\n');
    }
    s
}

/// The per-method table of one step set: measured and predicted step with its parts, ms, and the
/// error.
pub fn step_error_table(pts: &[(String, f64, step::StepPrediction)]) -> String {
    let mut s = format!(
        "    {:<22} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8}\n",
        "method", "meas ms", "pred ms", "compute", "codec", "comm", "err"
    );
    for (m, meas, p) in pts {
        let _ = writeln!(
            s,
            "    {:<22} {:>10.1} {:>10.1} {:>10.1} {:>9.2} {:>9.2} {:>7.1}%",
            m,
            meas * 1e3,
            p.step_s() * 1e3,
            p.compute_s * 1e3,
            p.codec_s * 1e3,
            p.comm_s * 1e3,
            100.0 * (p.step_s() / meas - 1.0)
        );
    }
    s
}

/// What the DDP predictor needs to price a point at any emulated link.
#[derive(Clone)]
pub struct DdpCtx {
    /// Per-unit compute.
    pub u: step::Units,
    /// Gradients in backward order.
    pub layers: Vec<crate::gradcomp::ddp::LayerGrad>,
    /// Codec costs and the collectives of the GPUs' own links.
    pub env: crate::gradcomp::compressor::Env,
    /// First-bucket cap, bytes.
    pub first_cap_bytes: f64,
    /// Bucket cap, bytes.
    pub cap_bytes: f64,
    /// Collectives on their own stream.
    pub overlap: bool,
    /// Rank coupling per step, when calibrated.
    pub coupling: Option<coupling::DdpCoupling>,
}

impl DdpCtx {
    /// Predicted step of `m` behind an emulated link (`None`: the GPUs' own), seconds.
    pub fn step_s(&self, m: &crate::gradcomp::compressor::Method, link: Option<f64>) -> f64 {
        let mut env = self.env.clone();
        if let (Some(l), Some(cc)) = (link, &self.env.calibrated) {
            env.calibrated = Some(step::with_link(cc, l));
        }
        step::predict_ddp(
            &self.u,
            &self.layers,
            m,
            self.first_cap_bytes,
            self.cap_bytes,
            &env,
            self.overlap,
            self.coupling.as_ref(),
        )
        .step_s
    }
}

/// DDP points by (set, model/batch/order/transport): (link, method, measured step, context).
pub type BreakGroups = BTreeMap<
    (String, String),
    Vec<(
        Option<f64>,
        crate::gradcomp::compressor::Method,
        f64,
        DdpCtx,
    )>,
>;

/// Measured break-even link bandwidth of `method` against `none` over the measured links, bytes/s:
/// where `step(method) − step(none)` changes sign between two neighbouring links, interpolated
/// linearly in 1/bandwidth (communication time's variable). `None` when it never changes sign.
pub fn measured_break_even(pairs: &[(f64, f64, f64)]) -> Option<f64> {
    // (link, step_method, step_none), sorted by link.
    let mut v = pairs.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.windows(2).find_map(|w| {
        let (d0, d1) = (w[0].1 - w[0].2, w[1].1 - w[1].2);
        if d0 == 0.0 {
            return Some(w[0].0);
        }
        if (d0 < 0.0) == (d1 < 0.0) {
            return None;
        }
        let (x0, x1) = (1.0 / w[0].0, 1.0 / w[1].0);
        Some(1.0 / (x0 + (x1 - x0) * d0 / (d0 - d1)))
    })
}

/// Predicted break-even link of `m` against `none`, bytes/s: the bandwidth where the predicted
/// steps are equal, by bisection on log-bandwidth over [10⁷, 10¹³] B/s (to 0.1%); `None` when the
/// sign does not change over that range.
pub fn predicted_break_even(ctx: &DdpCtx, m: &crate::gradcomp::compressor::Method) -> Option<f64> {
    let none = crate::gradcomp::compressor::Method::None;
    let d = |l: f64| ctx.step_s(m, Some(l)) - ctx.step_s(&none, Some(l));
    let (mut lo, mut hi) = (1e7f64.ln(), 1e13f64.ln());
    let (dlo, dhi) = (d(lo.exp()), d(hi.exp()));
    if (dlo < 0.0) == (dhi < 0.0) {
        return None;
    }
    while hi - lo > 1e-3 {
        let mid = 0.5 * (lo + hi);
        if (d(mid.exp()) < 0.0) == (dlo < 0.0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((0.5 * (lo + hi)).exp())
}

/// The break-even table of one DDP set: per group with ≥ 2 emulated links and per method that
/// has a `none` at the same links, the measured and the predicted break-even bandwidth.
pub fn break_even_table(set: &str, breaks: &BreakGroups) -> String {
    let mut s = String::new();
    for ((st, group), pts) in breaks {
        if st != set {
            continue;
        }
        let none: BTreeMap<u64, f64> = pts
            .iter()
            .filter(|p| p.1 == crate::gradcomp::compressor::Method::None)
            .filter_map(|p| p.0.map(|l| (l.to_bits(), p.2)))
            .collect();
        if none.len() < 2 {
            continue;
        }
        let mut methods: Vec<crate::gradcomp::compressor::Method> = Vec::new();
        for p in pts {
            if p.1 != crate::gradcomp::compressor::Method::None && !methods.contains(&p.1) {
                methods.push(p.1);
            }
        }
        let _ = writeln!(
            s,
            "    break-even link vs none, {group} (links {}):",
            none.keys()
                .map(|b| format!("{:.0}", f64::from_bits(*b) / 1e9))
                .collect::<Vec<_>>()
                .join(", ")
                + " GB/s"
        );
        for m in methods {
            let pairs: Vec<(f64, f64, f64)> = pts
                .iter()
                .filter(|p| p.1 == m)
                .filter_map(|p| {
                    let l = p.0?;
                    none.get(&l.to_bits()).map(|n| (l, p.2, *n))
                })
                .collect();
            let Some(ctx) = pts.iter().find(|p| p.1 == m).map(|p| &p.3) else {
                continue;
            };
            let meas = measured_break_even(&pairs);
            let pred = predicted_break_even(ctx, &m);
            let show = |x: Option<f64>, what: &str| {
                x.map_or(format!("none {what}"), |b| format!("{:.1} GB/s", b / 1e9))
            };
            let _ = writeln!(
                s,
                "      {:<22} measured {:>16}   predicted {:>16}",
                m.name(),
                show(meas, "in range"),
                show(pred, "in 0.01–10000 GB/s")
            );
        }
    }
    s
}

/// One validated DDP step: what it is, measured step and no-communication twin, prediction.
pub struct DdpPoint {
    /// Model, method, order and transport, for people.
    pub what: String,
    /// Measured step, seconds.
    pub step_s: f64,
    /// Measured no-communication twin, seconds.
    pub nocomm_s: Option<f64>,
    /// The prediction.
    pub pred: step::DdpPrediction,
}

/// The table of one DDP set: measured and predicted step, ms, its error, and the exposed
/// communication (step − no-communication twin), measured and predicted, ms.
pub fn ddp_error_table(pts: &[DdpPoint]) -> String {
    let mut s = format!(
        "    {:<40} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8} {:>8}\n",
        "point", "meas ms", "pred ms", "err", "comm ms", "codec ms", "exp meas", "exp pred"
    );
    for p in pts {
        let exp = p
            .nocomm_s
            .map_or("-".to_string(), |n| format!("{:.1}", (p.step_s - n) * 1e3));
        let _ = writeln!(
            s,
            "    {:<40} {:>9.1} {:>9.1} {:>6.1}% {:>9.2} {:>9.2} {:>8} {:>8.1}",
            p.what,
            p.step_s * 1e3,
            p.pred.step_s * 1e3,
            100.0 * (p.pred.step_s / p.step_s - 1.0),
            p.pred.comm_s * 1e3,
            p.pred.codec_s * 1e3,
            exp,
            p.pred.exposed_comm_s() * 1e3
        );
    }
    s
}

/// The multi-GPU step goal (issue 15: MAPE ≤ 10%, max ≤ 15%): a DDP set's tolerance unless the
/// request overrides the technique's default ([`kind_tolerance`]).
pub const DDP_GOAL: Tolerance = Tolerance {
    mape: 0.10,
    max_abs_pct_err: 0.15,
};

/// The single-GPU step goal (issue 14: MAPE ≤ 5%, max ≤ 10%): a `step` set's tolerance unless
/// the request overrides the technique's default ([`kind_tolerance`]).
pub const STEP_GOAL: Tolerance = Tolerance {
    mape: 0.05,
    max_abs_pct_err: 0.10,
};

/// The tolerance a set of `kind` is judged by: the request's when the user set one (it differs
/// from [`Gradcomp`]'s default goal), else the kind's own goal — [`STEP_GOAL`] for single-GPU
/// steps, [`DDP_GOAL`] for multi-GPU steps, the technique goal (10%) for collective and codec
/// sets.
pub fn kind_tolerance(kind: &str, requested: Tolerance) -> Tolerance {
    if requested != Gradcomp.goal() {
        return requested;
    }
    match kind {
        "step" => STEP_GOAL,
        "ddp" => DDP_GOAL,
        _ => requested,
    }
}

/// Smallest measured exposed communication, as a fraction of the no-communication step, that
/// the exposed-communication error is scored at. Below it the difference of two medians is
/// mostly their spread (each up to ~4% of a ~160 ms step on two H200s, run 19: measured
/// exposed communication from −6 to +13 ms where the prediction was 0–2 ms).
pub const EXPOSED_MIN_FRACTION: f64 = 0.10;

/// The exposed-communication line of one DDP set: over the points with a no-communication twin
/// whose measured exposed communication is at least [`EXPOSED_MIN_FRACTION`] of the twin, the
/// relative error of the predicted exposed communication (MAPE, max; the goal is 20%),
/// and for the other points the largest absolute error, ms. `None` without twins.
pub fn exposed_summary(pts: &[DdpPoint]) -> Option<String> {
    let mut rel = Vec::new();
    let mut small_abs_ms: f64 = 0.0;
    let mut small = 0usize;
    for p in pts {
        let Some(n) = p.nocomm_s else { continue };
        let meas = p.step_s - n;
        let pred = p.pred.exposed_comm_s();
        if meas >= EXPOSED_MIN_FRACTION * n {
            rel.push(pred / meas - 1.0);
        } else {
            small += 1;
            small_abs_ms = small_abs_ms.max((pred - meas).abs() * 1e3);
        }
    }
    if rel.is_empty() && small == 0 {
        return None;
    }
    let mut s = String::from("    exposed communication (step − no-communication twin): ");
    match ErrorStats::from_rel_errs(&rel) {
        Some(st) => {
            let _ = write!(
                s,
                "{} points ≥ {:.0}% of the twin: MAPE {:.1}%, max {:.1}%",
                st.points,
                100.0 * EXPOSED_MIN_FRACTION,
                100.0 * st.mape,
                100.0 * st.max_abs_pct_err
            );
        }
        None => {
            let _ = write!(
                s,
                "no point ≥ {:.0}% of the twin",
                100.0 * EXPOSED_MIN_FRACTION
            );
        }
    }
    if small > 0 {
        let _ = write!(
            s,
            "; {small} points below that (within the medians' spread): |error| ≤ {small_abs_ms:.1} ms"
        );
    }
    s.push('\n');
    Some(s)
}

fn validate(rows: &Measurements, req: &ValidateRequest) -> Result<Report> {
    let datasheet = datasheet_codec(req.catalog, &req.gpu)?;
    let sweeps = collective_sweeps(rows)?;
    let fits: BTreeMap<CollectiveKey, CollectiveFit> = calibration_sweeps(&sweeps)
        .into_iter()
        .map(|s| fit_collective(s).map(|f| (s.key.clone(), f)))
        .collect::<Result<_>>()?;
    // Sweep sets are judged like for like: against the newest sweep of the same key and timing.
    let fits_by_timing: BTreeMap<(CollectiveKey, String), CollectiveFit> =
        calibration_sweeps_by_timing(&sweeps)
            .into_iter()
            .map(|(k, s)| fit_collective(s).map(|f| (k, f)))
            .collect::<Result<_>>()?;
    // Keys with no sweep of their own in the input fall back to the catalog's calibration.
    let committed = GradcompCalibration::from_catalog(req.catalog, &req.gpu)?;
    let codec_all = codec::codec_points(rows)?;
    // The codec calibration: one fit of the pooled calibration sets (`codec::calibration_sets`);
    // every codec set is predicted by it (the calibration sets' own rows are its self-fit).
    // Graph-replayed calls (`exec=graph`) have their own calibration, fitted and scored alike.
    let hosts = host::launches(rows)?;
    let mut eager = exec_calibration(&codec_all, "eager", &datasheet)?;
    eager.fit = eager.fit.map(|f| CodecFit {
        host_launch_s: host::of_sets(&hosts, &eager.sets),
        ..f
    });
    let graph = exec_calibration(&codec_all, "graph", &datasheet)?;
    let (codec_cal_sets, codec_fit) = (&eager.sets, &eager.fit);
    let (graph_pts, graph_cal_sets) = (&graph.pts, &graph.sets);
    let mut notes = Vec::new();
    let mut by_set: BTreeMap<(String, &'static str), Vec<PointErr>> = BTreeMap::new();
    let mut self_fit: BTreeMap<String, bool> = BTreeMap::new();
    for s in &sweeps {
        if s.key.ranks < 2 {
            let floor = s
                .points
                .iter()
                .filter(|p| p.bytes <= GOAL_MIN_BYTES)
                .map(|p| p.time_s)
                .fold(f64::INFINITY, f64::min);
            notes.push(format!(
                "{} {}: one rank (busbw 0 by definition; the what-if has no communication on one rank), not validated; fastest call ≤ 1 MiB {:.1} µs",
                s.set,
                s.key,
                floor * 1e6
            ));
            continue;
        }
        let fit = match fits_by_timing
            .get(&(s.key.clone(), s.timing.clone()))
            .cloned()
            .or_else(|| {
                committed
                    .as_ref()
                    .and_then(|c| c.collective.iter().find(|f| f.key() == s.key).cloned())
            }) {
            Some(f) => f,
            None => {
                notes.push(format!("{} {}: no fit for this key, skipped", s.set, s.key));
                continue;
            }
        };
        *self_fit.entry(s.set.clone()).or_insert(true) &= fit.set == s.set;
        by_set
            .entry((s.set.clone(), "collective"))
            .or_default()
            .extend(sweep_errors(s, &fit)?);
    }
    // Rows timing an implementation the harness has since replaced: counted, not scored.
    let mut superseded_n: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    // Per set measured on another host than the calibration's: (the host probe's ratio, |rel
    // err| had the launch terms been scaled by it). A diagnostic only: runs 49–53 showed the
    // probe does not track the launch-bound calls (see `host`), so predictions are unscaled.
    let mut host_scaled: BTreeMap<String, (f64, Vec<f64>)> = BTreeMap::new();
    if graph.fit.is_none() && !graph_pts.is_empty() {
        notes.push(format!(
            "{} graph-replayed codec rows not scored: no graph calibration set (a non-hold-out set of exec=graph rows)",
            graph_pts.len()
        ));
    }
    for (cal, label) in [(&eager, ""), (&graph, " graph")] {
        let Some(cf) = &cal.fit else { continue };
        for p in &cal.pts {
            if let Some(why) = step::superseded(&p.family, Some(&p.op), &p.date) {
                *superseded_n.entry((p.family.clone(), why)).or_default() += 1;
                continue;
            }
            let c = cf.stage_cost(&p.method, &p.op);
            let pred = codec::predict_s(&c, p);
            // Only the eager fit records a host probe; graph replays have no host term.
            if let Some(f) = host::factor(&hosts, &p.set, cf.host_launch_s) {
                let mut scaled = c;
                scaled.launch_s *= f;
                let e = host_scaled.entry(p.set.clone()).or_insert((f, Vec::new()));
                e.1.push((codec::predict_s(&scaled, p) / p.time_s - 1.0).abs());
            }
            by_set
                .entry((p.set.clone(), "codec"))
                .or_default()
                .push(PointErr {
                    set: p.set.clone(),
                    kind: "codec",
                    what: format!("{} {}{label}", p.method, p.op),
                    size: p.work.bytes,
                    measured: p.time_s,
                    predicted: pred,
                    rel_err: pred / p.time_s - 1.0,
                });
        }
    }
    if let Some(cal) = codec_fit.as_ref().and_then(|c| c.host_launch_s) {
        notes.push(format!(
            "host launch probe (candle-affine under the codec protocol): calibration host {:.2} µs; predictions are not scaled by it (runs 49–53: it does not track the launch-bound calls' host-to-host spread); per set, the error had they been",
            cal * 1e6
        ));
    }
    for (set, (f, errs)) in &host_scaled {
        if codec_cal_sets.contains(set) {
            continue;
        }
        let n = errs.len().max(1) as f64;
        notes.push(format!(
            "{set}: host launch probe {:.2} µs (×{f:.3} the calibration host's); with launch terms scaled by it, codec MAPE {:.1}% max {:.1}% (not applied)",
            host::of_set(&hosts, set).unwrap_or(0.0) * 1e6,
            100.0 * errs.iter().sum::<f64>() / n,
            100.0 * errs.iter().copied().fold(0.0, f64::max)
        ));
    }
    // Per (family, stage): the self-fit and the leave-one-shape-out error (the set is both the
    // fit and the check; held-out shapes say how a stage's fit extrapolates).
    for (cal, label) in [(&eager, "codec"), (&graph, "codec graph")] {
        let Some(cf) = cal.fit.as_ref().filter(|c| c.mode == "per-stage") else {
            continue;
        };
        for e in codec::leave_one_shape_out(&cal.cal_pts, cf)? {
            notes.push(format!(
                "{label} {} {}: {} calls at {} shapes, own fit MAPE {:.1}% max {:.1}%; leave-one-shape-out max {}",
                e.family,
                e.op,
                e.points,
                e.shapes,
                100.0 * e.self_mean,
                100.0 * e.self_max,
                e.loso_max
                    .map_or("n/a (one shape)".to_string(), |m| format!("{:.1}%", 100.0 * m))
            ));
        }
    }
    // wire_bytes rows: the payload model must equal the measured payload; a set with a
    // mismatch fails.
    let mut wire_bad: BTreeMap<String, usize> = BTreeMap::new();
    for w in codec::wire_checks(rows)? {
        if !w.matches() {
            *wire_bad.entry(w.set.clone()).or_default() += 1;
            notes.push(format!(
                "{} {}: wire_bytes measured {} but the payload model says {}",
                w.set, w.what, w.measured_bytes, w.model_bytes
            ));
        }
    }
    // Real single-GPU training steps (`comm=local`): compute from the layer micro rows, codec
    // and local reduction from the codec fit (see `step`).
    let (step_rows, ddp_rows) = step::step_rows(rows)?;
    // Rank coupling: the token steps of the input (calibration micro rows, never scored as
    // steps), else the committed calibration's.
    let ddp_coupling = match coupling::fit(&ddp_rows) {
        Some(c) => {
            notes.push(format!(
                "DDP rank coupling from {} token steps of {} (median excess over the twin per step): async {:.2} ms, inline {:.2} ms; token rows are calibration micro rows, not scored",
                c.async_points + c.inline_points,
                c.sets.join(", "),
                c.async_s * 1e3,
                c.inline_s * 1e3
            ));
            Some(c)
        }
        None => committed.as_ref().and_then(|c| c.ddp_coupling.clone()),
    };
    let mut step_table: BTreeMap<String, Vec<(String, f64, step::StepPrediction)>> =
        BTreeMap::new();
    let mut ddp_table: BTreeMap<String, Vec<DdpPoint>> = BTreeMap::new();
    let mut breaks: BreakGroups = BTreeMap::new();
    let step_codec = codec_fit
        .as_ref()
        .map(|f| (f, "the codec fit of these rows"))
        .or_else(|| {
            committed
                .as_ref()
                .and_then(|c| c.codec.as_ref())
                .map(|f| (f, "the committed codec calibration"))
        });
    match step_codec {
        None if !step_rows.is_empty() => notes.push(format!(
            "{} step rows skipped: no codec rows and no committed codec calibration to price the codecs",
            step_rows.len()
        )),
        None => {}
        Some((cf, source)) => {
            let by_family: Vec<(String, CodecCost)> = cf
                .family
                .iter()
                .map(|(f, c)| (f.clone(), c.cost))
                .collect();
            let by_stage: Vec<(String, String, CodecCost)> = cf.stage_costs();
            let env_of = |world: u32| {
                step::local_env(world, cf.shared.cost, by_family.clone(), by_stage.clone())
            };
            let mut missing: BTreeMap<String, usize> = BTreeMap::new();
            let mut excluded: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &step_rows {
                let fam = r.method.family();
                if let Some((f, _)) = step::EXCLUDED.iter().find(|(f, _)| *f == fam) {
                    *excluded.entry(f).or_default() += 1;
                    continue;
                }
                if let Some(why) = step::superseded(&fam, None, &r.date) {
                    *superseded_n.entry((fam, why)).or_default() += 1;
                    continue;
                }
                let Some(c) = step::compute(rows, &r.model, r.batch, &r.seq)? else {
                    *missing
                        .entry(format!("{} batch {} seq {}", r.model, r.batch, r.seq))
                        .or_default() += 1;
                    continue;
                };
                let layers = step::harness_layers(req.catalog, &r.model)?;
                let env = env_of(r.world)?;
                let p = step::predict(
                    c.total_s(),
                    &layers,
                    &r.method,
                    r.first_bucket_bytes,
                    r.bucket_bytes,
                    r.world,
                    &env,
                );
                let pred = p.step_s();
                step_table
                    .entry(r.set.clone())
                    .or_default()
                    .push((r.method.name(), r.step_s, p));
                by_set
                    .entry((r.set.clone(), "step"))
                    .or_default()
                    .push(PointErr {
                        set: r.set.clone(),
                        kind: "step",
                        what: format!("{} {}", r.model, r.method.name()),
                        size: f64::from(r.batch),
                        measured: r.step_s,
                        predicted: pred,
                        rel_err: pred / r.step_s - 1.0,
                    });
            }
            for (f, n) in excluded {
                let why = step::EXCLUDED
                    .iter()
                    .find(|e| e.0 == f)
                    .map_or("", |e| e.1);
                notes.push(format!("{n} step rows of {f} excluded: {why}"));
            }
            if !step_table.is_empty() {
                notes.push(format!(
                    "step predictions: compute = Σ layer micro rows + optimizer row; codec stages priced by {source}; LocalComm priced at the shared codec fit's launch cost and bandwidth (no micro row times LocalComm)"
                ));
            }
            // Multi-GPU DDP steps (`comm=nccl`): per-unit compute from the micro rows, codec
            // from the codec fit, collectives from the fit of this world's and transport's
            // sweep (the input's newest, else the committed calibration), on the harness's
            // timeline (`step::predict_ddp`).
            let mut no_coll: BTreeMap<String, usize> = BTreeMap::new();
            for d in ddp_rows.iter().filter(|d| !d.token_only) {
                let r = &d.step;
                if let Some(why) = step::superseded(&r.method.family(), None, &r.date) {
                    *superseded_n.entry((r.method.family(), why)).or_default() += 1;
                    continue;
                }
                let Some(u) = step::units(rows, &r.model, r.batch, &r.seq)? else {
                    *missing
                        .entry(format!("{} batch {} seq {}", r.model, r.batch, r.seq))
                        .or_default() += 1;
                    continue;
                };
                let layers = step::harness_layers(req.catalog, &r.model)?;
                if layers.len() != u.backward_s.len() {
                    notes.push(format!(
                        "{} {}: {} micro units but {} catalog layers, skipped",
                        r.set,
                        r.model,
                        u.backward_s.len(),
                        layers.len()
                    ));
                    continue;
                }
                let models: Vec<(Op, RegimeModel)> = fits
                    .iter()
                    .filter(|(k, _)| k.ranks == r.world && k.transport == d.transport)
                    .filter_map(|(k, f)| k.op().ok().map(|o| (o, f.model())))
                    .collect();
                let cc = if models.is_empty() {
                    committed
                        .as_ref()
                        .and_then(|c| c.collectives(r.world, &d.transport))
                } else {
                    Some(CalibratedCollectives {
                        ranks: r.world,
                        models,
                        label: format!("the input's {} sweep", d.transport),
                    })
                };
                let Some(cc) = cc else {
                    *no_coll
                        .entry(format!("{} ranks, transport {}", r.world, d.transport))
                        .or_default() += 1;
                    continue;
                };
                let mut env = env_of(r.world)?;
                env.calibrated = Some(cc.clone());
                let ctx = DdpCtx {
                    u: u.clone(),
                    layers: layers.clone(),
                    env: env.clone(),
                    first_cap_bytes: r.first_bucket_bytes,
                    cap_bytes: r.bucket_bytes,
                    overlap: d.overlap,
                    coupling: ddp_coupling.clone(),
                };
                if let Some(l) = d.link_bytes_per_s {
                    env.calibrated = Some(step::with_link(&cc, l));
                }
                breaks
                    .entry((
                        r.set.clone(),
                        format!(
                            "{} batch {}{}{}",
                            r.model.trim_start_matches("val-"),
                            r.batch,
                            if d.overlap { "" } else { " in-order" },
                            if d.transport == "default" {
                                String::new()
                            } else {
                                format!(" {}", d.transport)
                            }
                        ),
                    ))
                    .or_default()
                    .push((d.link_bytes_per_s, r.method, r.step_s, ctx));
                let p = step::predict_ddp(
                    &u,
                    &layers,
                    &r.method,
                    r.first_bucket_bytes,
                    r.bucket_bytes,
                    &env,
                    d.overlap,
                    ddp_coupling.as_ref(),
                );
                by_set
                    .entry((r.set.clone(), "ddp"))
                    .or_default()
                    .push(PointErr {
                        set: r.set.clone(),
                        kind: "ddp",
                        what: format!(
                            "{} {} overlap={} {}{}",
                            r.model,
                            r.method.name(),
                            u8::from(d.overlap),
                            d.transport,
                            d.link_bytes_per_s
                                .map_or(String::new(), |l| format!(" link={l}"))
                        ),
                        size: f64::from(r.batch),
                        measured: r.step_s,
                        predicted: p.step_s,
                        rel_err: p.step_s / r.step_s - 1.0,
                    });
                ddp_table.entry(r.set.clone()).or_default().push(DdpPoint {
                    what: format!(
                        "{} {}{}{}{}",
                        r.model.trim_start_matches("val-"),
                        r.method.name(),
                        if d.overlap { "" } else { " in-order" },
                        if d.transport == "default" {
                            String::new()
                        } else {
                            format!(" {}", d.transport)
                        },
                        d.link_bytes_per_s
                            .map_or(String::new(), |l| format!(" @{:.0} GB/s", l / 1e9))
                    ),
                    step_s: r.step_s,
                    nocomm_s: d.nocomm_s,
                    pred: p,
                });
            }
            for (k, n) in missing {
                notes.push(format!(
                    "{n} step rows of {k} skipped: no complete layer/optimizer micro rows at that model, batch and seq"
                ));
            }
            for (k, n) in no_coll {
                notes.push(format!(
                    "{n} DDP step rows on {k} skipped: no collective sweep of that world and transport in the input or the committed calibration"
                ));
            }
            if !ddp_table.is_empty() {
                notes.push(
                    "DDP predictions: per-unit compute from the layer micro rows, codec stages from the codec fit, collectives from the fitted NCCL sweep of the same world and transport, on the harness's timeline (encode inline, collectives on their own stream when overlap=1, decodes after backward, PowerSGD inline); exposed communication = step − no-communication twin".to_string(),
                );
            }
        }
    }
    for ((fam, why), n) in &superseded_n {
        notes.push(format!(
            "{n} {fam} rows not scored (codec, step and DDP rows together): {why}"
        ));
    }
    if by_set.is_empty() {
        return Err(Error::range(
            "gradcomp rows",
            "no collective sweep of >= 2 ranks and no codec row",
            "rows of kind collective or codec to validate",
        ));
    }
    let mut csv = String::from("set,kind,what,size,measured,predicted,rel_err\n");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "gradcomp: collective sets: nccl-tests busbw error at every size ≥ 1 MiB; codec sets: time error per call"
    );
    let mut summaries = Vec::new();
    for ((set, kind), pts) in &by_set {
        for p in pts {
            let _ = writeln!(
                csv,
                "{},{},{},{},{:e},{:e},{:.6}",
                p.set, p.kind, p.what, p.size, p.measured, p.predicted, p.rel_err
            );
        }
        let errs: Vec<f64> = pts.iter().map(|p| p.rel_err).collect();
        let Some(st) = ErrorStats::from_rel_errs(&errs) else {
            continue;
        };
        let tol = kind_tolerance(kind, req.tolerance);
        let pass = tol.passes(&st) && !wire_bad.contains_key(set);
        let how = if *kind == "codec" {
            let graph = graph_pts.iter().any(|p| &p.set == set);
            let (cal, what) = if graph {
                (&graph_cal_sets, "graph-replayed codec calibration")
            } else {
                (&codec_cal_sets, "codec calibration")
            };
            if cal.is_empty() {
                format!("no {what}")
            } else if cal.contains(set) {
                format!(
                    "the {what}: one fit of {} pooled sets, its own rows among them",
                    cal.len()
                )
            } else {
                format!("predicted by the fit of {}", cal.join(" + "))
            }
        } else if *kind == "step" {
            "predicted from the layer and codec micro rows".to_string()
        } else if *kind == "ddp" {
            "multi-GPU steps predicted from the layer, codec and collective micro rows".to_string()
        } else if self_fit.get(set).copied().unwrap_or(false) {
            format!(
                "self-fit: the calibration sweep ({}), {}",
                run_of(set),
                timing_label(sweeps.iter().find(|s| &s.set == set))
            )
        } else {
            format!(
                "independent: predicted by the newest {} sweep's fit",
                timing_label(sweeps.iter().find(|s| &s.set == set))
            )
        };
        let _ = writeln!(
            out,
            "  {set} ({kind}, {how}): {} points, MAPE {:.1}%, max {:.1}%: {}",
            st.points,
            100.0 * st.mape,
            100.0 * st.max_abs_pct_err,
            if pass { "PASS" } else { "FAIL" }
        );
        if *kind == "collective" {
            out.push_str(&error_table(pts));
        }
        if *kind == "codec" {
            let within = errs.iter().filter(|e| e.abs() <= GOAL).count();
            let _ = writeln!(
                out,
                "    calls within {:.0}%: {within} of {} ({:.1}%)",
                100.0 * GOAL,
                errs.len(),
                100.0 * within as f64 / errs.len().max(1) as f64
            );
        }
        if *kind == "step" {
            out.push_str(&step_error_table(step_table.get(set).map_or(&[], |v| v)));
        }
        if *kind == "ddp" {
            let pts = ddp_table.get(set).map_or(&[][..], |v| &v[..]);
            out.push_str(&ddp_error_table(pts));
            let _ = writeln!(
                out,
                "    multi-GPU step goal (MAPE ≤ {:.0}%, max ≤ {:.0}%): {}",
                100.0 * DDP_GOAL.mape,
                100.0 * DDP_GOAL.max_abs_pct_err,
                if DDP_GOAL.passes(&st) {
                    "met"
                } else {
                    "missed"
                }
            );
            if let Some(line) = exposed_summary(pts) {
                out.push_str(&line);
            }
            out.push_str(&break_even_table(set, &breaks));
        }
        let mut summary = SetSummary::calibrated(
            "gradcomp",
            set,
            st.points,
            (st.mape, st.max_abs_pct_err),
            pass,
            req,
        );
        summary.tolerance = tol;
        summaries.push(summary);
    }
    for n in &notes {
        let _ = writeln!(out, "  note: {n}");
    }
    std::fs::create_dir_all(&req.out).map_err(|e| Error::io(&req.out, e))?;
    let path = req.out.join("gradcomp-points.csv");
    write_atomic(&path, csv.as_bytes())?;
    let _ = writeln!(out, "  points: {}", path.display());
    if let Some(path) = &req.record {
        record_sets(path, &req.gpu, &summaries)?;
    }
    if req.format == Format::Json {
        out = sets_json(&summaries);
    }
    Ok(Report {
        stdout: out,
        pass: summaries.iter().all(|s| s.pass),
    })
}

#[cfg(test)]
mod tests {
    /// Each kind keeps its issue's goal under the default tolerance; a user's tolerance wins.
    #[test]
    fn kinds_are_judged_by_their_own_goals_unless_overridden() {
        let default = Gradcomp.goal();
        let t = |k: &str| super::kind_tolerance(k, default);
        assert_eq!((t("step").mape, t("step").max_abs_pct_err), (0.05, 0.10));
        assert_eq!((t("ddp").mape, t("ddp").max_abs_pct_err), (0.10, 0.15));
        assert_eq!(t("codec"), default);
        assert_eq!(t("collective"), default);
        let user = Tolerance {
            mape: 0.2,
            max_abs_pct_err: 0.3,
        };
        assert_eq!(super::kind_tolerance("ddp", user), user);
        assert_eq!(super::kind_tolerance("step", user), user);
    }

    use super::*;

    /// step(m) − step(none) goes from −2 ms at 1 GB/s to +1 ms at 10 GB/s: linear in 1/bandwidth
    /// the sign changes at x = 1e−9 − 0.9e−9·2/3 = 4e−10 s/B, i.e. 2.5 GB/s; no change → None;
    /// order of the pairs does not matter.
    #[test]
    fn measured_break_even_interpolates_in_inverse_bandwidth() {
        let b = measured_break_even(&[(1e10, 10e-3, 9e-3), (1e9, 10e-3, 12e-3)]).unwrap();
        assert!((b - 2.5e9).abs() < 1e-3, "{b}");
        assert!(measured_break_even(&[(1e9, 1.0, 2.0), (1e10, 1.0, 3.0)]).is_none());
        assert!(measured_break_even(&[(1e9, 1.0, 2.0)]).is_none());
    }
}
