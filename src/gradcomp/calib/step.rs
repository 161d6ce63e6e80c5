//! Step predictor: one real single-GPU training step of the GPU harness (rows of kind `step`,
//! `comm=local`) from its calibration micro rows and the codec fit.
//!
//! What the harness runs (`perfcast-gpu gradcomp step`, `validation/src/gradcomp/step.rs`): a
//! forward over every unit, then backward unit by unit in reverse order, each DDP bucket's codec
//! round issued right after the backward that completes it, then AdamW; the collective is
//! `LocalComm` (`validation/src/gradcomp/codec/mod.rs`: all-reduce = sum of a `world`-fold
//! broadcast of the payload, all-gather = concatenation of `world` copies), everything on one
//! stream, so nothing overlaps:
//!
//! `step_s = Σ_units (forward_s + backward_s) + optimizer_s + Σ_buckets (codec_s + local_comm_s)`
//!
//! - **Compute** from the micro rows at the same model, batch and `seq`: kind `layer` (params
//!   `block=<u>;name=…;pass=forward|backward;seq=S`, metric `time_s`) for every unit, and kind
//!   `optimizer` (`optimizer=adamw;seq=S`, metric `time_s`: every unit's AdamW step).
//! - **Buckets** from [`crate::gradcomp::ddp::buckets`] over the harness model's real
//!   parameters ([`harness_layers`]: the catalog profile of the same architecture, checked
//!   against the harness's parameter count), first bucket capped at `first_bucket_bytes`
//!   (default 1 MiB, PyTorch's and the harness's) and the others at `bucket_bytes`.
//! - **Codec** per bucket: every stage of [`Compressor::codec_work`] (with `world` ranks'
//!   payloads decoded) priced by the calibrated codec costs of the method's family
//!   ([`codec_stage_s`], through [`Env`]).
//! - **Local reduction** per bucket ([`local_comm_s`]): no micro row times `LocalComm`, so it is
//!   priced by the *shared codec fit's* launch cost and memory bandwidth: one launch per
//!   collective the method issues (the `Comm` stages of [`Compressor::stages`]) plus the bytes
//!   moved over that bandwidth: an all-reduce of a `W`-byte payload (per rank,
//!   [`Compressor::wire_bytes`]) reads `world·W` and writes `W`; an all-gather reads and writes
//!   `world·W` each.

use crate::catalog::Catalog;
use crate::dnn;
use crate::error::{Error, Result};
use crate::gradcomp::collective::{Algo, Cluster};
use crate::gradcomp::compressor::{CodecWork, Compressor, Env, Method, Stage};
use crate::gradcomp::ddp::{buckets, Bucket, LayerGrad};
use crate::measure::Measurements;
use std::collections::BTreeMap;

/// PyTorch DDP's first-bucket cap, the harness's default (`FIRST_BUCKET_BYTES`), bytes.
pub const FIRST_BUCKET_BYTES: f64 = 1048576.0;
/// Bytes of one f32 gradient element.
const ELEM_BYTES: f64 = 4.0;

/// Compressor families whose step rows are not validated, and why (none since run 18: run 17's
/// QSGD failure was a false alarm of its check, fixed in the harness; run 17's sets moved to
/// `validation/results/superseded-run17/`).
pub const EXCLUDED: &[(&str, &str)] = &[];

/// Rows of a compressor family measured before a harness change that replaced its
/// implementation: (family, the codec stages replaced (empty: all), provenance dates before this
/// one, why). Such rows stay committed and are counted in `validate`'s notes, but neither fitted
/// nor scored: they time code that no longer exists. A step or DDP row runs every stage, so any
/// entry of its family supersedes it.
pub const SUPERSEDED: &[(&str, &[&str], &str, &str)] = &[
    (
        "topk",
        &[],
        "2026-11-30T09:00:00Z",
        "measured with the host-read radix select (three 16 KiB histogram reads per call, harness before bcc9109; run 44 on is device-side)",
    ),
    (
        "powersgd",
        &["q"],
        "2026-11-30T11:45:00Z",
        "measured with the candle-composed orthogonalization (about 13 launches per rank column; run 48 on: one codec_orthogonalize launch per bucket)",
    ),
    (
        "powersgd",
        &[],
        "2026-11-30T20:50:00Z",
        "measured with cuBLAS skinny GEMMs and candle ops per matrix (runs before 73; run 73 on: the fused psgd kernels, one launch per stage kernel per bucket)",
    ),
    (
        "powersgd",
        &[],
        "2026-11-30T20:56:00Z",
        "measured with run 73's first fused kernels, one warp per matrix row (latency-bound on matrices of few, long rows; run 74 on: one warp per row and 256-column chunk)",
    ),
    (
        "powersgd",
        &[],
        "2026-11-30T21:03:00Z",
        "measured with run 74's fused kernels, whose rank-guarded loads of Q issued one memory latency at a time (rank 32 on 128x512: 29.9 µs against 7.3 predicted; run 75 on: unguarded loads)",
    ),
    (
        "powersgd",
        &[],
        "2026-11-30T21:10:00Z",
        "measured with run 75's fused kernels, whose lanes loaded M one 32-column step at a time (a memory latency per step: 64x256 slower than 576x64; run 76 on: a lane's elements loaded up front)",
    ),
];

