//! The front door of gradcomp: [`Spec`] (the `perfcast gradcomp` flags as serde keys) →
//! [`Spec::resolve`] → [`Params`] → [`evaluate`] → [`Row`]. The CLI and the scenario study both go
//! through it, so a what-if on the command line and the same point in a scenario give the same
//! numbers.
//!
//! ```
//! use perfcast::gradcomp::{evaluate, Predictor, Spec};
//! use perfcast::Catalog;
//!
//! let cat = Catalog::embedded()?;
//! // BERT-base on 64 H100s (nodes of 8) over 25 Gb/s, PowerSGD rank 4 against fp16 DDP.
//! let spec = Spec {
//!     workers: 64,
//!     method: "powersgd:rank=4".into(),
//!     break_even: true,
//!     ..Spec::new("bert-base", 25.0)
//! };
//! let row = evaluate(&spec.resolve(&cat)?, Predictor::Sim, 0)?;
//! assert!(row.metrics.speedup_vs_baseline > 1.0);
//! // Below the break-even node bandwidth PowerSGD beats fp16 DDP.
//! assert!(row.break_even_gbps.flatten().is_some_and(|be| be > 25.0));
//! # Ok::<(), perfcast::Error>(())
//! ```

use super::lowrank::{two_phase, LowRank, TwoPhase};
use super::{Config, DdpSim, Metrics, Plan, Predictor};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `lowrank` as a scenario or the CLI writes it: a kind (`none`, `pufferfish`, `cuttlefish`) whose
/// settings are the flat keys of [`Spec`] (`--lowrank pufferfish --rank-ratio 0.25`), or a table
/// with the settings inside (`lowrank = { kind = "pufferfish", rank_ratio = 0.25 }`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LowRankSpec {
    /// The kind; settings come from the flat keys.
    Kind(String),
    /// Kind and settings in one table.
    Table(LowRank),
}

