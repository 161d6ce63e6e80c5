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

/// Compressor families whose step rows are not validated, and why.
pub const EXCLUDED: &[(&str, &str)] = &[(
    "qsgd",
    "the QSGD codec failed its device correctness check in run 17 (validation/results/gradcomp/README-run17.md), so its step times are not a valid QSGD",
)];

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

/// The compute of `model` at `batch` and `seq` from the rows of kind `layer` and `optimizer`
/// (the newest row wins when a unit and pass repeat), or `None` when the rows lack the optimizer
/// or any unit's forward or backward (units `0..=max block`).
///
/// # Errors
/// A layer row without an integer `block` or with a `pass` other than forward/backward.
pub fn compute(rows: &Measurements, model: &str, batch: u32, seq: &str) -> Result<Option<Compute>> {
    let mut fwd: BTreeMap<u64, f64> = BTreeMap::new();
    let mut bwd: BTreeMap<u64, f64> = BTreeMap::new();
    let mut opt = None;
    for (o, r) in &rows.rows {
        if r.model != model
            || r.batch != Some(batch)
            || r.metric != "time_s"
            || r.params.get("seq") != Some(seq)
        {
            continue;
        }
        match r.kind.as_str() {
            "optimizer" => opt = Some(r.value),
            "layer" => {
                let u = r
                    .params
                    .get("block")
                    .and_then(|b| b.parse::<u64>().ok())
                    .ok_or_else(|| o.err("gradcomp layer row needs params block=<integer unit>"))?;
                match r.params.get("pass") {
                    Some("forward") => fwd.insert(u, r.value),
                    Some("backward") => bwd.insert(u, r.value),
                    p => {
                        return Err(o.err(format!(
                            "params pass = '{}': forward or backward",
                            p.unwrap_or("")
                        )))
                    }
                };
            }
            _ => {}
        }
    }
    let (Some(optimizer_s), Some(&last)) = (opt, fwd.keys().chain(bwd.keys()).max()) else {
        return Ok(None);
    };
    if (0..=last).any(|u| !fwd.contains_key(&u) || !bwd.contains_key(&u)) {
        return Ok(None);
    }
    Ok(Some(Compute {
        forward_s: fwd.values().sum(),
        backward_s: bwd.values().sum(),
        optimizer_s,
        units: last as usize + 1,
    }))
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
}

/// The step rows of `rows` (metric `step_s`), split into `comm=local` rows and the number of
/// other rows (two-GPU NCCL steps), which this predictor does not cover.
///
/// # Errors
/// A step row with a bad method, world, bucket cap, batch or seq, naming file and line.
pub fn step_rows(rows: &Measurements) -> Result<(Vec<StepRow>, usize)> {
    let mut out = Vec::new();
    let mut other = 0;
    for (o, r) in &rows.rows {
        if r.kind != "step" || r.metric != "step_s" {
            continue;
        }
        if r.params.get("comm") != Some("local") {
            other += 1;
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
        out.push(StepRow {
            set: r.set.clone(),
            model: r.model.clone(),
            batch,
            seq: get("seq")?.to_string(),
            method,
            world,
            bucket_bytes,
            first_bucket_bytes,
            step_s: r.value,
        });
    }
    Ok((out, other))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcomp::compressor::CodecCost;

    const COST: CodecCost = CodecCost {
        launch_s: 1e-5,
        bw_bytes_per_s: 1e12,
        matmul_flops_per_s: 1e14,
        vector_flops_per_s: 1e13,
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
        assert!(compute(&rows(&list), "m", 8, "8").unwrap().is_none());
        let (st, other) = step_rows(&rows(&list)).unwrap();
        assert_eq!(other, 1);
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