/// Why a row of `family` measured at `date` (ISO 8601) is superseded ([`SUPERSEDED`]), if it is;
/// `stage` is a codec row's stage, `None` for a step or DDP row (which runs every stage).
pub fn superseded(family: &str, stage: Option<&str>, date: &str) -> Option<&'static str> {
    SUPERSEDED
        .iter()
        .find(|(f, stages, before, _)| {
            *f == family
                && date < *before
                && (stages.is_empty() || stage.is_none_or(|s| stages.contains(&s)))
        })
        .map(|(_, _, _, why)| *why)
}

/// The harness models: name, catalog architecture with the same parameters, parameter count of
/// the harness model (`validation/src/gradcomp/models.rs`: `val-bert-base` 12 × 768 with a
/// 2-class head, 109,483,778; `val-gpt2` 124,439,808, tied LM head).
pub const HARNESS_MODELS: &[(&str, &str, u64)] = &[
    ("val-bert-base", "bert-base", 109_483_778),
    ("val-gpt2", "gpt2", 124_439_808),
];

/// The gradients of harness model `model`, in backward order (`backward_s` 0: times come from
/// the rows), from the catalog architecture of [`HARNESS_MODELS`]: per unit its weight matrices
/// in reverse parameter order, then its vector part, as the harness packs them.
///
/// # Errors
/// An unknown harness model (listing them), or a catalog architecture whose parameter count is
/// not the harness's.
pub fn harness_layers(cat: &Catalog, model: &str) -> Result<Vec<LayerGrad>> {
    let Some(&(_, arch, params)) = HARNESS_MODELS.iter().find(|m| m.0 == model) else {
        return Err(Error::unknown(
            "gradcomp step model",
            model,
            HARNESS_MODELS.iter().map(|m| m.0),
        ));
    };
    let m = dnn::model(cat, arch)?;
    let got: u64 = m.layers.iter().map(|l| l.params()).sum();
    if got != params {
        return Err(Error::range(
            "gradcomp step model",
            format!("{model}: catalog {arch} has {got} parameters"),
            format!("{params} (the harness model's)"),
        ));
    }
    Ok(m.layers
        .iter()
        .rev()
        .map(|l| LayerGrad {
            backward_s: 0.0,
            matrices: l.weights.iter().rev().map(|w| (w.rows, w.cols)).collect(),
            vector_elems: l.vector_params,
        })
        .collect())
}

/// Compute of one step from the micro rows, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compute {
    /// Σ over units of forward time.
    pub forward_s: f64,
    /// Σ over units of backward time.
    pub backward_s: f64,
    /// AdamW step of every unit.
    pub optimizer_s: f64,
    /// Units found (both passes).
    pub units: usize,
}

impl Compute {
    /// Forward + backward + optimizer, seconds.
    pub fn total_s(&self) -> f64 {
        self.forward_s + self.backward_s + self.optimizer_s
    }
}

/// Per-unit compute of one model at one batch and `seq`, seconds (unit order: forward order).
#[derive(Debug, Clone, PartialEq)]
pub struct Units {
    /// Forward of each unit.
    pub forward_s: Vec<f64>,
    /// Backward of each unit.
    pub backward_s: Vec<f64>,
    /// AdamW step of every unit.
    pub optimizer_s: f64,
}

impl Units {
    /// The sums.
    pub fn compute(&self) -> Compute {
        Compute {
            forward_s: self.forward_s.iter().sum(),
            backward_s: self.backward_s.iter().sum(),
            optimizer_s: self.optimizer_s,
            units: self.forward_s.len(),
        }
    }
}