// By hand rather than `untagged`, so that a misspelt key inside the table is named in the error.
impl<'de> Deserialize<'de> for LowRankSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LowRankSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a low-rank kind (none, pufferfish, cuttlefish) or a table")
            }

            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(LowRankSpec::Kind(v.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                LowRank::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(LowRankSpec::Table)
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for LowRankSpec {
    fn default() -> Self {
        LowRankSpec::Kind("none".into())
    }
}

fn d_gpu() -> String {
    "h100".into()
}
fn d_workers() -> i64 {
    16
}
fn d_gpn() -> i64 {
    8
}
fn d_latency() -> f64 {
    10.0
}
fn d_method() -> String {
    "none".into()
}
fn d_baseline() -> String {
    "fp16".into()
}
fn d_batch() -> i64 {
    32
}
fn d_algo() -> String {
    "ring".into()
}
fn d_bucket() -> f64 {
    25.0
}
fn d_first_bucket() -> f64 {
    1.0
}
fn d_precision() -> String {
    "bf16".into()
}
fn d_optimizer() -> String {
    "adam".into()
}

/// One data-parallel training what-if, keyed like the `perfcast gradcomp` flags (`--gpus-per-node`
/// = `gpus_per_node`). `--predictor` is not a key: it is the method argument of [`evaluate`].
///
/// Defaults are those of a scenario point; the CLI passes every flag explicitly (its `--algo`
/// default is `hierarchical`, a scenario's is `ring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// DNN model from `models/dnn/models.toml`.
    pub model: String,
    /// GPU from the catalog.
    #[serde(default = "d_gpu")]
    pub gpu: String,
    /// Data-parallel ranks P.
    #[serde(default = "d_workers")]
    pub workers: i64,
    /// GPUs per node K.
    #[serde(default = "d_gpn")]
    pub gpus_per_node: i64,
    /// Node network bandwidth, Gb/s, one direction.
    pub inter_node_gbps: f64,
    /// Per-GPU intra-node bandwidth, Gb/s (default: half the GPU's NVLink, else its PCIe).
    #[serde(default)]
    pub intra_node_gbps: Option<f64>,
    /// Per-step collective latency α, µs.
    #[serde(default = "d_latency")]
    pub latency_us: f64,
    /// Compression method: `none|fp16|bf16|powersgd:rank=R|topk:density=D|randomk:density=D|
    /// signsgd|qsgd:bits=B`.
    #[serde(default = "d_method")]
    pub method: String,
    /// Baseline of `speedup_vs_baseline`: fp32, fp16 or bf16.
    #[serde(default = "d_baseline")]
    pub baseline: String,
    /// Per-GPU batch (samples).
    #[serde(default = "d_batch")]
    pub batch: i64,
    /// All-reduce algorithm: ring, tree, hierarchical.
    #[serde(default = "d_algo")]
    pub algo: String,
    /// DDP bucket cap, MiB.
    #[serde(default = "d_bucket")]
    pub bucket_mb: f64,
    /// First DDP bucket cap, MiB.
    #[serde(default = "d_first_bucket")]
    pub first_bucket_mb: f64,
    /// Compute slowdown while a collective runs (0.1 = 10% slower), ≥ 0.
    #[serde(default)]
    pub slowdown: f64,
    /// Activation precision: fp32, tf32, fp16, bf16.
    #[serde(default = "d_precision")]
    pub precision: String,
    /// Optimizer: sgd, momentum, adam.
    #[serde(default = "d_optimizer")]
    pub optimizer: String,
    /// Measured per-layer profile CSV (replaces the roofline; its batch replaces `batch`).
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Measured bus-bandwidth curve CSV (`bytes,busbw_bytes_per_s`).
    #[serde(default)]
    pub busbw_csv: Option<PathBuf>,
    /// Also search the break-even node bandwidth (Gb/s) against the baseline.
    #[serde(default)]
    pub break_even: bool,
    /// Low-rank model: a kind with the flat keys below, or a table.
    #[serde(default)]
    pub lowrank: LowRankSpec,
    /// Pufferfish rank ratio, in (0, 1].
    #[serde(default)]
    pub rank_ratio: Option<f64>,
    /// Layers kept full rank (Pufferfish; Cuttlefish's default profile).
    #[serde(default)]
    pub full_rank_layers: Option<Vec<String>>,
    /// Cuttlefish ranks, `layer=rank` entries.
    #[serde(default)]
    pub ranks: Vec<String>,
    /// Cuttlefish rank profile CSV (`layer,rank` or `layer,stable_rank[,init_stable_rank]`).
    #[serde(default)]
    pub ranks_csv: Option<PathBuf>,
    /// Cuttlefish stable-rank scale (`⌈scale · stable_rank⌉`; default: Cuttlefish's `k/srank_0`).
    #[serde(default)]
    pub rank_scale: Option<f64>,
    /// Full-rank warm-up epochs (low-rank run time).
    #[serde(default)]
    pub warmup_epochs: f64,
    /// Total epochs (low-rank run time).
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Samples per epoch (low-rank run time).
    #[serde(default)]
    pub dataset_samples: Option<f64>,
    /// How the codecs run: `eager` (op by op, as a DDP hook issues them) or `graph` (captured
    /// as CUDA graphs and replayed); picks the calibration's eager or graph-replayed codec costs.
    #[serde(default = "d_codec_exec")]
    pub codec_exec: String,
}

fn d_codec_exec() -> String {
    "eager".into()
}

impl Spec {
    /// A spec with defaults for everything but model and node bandwidth.
    pub fn new(model: &str, inter_node_gbps: f64) -> Self {
        Spec {
            model: model.into(),
            gpu: d_gpu(),
            workers: d_workers(),
            gpus_per_node: d_gpn(),
            inter_node_gbps,
            intra_node_gbps: None,
            latency_us: d_latency(),
            method: d_method(),
            baseline: d_baseline(),
            batch: d_batch(),
            algo: d_algo(),
            bucket_mb: d_bucket(),
            first_bucket_mb: d_first_bucket(),
            slowdown: 0.0,
            precision: d_precision(),
            optimizer: d_optimizer(),
            profile: None,
            busbw_csv: None,
            break_even: false,
            lowrank: LowRankSpec::default(),
            rank_ratio: None,
            full_rank_layers: None,
            ranks: Vec::new(),
            ranks_csv: None,
            rank_scale: None,
            warmup_epochs: 0.0,
            codec_exec: d_codec_exec(),
            epochs: None,
            dataset_samples: None,
        }
    }

    fn flat_lowrank_given(&self) -> bool {
        self.rank_ratio.is_some()
            || self.full_rank_layers.is_some()
            || !self.ranks.is_empty()
            || self.ranks_csv.is_some()
            || self.rank_scale.is_some()
            || self.warmup_epochs != 0.0
            || self.epochs.is_some()
            || self.dataset_samples.is_some()
    }

    /// The low-rank configuration these keys describe.
    ///
    /// # Errors
    /// A malformed `ranks` entry; flat low-rank keys next to a `lowrank` table.
    pub fn low_rank(&self) -> Result<LowRank> {
        match &self.lowrank {
            LowRankSpec::Table(t) => {
                if self.flat_lowrank_given() {
                    return Err(Error::range(
                        "lowrank",
                        "a table with flat low-rank keys",
                        "either lowrank = { kind = ..., ... } or lowrank = \"kind\" with flat keys",
                    ));
                }
                t.check_applies()?;
                Ok(t.clone())
            }
            LowRankSpec::Kind(kind) => {
                let mut ranks = BTreeMap::new();
                for r in &self.ranks {
                    let (k, v) = r.split_once('=').ok_or_else(|| {
                        Error::range("--ranks", r, "layer=rank entries, comma separated")
                    })?;
                    let v: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| Error::range(format!("--ranks {k}"), v, "an integer >= 1"))?;
                    ranks.insert(k.trim().to_string(), v);
                }
                let lr = LowRank {
                    kind: kind.clone(),
                    rank_ratio: self.rank_ratio,
                    full_rank_layers: self.full_rank_layers.clone(),
                    ranks,
                    ranks_csv: self.ranks_csv.clone(),
                    rank_scale: self.rank_scale,
                    warmup_epochs: self.warmup_epochs,
                    epochs: self.epochs,
                    dataset_samples: self.dataset_samples,
                };
                lr.check_applies()?;
                Ok(lr)
            }
        }
    }

    /// The plan configuration (everything but `break_even`).
    ///
    /// # Errors
    /// See [`Spec::low_rank`].
    pub fn config(&self) -> Result<Config> {
        Ok(Config {
            model: self.model.clone(),
            gpu: self.gpu.clone(),
            workers: self.workers,
            gpus_per_node: self.gpus_per_node,
            inter_node_gbps: self.inter_node_gbps,
            intra_node_gbps: self.intra_node_gbps,
            latency_us: self.latency_us,
            method: self.method.clone(),
            baseline: self.baseline.clone(),
            batch: self.batch,
            algo: self.algo.clone(),
            bucket_mb: self.bucket_mb,
            first_bucket_mb: self.first_bucket_mb,
            slowdown: self.slowdown,
            precision: self.precision.clone(),
            optimizer: self.optimizer.clone(),
            profile: self.profile.clone(),
            busbw_csv: self.busbw_csv.clone(),
            lowrank: self.low_rank()?,
            codec_exec: self.codec_exec.clone(),
        })
    }

    /// Validates the spec against `cat` and builds what [`evaluate`] needs.
    ///
    /// # Errors
    /// Unknown model, GPU, method, algorithm, precision or optimizer; out-of-range numbers
    /// (naming the field and the allowed range); unreadable profile or curve files; see
    /// [`Plan::new`].
    pub fn resolve(&self, cat: &Catalog) -> Result<Params> {
        Ok(Params {
            plan: Plan::new(cat, &self.config()?)?,
            break_even: self.break_even.then_some(BREAK_EVEN_RANGE_GBPS),
        })
    }
}