/// The per-unit compute of `model` at `batch` and `seq` from the rows of kind `layer` and `optimizer`
/// (the newest row by its provenance date wins when a unit and pass repeat, later in the input on
/// a tie: the newest calibration host), or `None` when the rows lack the optimizer or any unit's
/// forward or backward (units `0..=max block`).
///
/// The optimizer's time is the *smallest* optimizer row of the model at `seq` over every batch:
/// AdamW's work does not depend on the batch (same parameters, same kernels), so rows at
/// different batches are repeats of one measurement, and its time is host-bound with a slow
/// mode (run 18: 22.1 and 22.0 ms in the first `layers` call per model, 15.8 and 15.3 ms in the
/// second, against ≈ 13–15 ms implied by the steps), the same launch-bound bimodality the freeze
/// harness showed.
///
/// # Errors
/// A layer row without an integer `block` or with a `pass` other than forward/backward.
pub fn units(rows: &Measurements, model: &str, batch: u32, seq: &str) -> Result<Option<Units>> {
    let mut fwd: BTreeMap<u64, (String, f64)> = BTreeMap::new();
    let mut bwd: BTreeMap<u64, (String, f64)> = BTreeMap::new();
    let newer = |m: &mut BTreeMap<u64, (String, f64)>, u: u64, date: &str, v: f64| {
        if m.get(&u).is_none_or(|(d, _)| date >= d.as_str()) {
            m.insert(u, (date.to_string(), v));
        }
    };
    let mut opt = None;
    for (o, r) in &rows.rows {
        if r.model != model || r.metric != "time_s" || r.params.get("seq") != Some(seq) {
            continue;
        }
        if r.kind == "optimizer" {
            opt = Some(opt.map_or(r.value, |o: f64| o.min(r.value)));
            continue;
        }
        if r.batch != Some(batch) || r.kind != "layer" {
            continue;
        }
        let u = r
            .params
            .get("block")
            .and_then(|b| b.parse::<u64>().ok())
            .ok_or_else(|| o.err("gradcomp layer row needs params block=<integer unit>"))?;
        match r.params.get("pass") {
            Some("forward") => newer(&mut fwd, u, &r.provenance.date, r.value),
            Some("backward") => newer(&mut bwd, u, &r.provenance.date, r.value),
            p => {
                return Err(o.err(format!(
                    "params pass = '{}': forward or backward",
                    p.unwrap_or("")
                )))
            }
        }
    }
    let (Some(optimizer_s), Some(&last)) = (opt, fwd.keys().chain(bwd.keys()).max()) else {
        return Ok(None);
    };
    if (0..=last).any(|u| !fwd.contains_key(&u) || !bwd.contains_key(&u)) {
        return Ok(None);
    }
    Ok(Some(Units {
        forward_s: fwd.into_values().map(|(_, v)| v).collect(),
        backward_s: bwd.into_values().map(|(_, v)| v).collect(),
        optimizer_s,
    }))
}

/// [`units`], summed.
///
/// # Errors
/// As [`units`].
pub fn compute(rows: &Measurements, model: &str, batch: u32, seq: &str) -> Result<Option<Compute>> {
    Ok(units(rows, model, batch, seq)?.map(|u| u.compute()))
}

/// Time of one codec stage of `method` under `env`'s calibrated codec costs, seconds.
pub fn codec_stage_s(env: &Env, method: &Method, w: &CodecWork) -> f64 {
    env.codec_time(&method.family(), w)
}

/// Time of the `LocalComm` collectives of one bucket on `world` ranks, seconds (module doc):
/// one launch per collective plus the bytes moved at the shared codec bandwidth.
pub fn local_comm_s(env: &Env, method: &Method, b: &Bucket, world: u32) -> f64 {
    let mut st = Vec::new();
    method.stages(&b.content, env, &mut st);
    let calls = st.iter().filter(|s| matches!(s, Stage::Comm(_))).count() as f64;
    let w = method.wire_bytes(&b.content);
    let p = f64::from(world);
    let bytes = if method.all_reducible() {
        (p + 1.0) * w
    } else {
        2.0 * p * w
    };
    calls * env.codec.launch_s + bytes / env.codec.bw_bytes_per_s
}

/// One predicted step, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPrediction {
    /// Forward + backward + optimizer.
    pub compute_s: f64,
    /// Σ over buckets of the codec stages.
    pub codec_s: f64,
    /// Σ over buckets of the local collectives.
    pub comm_s: f64,
    /// Buckets.
    pub buckets: usize,
}

impl StepPrediction {
    /// The whole step (one stream: the sum), seconds.
    pub fn step_s(&self) -> f64 {
        self.compute_s + self.codec_s + self.comm_s
    }
}

/// The step of `method` on gradients `layers` (backward order) with compute `compute_s`, buckets
/// capped at `first_cap_bytes` then `cap_bytes`, `world` local ranks, codec costs of `env`.
pub fn predict(
    compute_s: f64,
    layers: &[LayerGrad],
    method: &Method,
    first_cap_bytes: f64,
    cap_bytes: f64,
    world: u32,
    env: &Env,
) -> StepPrediction {
    let bs = buckets(layers, first_cap_bytes, cap_bytes, ELEM_BYTES);
    let mut codec_s = 0.0;
    let mut comm_s = 0.0;
    let mut work = Vec::new();
    for b in &bs {
        work.clear();
        method.codec_work(&b.content, world, &mut work);
        codec_s += work
            .iter()
            .map(|w| codec_stage_s(env, method, w))
            .sum::<f64>();
        comm_s += local_comm_s(env, method, b, world);
    }
    StepPrediction {
        compute_s,
        codec_s,
        comm_s,
        buckets: bs.len(),
    }
}