/// Node-bandwidth range of the break-even search when none is given, Gb/s.
pub const BREAK_EVEN_RANGE_GBPS: (f64, f64) = (0.1, 10_000.0);

/// A validated gradcomp what-if.
#[derive(Debug, Clone)]
pub struct Params {
    /// The plan (model, profile, buckets, cluster, method and baseline).
    pub plan: Plan,
    /// Search the break-even node bandwidth in this range (Gb/s), or not at all.
    pub break_even: Option<(f64, f64)>,
}

/// Everything `perfcast gradcomp` reports for one what-if.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The metrics of the asked predictor.
    pub metrics: Metrics,
    /// The step time the other predictor gives, seconds.
    pub other_step_s: f64,
    /// Break-even node bandwidth (Gb/s): `None` when not asked for, `Some(None)` when the
    /// method always or never pays in the searched range (or is the baseline itself).
    pub break_even_gbps: Option<Option<f64>>,
    /// The full-rank model with the same method (`None` without a low-rank model): its
    /// parameters and step time, seconds.
    pub full_rank: Option<(u64, f64)>,
    /// Two-phase run time of a low-rank model (with `epochs` and `dataset_samples`).
    pub run: Option<TwoPhase>,
    /// Where the collective times come from: `calibrated (2×H200 NVLink, run 12)`, the measured
    /// curve, or `datasheet α–β`.
    pub collectives: String,
    /// Where the codec costs come from: `calibrated`, `calibrated (graph-replayed)` or
    /// `datasheet`.
    pub codec_costs: String,
    /// Where a low-rank model's ranks come from (`None` without one), e.g. Cuttlefish's
    /// estimated default profile ([`super::lowrank::LowRank::rank_source`]).
    pub lowrank_ranks: Option<String>,
}