/// A one-node environment of `world` ranks carrying codec costs (`shared` and per family); its
/// collectives are never used by [`predict`] (only the count of `Comm` stages).
///
/// # Errors
/// `world` out of range.
pub fn local_env(
    world: u32,
    shared: crate::gradcomp::compressor::CodecCost,
    by_family: Vec<(String, crate::gradcomp::compressor::CodecCost)>,
    by_stage: Vec<(String, String, crate::gradcomp::compressor::CodecCost)>,
) -> Result<Env> {
    let cluster = Cluster::new(i64::from(world), i64::from(world), 100.0, 100.0, 0.0)?;
    let mut env = Env::new(cluster, Algo::Ring, None, shared);
    env.codec_by_family = by_family;
    env.codec_by_stage = by_stage;
    env.codec_calibrated = true;
    Ok(env)
}

/// One predicted multi-GPU DDP step of the harness (`perfcast-gpu gradcomp ddp`), seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdpPrediction {
    /// The step.
    pub step_s: f64,
    /// The same step with the collectives replaced by no-ops (the harness's `step_nocomm_s`).
    pub nocomm_s: f64,
    /// Forward + backward + optimizer.
    pub compute_s: f64,
    /// Σ over buckets of the codec stages.
    pub codec_s: f64,
    /// Σ over buckets of the collectives.
    pub comm_s: f64,
    /// Buckets.
    pub buckets: usize,
}

impl DdpPrediction {
    /// Communication the step exposes: `step_s − nocomm_s`, seconds.
    pub fn exposed_comm_s(&self) -> f64 {
        self.step_s - self.nocomm_s
    }
}

/// The DDP step of the harness (`validation/src/gradcomp/ddp.rs`, `step.rs`) on `env`'s ranks
/// and collectives, from per-unit compute `u` (forward order) and the gradients `layers`
/// (backward order, one per unit).
///
/// Timeline, as the harness issues it: forward; backward unit by unit (reverse); when a bucket
/// is ready, its round *starts*: the codec's compute stages before its first collective run on
/// the compute stream (they delay the rest of backward), then its collectives go to the
/// communication stream (`overlap`: each starts when both the bucket and the stream are free,
/// while backward continues; without `overlap` they run on the compute stream, in line); the
/// compute stages after the last collective (the decode) are deferred to after backward.
/// PowerSGD's round is inline (its second collective needs the first's result): the compute
/// stream waits for each of its collectives. After backward the compute stream waits for the
/// last collective, runs the deferred decodes, then the optimizer.
///
/// The no-communication twin (`nocomm_s`) runs the same timeline with every collective free,
/// except all-gathers, which the harness replaces by a device concatenation of `world` copies:
/// one launch plus reading and writing `world × payload` bytes at the shared codec bandwidth.
///
/// `coupling` (when calibrated, [`super::coupling`]) adds the ranks' rendezvous cost once to a
/// step of two or more ranks (not to its twin, which never meets the other ranks mid-step).
#[allow(clippy::too_many_arguments)]
pub fn predict_ddp(
    u: &Units,
    layers: &[LayerGrad],
    method: &Method,
    first_cap_bytes: f64,
    cap_bytes: f64,
    env: &Env,
    overlap: bool,
    coupling: Option<&super::coupling::DdpCoupling>,
) -> DdpPrediction {
    let bs = buckets(layers, first_cap_bytes, cap_bytes, ELEM_BYTES);
    let world = f64::from(env.cluster.workers.max(1));
    let inline = method.family() == "powersgd";
    let units = u.backward_s.len();
    let run = |nocomm: bool| -> (f64, f64, f64) {
        let mut t: f64 = u.forward_s.iter().sum();
        let (mut comm_free, mut deferred, mut codec_s, mut comm_s) = (0.0f64, 0.0, 0.0, 0.0);
        let mut next = 0;
        let mut st = Vec::new();
        for i in 0..units {
            // Backward index i is unit `units − 1 − i`.
            t += u.backward_s[units - 1 - i];
            while next < bs.len() && bs[next].ready_after == i {
                let b = &bs[next];
                next += 1;
                st.clear();
                method.stages(&b.content, env, &mut st);
                let last_comm = st.iter().rposition(|s| matches!(s, Stage::Comm(_)));
                // The no-communication twin's device concatenation, spread over its collectives.
                let comms = st
                    .iter()
                    .filter(|s| matches!(s, Stage::Comm(_)))
                    .count()
                    .max(1);
                let gather_per_comm = if nocomm && !method.all_reducible() {
                    let w = method.wire_bytes(&b.content);
                    (env.codec.launch_s + 2.0 * world * w / env.codec.bw_bytes_per_s) / comms as f64
                } else {
                    0.0
                };
                for (k, s) in st.iter().enumerate() {
                    match *s {
                        Stage::Compute(x) => {
                            codec_s += x;
                            if !inline && last_comm.is_some_and(|l| k > l) {
                                deferred += x;
                            } else {
                                t += x;
                            }
                        }
                        Stage::Comm(c) => {
                            let c = if nocomm { 0.0 } else { c };
                            comm_s += c;
                            t += gather_per_comm;
                            if overlap && !nocomm {
                                let start = t.max(comm_free);
                                comm_free = start + c;
                                if inline {
                                    t = comm_free;
                                }
                            } else {
                                t += c;
                            }
                        }
                    }
                }
            }
        }
        t = t.max(comm_free) + deferred + u.optimizer_s;
        (t, codec_s, comm_s)
    };
    let (step_s, codec_s, comm_s) = run(false);
    let (nocomm_s, _, _) = run(true);
    let step_s = step_s
        + match coupling {
            Some(c) if world >= 2.0 => c.of(&method.family(), overlap),
            _ => 0.0,
        };
    DdpPrediction {
        step_s,
        nocomm_s,
        compute_s: u.compute().total_s(),
        codec_s,
        comm_s,
        buckets: bs.len(),
    }
}

/// One multi-GPU DDP row of the harness (`comm=nccl`): the step and, when measured, its
/// no-communication twin.
#[derive(Debug, Clone, PartialEq)]
pub struct DdpRow {
    /// The common step fields (`world` = GPUs).
    pub step: StepRow,
    /// `overlap=1`: collectives on their own stream.
    pub overlap: bool,
    /// NCCL transport key (as [`crate::gradcomp::calib::CollectiveKey::transport`]).
    pub transport: String,
    /// Measured no-communication twin, seconds.
    pub nocomm_s: Option<f64>,
    /// Emulated link (`link_bytes_per_s`, harness `--link-gbps`), bytes/s.
    pub link_bytes_per_s: Option<f64>,
    /// `token_only=1`: a token step (every timed collective moved one element), the coupling
    /// micro-measurement of [`super::coupling`], not a DDP step to validate.
    pub token_only: bool,
}

/// The collectives behind an emulated link of `link_bytes_per_s` (the harness's `--link-gbps`:
/// after each collective of nccl-tests size S the stream waits S·f / link): every regime's
/// `t = α + S·f/busbw` becomes `α + S·f·(1/busbw + 1/link)`, exactly.
pub fn with_link(
    cc: &crate::gradcomp::collective::CalibratedCollectives,
    link_bytes_per_s: f64,
) -> crate::gradcomp::collective::CalibratedCollectives {
    let mut out = cc.clone();
    for (_, m) in &mut out.models {
        for r in &mut m.regimes {
            r.busbw_bytes_per_s = 1.0 / (1.0 / r.busbw_bytes_per_s + 1.0 / link_bytes_per_s);
        }
    }
    out.label = format!(
        "{} + {:.3} GB/s emulated link",
        cc.label,
        link_bytes_per_s / 1e9
    );
    out
}

/// One step row of the harness (`comm=local`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// Set.
    pub set: String,
    /// Harness model.
    pub model: String,
    /// Batch.
    pub batch: u32,
    /// `seq` param as written.
    pub seq: String,
    /// Method.
    pub method: Method,
    /// Local ranks.
    pub world: u32,
    /// Bucket cap, bytes.
    pub bucket_bytes: f64,
    /// First-bucket cap, bytes.
    pub first_bucket_bytes: f64,
    /// Measured step, seconds.
    pub step_s: f64,
    /// Provenance date (ISO 8601).
    pub date: String,
}