impl Row {
    /// The predictor [`Row::other_step_s`] came from.
    pub fn other_predictor(&self) -> Predictor {
        match self.metrics.predictor {
            Predictor::Sim => Predictor::Analytic,
            Predictor::Analytic => Predictor::Sim,
        }
    }

    /// The row as `perfcast gradcomp` prints it: the metrics, `<other>_step_s`, then the
    /// break-even and low-rank extras that apply.
    pub fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut rec = match serde_json::to_value(&self.metrics) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        let other = match self.other_predictor() {
            Predictor::Sim => "sim",
            Predictor::Analytic => "analytic",
        };
        rec.insert(format!("{other}_step_s"), self.other_step_s.into());
        rec.insert("collectives".into(), self.collectives.clone().into());
        rec.insert("codec_costs".into(), self.codec_costs.clone().into());
        if let Some(be) = self.break_even_gbps {
            rec.insert("break_even_gbps".into(), be.into());
        }
        if let Some((params, step_s)) = self.full_rank {
            if let Some(src) = &self.lowrank_ranks {
                rec.insert("lowrank_ranks".into(), src.clone().into());
            }
            rec.insert("full_rank_params".into(), params.into());
            rec.insert("full_rank_step_s".into(), step_s.into());
            if let Some(t) = &self.run {
                rec.insert("epochs".into(), t.epochs.into());
                rec.insert("warmup_epochs".into(), t.warmup_epochs.into());
                rec.insert("steps_per_epoch".into(), t.steps_per_epoch.into());
                rec.insert("run_s".into(), t.run_s.into());
                rec.insert("full_rank_run_s".into(), t.full_rank_run_s.into());
                rec.insert("run_speedup".into(), t.run_speedup.into());
            }
        }
        rec
    }
}

/// Evaluates one what-if with `predictor` (`sim`: discrete-event simulation; `analytic`: closed
/// form). gradcomp draws nothing at random: `seed` is accepted for the common front-door shape
/// and unused.
///
/// # Errors
/// Out-of-range two-phase settings (epochs ≤ 0, warm-up outside [0, epochs], samples ≤ 0).
pub fn evaluate(p: &Params, predictor: Predictor, seed: u64) -> Result<Row> {
    let _ = seed;
    let plan = &p.plan;
    let mut sim = DdpSim::new();
    let metrics = plan.evaluate(predictor, &mut sim);
    let other = match predictor {
        Predictor::Sim => Predictor::Analytic,
        Predictor::Analytic => Predictor::Sim,
    };
    let other_step_s = plan.evaluate(other, &mut sim).step_s;
    let break_even_gbps = p.break_even.map(|(lo, hi)| {
        if plan.method == plan.baseline && plan.full_rank.is_none() {
            None
        } else {
            plan.break_even_gbps(predictor, lo, hi, &mut sim)
        }
    });
    let (full_rank, run) = match &plan.full_rank {
        Some(f) => {
            let full = f.evaluate(predictor, &mut sim);
            let global = f64::from(metrics.workers) * f64::from(metrics.batch);
            let run = two_phase(full.step_s, metrics.step_s, &plan.config.lowrank, global)?;
            (Some((full.params, full.step_s)), run)
        }
        None => (None, None),
    };
    let env = &plan.env;
    let lowrank_ranks = plan
        .full_rank
        .as_ref()
        .and_then(|f| plan.config.lowrank.rank_source(&f.model));
    Ok(Row {
        lowrank_ranks,
        metrics,
        other_step_s,
        break_even_gbps,
        full_rank,
        run,
        collectives: env.collectives_source(),
        codec_costs: match (env.codec_calibrated, env.codec_graph) {
            (true, true) => "calibrated (graph-replayed)",
            (true, false) => "calibrated",
            (false, _) => "datasheet",
        }
        .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> std::result::Result<Spec, toml::de::Error> {
        toml::from_str(text)
    }

    /// A scenario's `lowrank` table and the CLI's flat keys describe the same model.
    #[test]
    fn lowrank_table_and_flat_keys_agree() {
        let table = spec(
            "model = 'resnet-50'\ninter_node_gbps = 25\nlowrank = { kind = 'pufferfish', rank_ratio = 0.25, epochs = 90.0, dataset_samples = 1281167.0 }\n",
        )
        .unwrap();
        let flat = spec(
            "model = 'resnet-50'\ninter_node_gbps = 25\nlowrank = 'pufferfish'\nrank_ratio = 0.25\nepochs = 90.0\ndataset_samples = 1281167.0\n",
        )
        .unwrap();
        assert_eq!(table.config().unwrap(), flat.config().unwrap());
        assert_eq!(table.config().unwrap().lowrank.rank_ratio, Some(0.25));
        // No lowrank key at all is the full-rank model.
        let none = spec("model = 'resnet-50'\ninter_node_gbps = 25\n").unwrap();
        assert_eq!(none.config().unwrap().lowrank, LowRank::default());
    }

    #[test]
    fn lowrank_errors_name_the_key() {
        let e = spec("model = 'x'\ninter_node_gbps = 1\nlowrank = { kind = 'pufferfish', rank_ratoi = 0.5 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank_ratoi"), "{e}");
        let both = spec(
            "model = 'x'\ninter_node_gbps = 1\nlowrank = { kind = 'pufferfish' }\nrank_ratio = 0.5\n",
        )
        .unwrap();
        let e = both.config().unwrap_err().to_string();
        assert!(e.starts_with("lowrank = "), "{e}");
        let e = spec("model = 'x'\ninter_node_gbps = 1\nworkerz = 8\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("workerz"), "{e}");
    }

    /// `codec_exec = "graph"` prices the codecs with the H200's graph-replayed calibration
    /// (captured calls skip the host's per-op issue cost, so PowerSGD's codec time per step
    /// falls: by half with the cuBLAS products of runs 48–71; with the fused kernels' six
    /// launches per bucket, priced as a roofline (276e5cd), 0.386 → 0.331 ms per step here, 14%)
    /// and says so; an unknown value, or `graph` on a GPU without that
    /// calibration, is one error naming the field.
    #[test]
    fn codec_exec_picks_the_graph_calibration() {
        let cat = Catalog::embedded().unwrap();
        let s = Spec {
            gpu: "h200".into(),
            workers: 64,
            method: "powersgd:rank=4".into(),
            ..Spec::new("resnet-50", 100.0)
        };
        let eager = evaluate(&s.resolve(&cat).unwrap(), Predictor::Sim, 0).unwrap();
        let g = Spec {
            codec_exec: "graph".into(),
            ..s.clone()
        };
        let graph = evaluate(&g.resolve(&cat).unwrap(), Predictor::Sim, 0).unwrap();
        assert_eq!(eager.codec_costs, "calibrated");
        assert_eq!(graph.codec_costs, "calibrated (graph-replayed)");
        assert!(
            graph.metrics.codec_s < 0.95 * eager.metrics.codec_s,
            "graph {} eager {}",
            graph.metrics.codec_s,
            eager.metrics.codec_s
        );
        let bad = Spec {
            codec_exec: "graphs".into(),
            ..s.clone()
        };
        let e = bad.resolve(&cat).unwrap_err().to_string();
        assert!(
            e.contains("--codec-exec") && e.contains("eager or graph"),
            "{e}"
        );
        let h100 = Spec {
            gpu: "h100".into(),
            ..g
        };
        let e = h100.resolve(&cat).unwrap_err().to_string();
        assert!(
            e.contains("no graph-replayed codec calibration for h100"),
            "{e}"
        );
    }

    /// `break_even` off reports no break-even; on, the same metrics plus the search.
    #[test]
    fn break_even_is_an_extra() {
        let cat = Catalog::embedded().unwrap();
        let mut s = Spec {
            method: "powersgd:rank=4".into(),
            ..Spec::new("vgg-16", 1.0)
        };
        let off = evaluate(&s.resolve(&cat).unwrap(), Predictor::Sim, 0).unwrap();
        s.break_even = true;
        let on = evaluate(&s.resolve(&cat).unwrap(), Predictor::Sim, 0).unwrap();
        assert_eq!(off.break_even_gbps, None);
        assert_eq!(off.metrics, on.metrics);
        assert!(on.break_even_gbps.flatten().is_some_and(|g| g > 1.0));
        assert!(on.record().contains_key("break_even_gbps"));
        assert!(!off.record().contains_key("break_even_gbps"));
    }
}