/// The step rows of `rows` (metric `step_s`), split into single-GPU `comm=local` rows and
/// multi-GPU `comm=nccl` rows (each with its `step_nocomm_s` twin when one was measured: same
/// set, model, batch and params).
///
/// # Errors
/// A step row with a bad method, world, bucket cap, batch, seq, comm or overlap, naming file
/// and line.
pub fn step_rows(rows: &Measurements) -> Result<(Vec<StepRow>, Vec<DdpRow>)> {
    let mut out = Vec::new();
    let mut ddp = Vec::new();
    // Twins in input order per (set, model, batch, params): a point measured twice in one set
    // (two invocations) pairs its k-th step row with its k-th twin.
    let mut nocomm: BTreeMap<
        (String, String, Option<u32>, String),
        std::collections::VecDeque<f64>,
    > = BTreeMap::new();
    for (_, r) in &rows.rows {
        if r.kind == "step" && r.metric == "step_nocomm_s" {
            nocomm
                .entry((
                    r.set.clone(),
                    r.model.clone(),
                    r.batch,
                    r.params.to_string(),
                ))
                .or_default()
                .push_back(r.value);
        }
    }
    for (o, r) in &rows.rows {
        if r.kind != "step" || r.metric != "step_s" {
            continue;
        }
        let get = |k: &str| {
            r.params
                .get(k)
                .ok_or_else(|| o.err(format!("gradcomp step row needs params `{k}`")))
        };
        let num = |k: &str, v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| *x >= 1.0 && x.is_finite())
                .ok_or_else(|| o.err(format!("params {k} = '{v}': a number >= 1")))
        };
        let comm = get("comm")?;
        if comm != "local" && comm != "nccl" {
            return Err(o.err(format!("params comm = '{comm}': local or nccl")));
        }
        let method = Method::parse(get("method")?).map_err(|e| o.err(format!("method: {e}")))?;
        let world = get("world")?;
        let world = world
            .parse::<u32>()
            .ok()
            .filter(|w| (1..=1024).contains(w))
            .ok_or_else(|| o.err(format!("params world = '{world}': an integer in [1, 1024]")))?;
        let bucket_bytes = num("bucket_bytes", get("bucket_bytes")?)?;
        let first_bucket_bytes = match r.params.get("first_bucket_bytes") {
            Some(v) => num("first_bucket_bytes", v)?,
            None => FIRST_BUCKET_BYTES,
        };
        let batch = r
            .batch
            .ok_or_else(|| o.err("gradcomp step row needs a batch"))?;
        if !(r.value > 0.0 && r.value.is_finite()) {
            return Err(o.err(format!("step_s = {}: must be > 0", r.value)));
        }
        let row = StepRow {
            set: r.set.clone(),
            model: r.model.clone(),
            batch,
            seq: get("seq")?.to_string(),
            method,
            world,
            bucket_bytes,
            first_bucket_bytes,
            step_s: r.value,
            date: r.provenance.date.clone(),
        };
        if comm == "local" {
            out.push(row);
            continue;
        }
        let overlap = match r.params.get("overlap") {
            Some("1") => true,
            Some("0") | None => false,
            Some(v) => return Err(o.err(format!("params overlap = '{v}': 0 or 1"))),
        };
        let knobs: Vec<String> = r
            .params
            .iter()
            .filter(|(k, v)| k.starts_with("nccl_") && !(*k == "nccl_nvls_enable" && *v == "0"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let transport = if knobs.is_empty() {
            "default".to_string()
        } else {
            knobs.join(";")
        };
        let nocomm_s = nocomm
            .get_mut(&(
                r.set.clone(),
                r.model.clone(),
                r.batch,
                r.params.to_string(),
            ))
            .and_then(|q| q.pop_front());
        let link_bytes_per_s = match r.params.get("link_bytes_per_s") {
            None => None,
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| {
                        o.err(format!("params link_bytes_per_s = '{v}': a number > 0"))
                    })?,
            ),
        };
        let token_only = match r.params.get("token_only") {
            Some("1") => true,
            Some("0") | None => false,
            Some(v) => return Err(o.err(format!("params token_only = '{v}': 0 or 1"))),
        };
        ddp.push(DdpRow {
            step: row,
            overlap,
            transport,
            nocomm_s,
            link_bytes_per_s,
            token_only,
        });
    }
    Ok((out, ddp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcomp::collective::{CalibratedCollectives, Op, Regime, RegimeModel};
    use crate::gradcomp::compressor::CodecCost;

    /// Two units (forward 1 + 1 ms; backward: unit 1 3 ms, unit 0 2 ms; optimizer 1 ms), unit 1
    /// holding a 1000×1000 matrix (4 MB: its own bucket, above the 1 MiB first cap) and unit 0
    /// 1000 vector elements (4 kB), plain `none` on 2 ranks whose all-reduce is t = S / 1 GB/s
    /// (bus factor 1 at p = 2): 4 ms and 4 µs.
    /// - overlap: forward 2, unit 1's backward to 5, its bucket on the comm stream 5 → 9, unit 0's
    ///   backward to 7, its bucket waits for the stream 9 → 9.004, then the optimizer: 10.004 ms;
    /// - in order: 2 + 3 + 4 + 2 + 0.004 + 1 = 12.004 ms;
    /// - no communication: 8 ms;
    /// - behind a 1 GB/s emulated link (busbw in series: 0.5 GB/s): 5 → 13 → 13.008, + 1:
    ///   14.008 ms.
    #[test]
    fn hand_worked_ddp_step() {
        let u = Units {
            forward_s: vec![1e-3, 1e-3],
            backward_s: vec![2e-3, 3e-3],
            optimizer_s: 1e-3,
        };
        let layers = vec![
            LayerGrad {
                backward_s: 0.0,
                matrices: vec![(1000, 1000)],
                vector_elems: 0,
            },
            LayerGrad {
                backward_s: 0.0,
                matrices: vec![],
                vector_elems: 1000,
            },
        ];
        let cc = CalibratedCollectives {
            ranks: 2,
            models: vec![(
                Op::AllReduce,
                RegimeModel {
                    regimes: vec![Regime {
                        from_bytes: 0.0,
                        alpha_s: 0.0,
                        busbw_bytes_per_s: 1e9,
                    }],
                },
            )],
            label: "t".into(),
        };
        let mut env = local_env(2, COST, vec![], vec![]).unwrap();
        env.calibrated = Some(cc.clone());
        let m = Method::None;
        let near = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // One bucket plan (25 MiB caps), `none`, under `env` with or without overlap and coupling.
        let pd = |env: &Env, overlap: bool, c: Option<&super::super::coupling::DdpCoupling>| {
            predict_ddp(
                &u,
                &layers,
                &m,
                FIRST_BUCKET_BYTES,
                25.0 * 1048576.0,
                env,
                overlap,
                c,
            )
        };
        let p = pd(&env, true, None);
        assert_eq!(p.buckets, 2);
        assert!(near(p.step_s, 10.004e-3), "{p:?}");
        assert!(near(p.nocomm_s, 8e-3), "{p:?}");
        assert!(near(p.comm_s, 4.004e-3), "{p:?}");
        assert!(near(p.exposed_comm_s(), 2.004e-3), "{p:?}");
        let q = pd(&env, false, None);
        assert!(near(q.step_s, 12.004e-3), "{q:?}");
        // A calibrated coupling of 3 ms async / 1 ms inline is added to the step, not the twin.
        let c = super::super::coupling::DdpCoupling {
            async_s: 3e-3,
            async_points: 1,
            inline_s: 1e-3,
            inline_points: 1,
            sets: vec![],
        };
        let pc = pd(&env, true, Some(&c));
        assert!(
            near(pc.step_s, 13.004e-3) && near(pc.nocomm_s, 8e-3),
            "{pc:?}"
        );
        let qc = pd(&env, false, Some(&c));
        assert!(near(qc.step_s, 13.004e-3), "{qc:?}");
        env.calibrated = Some(with_link(&cc, 1e9));
        let l = pd(&env, true, None);
        assert!(near(l.step_s, 14.008e-3), "{l:?}");
    }

    const COST: CodecCost = CodecCost {
        launch_s: 1e-5,
        bw_bytes_per_s: 1e12,
        matmul_flops_per_s: 1e14,
        vector_flops_per_s: 1e13,
        cache_bytes: 0.0,
        cache_bw_bytes_per_s: 0.0,
        sync_s: 0.0,
        block_step_s: 0.0,
    };

    /// Two units (backward order: a 1000×1000 matrix, then 1000 vector elements), both caps
    /// 25 MiB so the 1,001,000 elements (3.8 MiB) form one bucket, fp16 on 4 local ranks:
    /// - compute 30 ms as given;
    /// - codec: fp16's stages of that bucket priced by `COST`;
    /// - comm: one all-reduce of W = 2·1,001,000 bytes reading 4·W and writing W:
    ///   10 µs + 5·2,002,000 B / 1e12 B/s = 10 µs + 10.01 µs.
    #[test]
    fn hand_worked_step() {
        let layers = vec![
            LayerGrad {
                backward_s: 0.0,
                matrices: vec![(1000, 1000)],
                vector_elems: 0,
            },
            LayerGrad {
                backward_s: 0.0,
                matrices: Vec::new(),
                vector_elems: 1000,
            },
        ];
        let m = Method::parse("fp16").unwrap();
        let env = local_env(4, COST, Vec::new(), Vec::new()).unwrap();
        let cap = 25.0 * 1048576.0;
        let p = predict(0.030, &layers, &m, cap, cap, 4, &env);
        assert_eq!(p.buckets, 1);
        let b = crate::gradcomp::compressor::BucketContent {
            matrices: vec![(1000, 1000)],
            vector_elems: 1000,
        };
        let mut w = Vec::new();
        m.codec_work(&b, 4, &mut w);
        assert!(!w.is_empty(), "fp16 has codec stages");
        let codec: f64 = w.iter().map(|w| COST.time_of(w)).sum();
        assert!((p.codec_s - codec).abs() < 1e-15, "{p:?}");
        assert!((p.comm_s - 20.01e-6).abs() < 1e-12, "{p:?}");
        assert!((p.step_s() - (0.030 + codec + 20.01e-6)).abs() < 1e-12);
        // A per-family cost replaces the shared one for the codec, not for the local comm.
        let slow = CodecCost {
            bw_bytes_per_s: 0.5e12,
            ..COST
        };
        let env2 = local_env(4, COST, vec![("fp16".into(), slow)], Vec::new()).unwrap();
        let p2 = predict(0.030, &layers, &m, cap, cap, 4, &env2);
        let codec2: f64 = w.iter().map(|w| slow.time_of(w)).sum();
        assert!((p2.codec_s - codec2).abs() < 1e-15 && codec2 > codec);
        assert_eq!(p2.comm_s, p.comm_s);
        // Signsgd all-gathers: reads and writes world·W.
        let s = Method::parse("signsgd").unwrap();
        let ps = predict(0.030, &layers, &s, cap, cap, 4, &env);
        let ws = s.wire_bytes(&b);
        assert!(
            (ps.comm_s - (1e-5 + 8.0 * ws / 1e12)).abs() < 1e-12,
            "{ps:?}"
        );
    }

    /// The harness models' parameters come out of the catalog exactly.
    #[test]
    fn harness_models_match_the_catalog() {
        let cat = Catalog::embedded().unwrap();
        for (name, _, params) in HARNESS_MODELS {
            let l = harness_layers(&cat, name).unwrap();
            let n: u64 = l
                .iter()
                .map(|g| g.matrices.iter().map(|(r, c)| r * c).sum::<u64>() + g.vector_elems)
                .sum();
            assert_eq!(n, *params, "{name}");
        }
        assert!(harness_layers(&cat, "resnet50").is_err());
    }

    fn rows(list: &[(&str, &str, &str, f64)]) -> Measurements {
        use crate::measure::{Origin, Row};
        Measurements {
            technique: "gradcomp".into(),
            rows: list
                .iter()
                .enumerate()
                .map(|(i, (kind, params, metric, value))| {
                    (
                        Origin {
                            file: std::sync::Arc::from(std::path::Path::new("t.csv")),
                            line: i as u64 + 2,
                        },
                        Row {
                            technique: "gradcomp".into(),
                            set: "s".into(),
                            kind: (*kind).into(),
                            model: "m".into(),
                            batch: Some(4),
                            params: params.parse().unwrap(),
                            metric: (*metric).into(),
                            value: *value,
                            repeats: 3,
                            unit: "s".into(),
                            ..Row::default()
                        },
                    )
                })
                .collect(),
            sources: vec![],
        }
    }

    /// A DDP point measured twice in one set pairs each step row with its own twin, in input
    /// order; a token step is flagged.
    #[test]
    fn repeated_ddp_points_pair_with_their_own_twins() {
        let p =
            "method=none;world=2;bucket_bytes=26214400;seq=128;comm=nccl;overlap=1;token_only=1";
        let r = rows(&[
            ("step", p, "step_s", 0.164),
            ("step", p, "step_nocomm_s", 0.158),
            ("step", p, "step_s", 0.159),
            ("step", p, "step_nocomm_s", 0.152),
        ]);
        let (_, ddp) = step_rows(&r).unwrap();
        assert_eq!(ddp.len(), 2);
        assert_eq!((ddp[0].step.step_s, ddp[0].nocomm_s), (0.164, Some(0.158)));
        assert_eq!((ddp[1].step.step_s, ddp[1].nocomm_s), (0.159, Some(0.152)));
        assert!(ddp.iter().all(|d| d.token_only));
    }

    /// Two units' forward and backward rows plus the optimizer row sum to the compute (1 + 2 +
    /// 3 + 4 + 5 ms = 15 ms); a missing backward makes it unknown; step rows parse, and
    /// `comm=nccl` rows are counted apart.
    #[test]
    fn compute_and_step_rows_from_synthetic_rows() {
        let mut list = vec![
            (
                "layer",
                "block=0;name=embeddings;pass=forward;seq=8",
                "time_s",
                1e-3,
            ),
            (
                "layer",
                "block=0;name=embeddings;pass=backward;seq=8",
                "time_s",
                2e-3,
            ),
            (
                "layer",
                "block=1;name=head;pass=forward;seq=8",
                "time_s",
                3e-3,
            ),
            (
                "layer",
                "block=1;name=head;pass=backward;seq=8",
                "time_s",
                4e-3,
            ),
            ("optimizer", "optimizer=adamw;seq=8", "time_s", 5e-3),
            (
                "layer",
                "block=1;name=head;pass=forward;seq=16",
                "time_s",
                1.0,
            ),
            (
                "step",
                "method=fp16;world=4;comm=local;bucket_bytes=1000;seq=8",
                "step_s",
                0.02,
            ),
            (
                "step",
                "method=fp16;world=2;comm=nccl;bucket_bytes=1000;seq=8",
                "step_s",
                0.02,
            ),
        ];
        let c = compute(&rows(&list), "m", 4, "8").unwrap().unwrap();
        assert_eq!(c.units, 2);
        assert!((c.total_s() - 15e-3).abs() < 1e-15, "{c:?}");
        // The optimizer is the smallest optimizer row of the model at this seq, at any batch;
        // a slower one at another batch (its slow mode) does not count, a faster one does.
        let mut other_batch = rows(&list);
        let mut r = other_batch.rows[4].clone();
        r.1.batch = Some(32);
        r.1.value = 9e-3;
        other_batch.rows.push(r.clone());
        let c2 = compute(&other_batch, "m", 4, "8").unwrap().unwrap();
        assert_eq!(c2.optimizer_s, 5e-3);
        r.1.value = 4e-3;
        other_batch.rows.push(r);
        let c3 = compute(&other_batch, "m", 4, "8").unwrap().unwrap();
        assert_eq!(c3.optimizer_s, 4e-3);
        assert!(compute(&rows(&list), "m", 8, "8").unwrap().is_none());
        let (st, other) = step_rows(&rows(&list)).unwrap();
        assert_eq!(other.len(), 1);
        assert!(other[0].nocomm_s.is_none() && !other[0].overlap);
        assert_eq!(other[0].transport, "default");
        assert_eq!(st.len(), 1);
        assert_eq!((st[0].world, st[0].bucket_bytes), (4, 1000.0));
        assert_eq!(st[0].first_bucket_bytes, FIRST_BUCKET_BYTES);
        list.remove(3);
        assert!(compute(&rows(&list), "m", 4, "8").unwrap().is_none());
        list.push((
            "step",
            "method=nope;world=4;comm=local;bucket_bytes=1;seq=8",
            "step_s",
            1.0,
        ));
        assert!(step_rows(&rows(&list)).is_err());
    }
}
