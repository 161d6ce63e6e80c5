//! Low-rank models: Pufferfish and Cuttlefish change the model instead of the gradients.
//!
//! A factorized weight `W (m×n)` becomes `U (m×r)` then `V (r×n)` applied at the same positions
//! (a `k×k` convolution becomes a `k×k` conv to `r` channels then a `1×1` conv), so parameters,
//! gradient bytes and matmul FLOPs scale by `r·(m+n) / (m·n)`; the `r`-wide intermediate adds
//! `2·r` activation elements of traffic per position and one kernel.
//!
//! - **Pufferfish** (Wang, Agarwal & Papailiopoulos 2021, "Pufferfish: Communication-efficient
//!   Models At No Extra Cost", MLSys): every eligible matrix gets `r = max(1, round(ratio ·
//!   min(m, n)))`; the first and last weighted layers (or a given list) stay full rank; training
//!   starts with `warmup_epochs` full-rank epochs, then switches to the factorized model.
//! - **Cuttlefish** (Wang, Agarwal, U-chupala, Tanaka, Xing & Papailiopoulos 2023, "Cuttlefish:
//!   Low-Rank Model Training without All the Tuning", MLSys): after full-rank warm-up, each
//!   factorized matrix gets its *scaled stable rank* at the switch point,
//!   `r = min(k, ⌈srank(W_t) · k / srank(W_0)⌉)` with `k = min(m, n)` and `srank(W) = ‖W‖_F² / σ_max²`
//!   (the paper's rule, as its code computes it: `main.py`, `--rank-est-metric scaled-stable-rank`,
//!   github.com/hwang595/Cuttlefish); the first layers (up to a profiled `K`) and the last stay full
//!   rank. Ranks come from, in order: given ranks (`ranks`, or a CSV `layer,rank`); measured stable
//!   ranks (CSV `layer,stable_rank[,init_stable_rank]`: the rule above; without an
//!   `init_stable_rank`, `srank(W_0)` is the random-init estimate [`init_stable_rank`]; with
//!   `rank_scale` set, `⌈scale · stable_rank⌉` instead); or, with neither, the **default profile**
//!   of the catalog model ([`default_profile`]), whose ranks are *estimated*, not measured: they are
//!   the rank floors of Cuttlefish's public scripts, see there. Unlisted layers stay full rank, and
//!   a matrix whose factorization would not reduce its size (`r·(m+n) ≥ m·n`) is kept.
//!
//! Embedding tables (lookups) are never factorized. A run of `E` epochs takes
//! `W·steps·t_full + (E−W)·steps·t_lowrank` ([`two_phase`]).

use crate::check;
use crate::dnn::{DnnModel, LayerKind, Weight};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn none() -> String {
    "none".into()
}

/// A low-rank model configuration (scenario table or CLI flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowRank {
    /// `none`, `pufferfish` or `cuttlefish`.
    #[serde(default = "none")]
    pub kind: String,
    /// Pufferfish rank ratio, in (0, 1] (default 0.25).
    #[serde(default)]
    pub rank_ratio: Option<f64>,
    /// Layers kept full rank (Pufferfish, default: first and last weighted layers; Cuttlefish's
    /// default profile: kept in addition to the profile's own).
    #[serde(default)]
    pub full_rank_layers: Option<Vec<String>>,
    /// Cuttlefish ranks per layer name.
    #[serde(default)]
    pub ranks: BTreeMap<String, i64>,
    /// Cuttlefish rank profile CSV (`layer,rank` or `layer,stable_rank[,init_stable_rank]`).
    #[serde(default)]
    pub ranks_csv: Option<PathBuf>,
    /// Cuttlefish stable-rank scale: `⌈scale · stable_rank⌉` (default: Cuttlefish's rule,
    /// [`scaled_stable_rank`]).
    #[serde(default)]
    pub rank_scale: Option<f64>,
    /// Full-rank warm-up epochs.
    #[serde(default)]
    pub warmup_epochs: f64,
    /// Total epochs (for the two-phase run time).
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Samples per epoch (for the two-phase run time).
    #[serde(default)]
    pub dataset_samples: Option<f64>,
}

impl Default for LowRank {
    fn default() -> Self {
        LowRank {
            kind: none(),
            rank_ratio: None,
            full_rank_layers: None,
            ranks: BTreeMap::new(),
            ranks_csv: None,
            rank_scale: None,
            warmup_epochs: 0.0,
            epochs: None,
            dataset_samples: None,
        }
    }
}

impl LowRank {
    /// Whether no factorization is asked for.
    pub fn is_none(&self) -> bool {
        self.kind.eq_ignore_ascii_case("none")
    }

    /// Refuses a setting the kind would ignore: any low-rank setting with `none`, `rank_ratio`
    /// outside Pufferfish, `ranks` / `ranks_csv` / `rank_scale` outside Cuttlefish, `rank_scale`
    /// without `ranks_csv`, run-time settings without both `epochs` and `dataset_samples`.
    /// (Values are range-checked where they are used.)
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the setting (scenario key and flag) and where it applies.
    pub fn check_applies(&self) -> Result<()> {
        let kind = self.name();
        let refuse = |key: &str, value: String, allowed: &str| {
            Err(Error::range(
                format!("{key} (--{})", key.replace('_', "-")),
                value,
                allowed.to_string(),
            ))
        };
        let opt = |v: Option<f64>| v.map(check::show);
        let given: [(&str, Option<String>); 8] = [
            ("rank_ratio", opt(self.rank_ratio)),
            (
                "full_rank_layers",
                self.full_rank_layers.as_ref().map(|v| v.join(",")),
            ),
            (
                "ranks",
                (!self.ranks.is_empty()).then(|| {
                    let v: Vec<String> =
                        self.ranks.iter().map(|(k, r)| format!("{k}={r}")).collect();
                    v.join(",")
                }),
            ),
            (
                "ranks_csv",
                self.ranks_csv.as_ref().map(|p| p.display().to_string()),
            ),
            ("rank_scale", opt(self.rank_scale)),
            (
                "warmup_epochs",
                (self.warmup_epochs != 0.0).then(|| check::show(self.warmup_epochs)),
            ),
            ("epochs", opt(self.epochs)),
            ("dataset_samples", opt(self.dataset_samples)),
        ];
        for (key, v) in given {
            let Some(v) = v else { continue };
            match (kind.as_str(), key) {
                ("none", _) => {
                    return refuse(key, v, "given only with a low-rank model (--lowrank pufferfish or cuttlefish)")
                }
                ("pufferfish", "ranks" | "ranks_csv" | "rank_scale") => {
                    return refuse(key, v, "given only with --lowrank cuttlefish")
                }
                ("cuttlefish", "rank_ratio") => return refuse(key, v, "given only with --lowrank pufferfish"),
                (_, "rank_scale") if self.ranks_csv.is_none() => {
                    return refuse(key, v, "given only with --ranks-csv (it scales the file's stable ranks)")
                }
                (_, "warmup_epochs" | "epochs" | "dataset_samples")
                    if self.epochs.is_none() || self.dataset_samples.is_none() =>
                {
                    return refuse(
                        key,
                        v,
                        "given only with both --epochs and --dataset-samples (the two-phase run time)",
                    )
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Kind name, lower case.
    pub fn name(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// Layers `full_rank_layers` names (validated against `model`); empty when not given.
    fn kept_layers(&self, model: &DnnModel) -> Result<Vec<String>> {
        let v = self.full_rank_layers.clone().unwrap_or_default();
        for n in &v {
            model.layer_index(n)?;
        }
        Ok(v)
    }

    /// Where the ranks of a low-rank model come from, for the output (`None` for `none`):
    /// Pufferfish's ratio, given ranks, scaled stable ranks from a file, or Cuttlefish's estimated
    /// default profile of `model` ([`default_profile`]).
    pub fn rank_source(&self, model: &DnnModel) -> Option<String> {
        match self.name().as_str() {
            "pufferfish" => Some(format!(
                "pufferfish ratio {}",
                self.rank_ratio.unwrap_or(0.25)
            )),
            "cuttlefish" => Some(match (&self.ranks_csv, self.ranks.is_empty()) {
                (Some(p), _) => match self.rank_scale {
                    Some(s) => format!("given: {} (stable ranks × {s}, or ranks)", p.display()),
                    None => format!(
                        "given: {} (ranks, or stable ranks scaled by k/srank_0, Cuttlefish)",
                        p.display()
                    ),
                },
                (None, false) => "given: ranks".into(),
                (None, true) => default_profile(model).source,
            }),
            _ => None,
        }
    }

    /// Factorizes `model`.
    ///
    /// # Errors
    /// Unknown kind; ratio outside (0, 1]; an unknown layer name; a rank ≤ 0 or larger than a
    /// matrix of its layer allows (naming the layer); unreadable rank CSV.
    pub fn apply(&self, model: &DnnModel) -> Result<DnnModel> {
        match self.name().as_str() {
            "none" => Ok(model.clone()),
            "pufferfish" => {
                let ratio = self.rank_ratio.unwrap_or(0.25);
                if !(ratio > 0.0 && ratio <= 1.0) {
                    return Err(Error::range(
                        "lowrank.rank_ratio",
                        ratio,
                        "a number in (0, 1]",
                    ));
                }
                let keep: Vec<String> = match &self.full_rank_layers {
                    Some(v) => {
                        for n in v {
                            model.layer_index(n)?;
                        }
                        v.clone()
                    }
                    None => {
                        let w: Vec<&str> = model
                            .layers
                            .iter()
                            .filter(|l| !l.weights.is_empty())
                            .map(|l| l.name.as_str())
                            .collect();
                        w.first()
                            .iter()
                            .chain(w.last().iter())
                            .map(|s| s.to_string())
                            .collect()
                    }
                };
                let mut out = model.clone();
                for l in &mut out.layers {
                    if keep.contains(&l.name) || l.kind == LayerKind::Embedding {
                        continue;
                    }
                    let name = l.name.clone();
                    factorize(
                        l,
                        &name,
                        |w| ((ratio * w.rows.min(w.cols) as f64).round() as i64).max(1),
                        false,
                    )?;
                }
                Ok(out)
            }
            "cuttlefish" => {
                let mut given: BTreeMap<String, RankEntry> = self
                    .ranks
                    .iter()
                    .map(|(k, &v)| (k.clone(), RankEntry::Rank(v)))
                    .collect();
                if let Some(p) = &self.ranks_csv {
                    if let Some(scale) = self.rank_scale {
                        check::positive("lowrank.rank_scale", scale)?;
                    }
                    for (k, v) in read_ranks(p, self.rank_scale)? {
                        given.insert(k, v);
                    }
                }
                let mut out = model.clone();
                if given.is_empty() {
                    let keep = self.kept_layers(model)?;
                    let prof = default_profile(model);
                    for &(i, ratio) in &prof.layers {
                        let l = &mut out.layers[i];
                        if keep.contains(&l.name) {
                            continue;
                        }
                        let name = l.name.clone();
                        factorize(l, &name, |w| floor_rank(ratio, w), true)?;
                    }
                    return Ok(out);
                }
                for (name, entry) in &given {
                    let i = model.layer_index(name)?;
                    let l = &mut out.layers[i];
                    if l.kind == LayerKind::Embedding {
                        return Err(Error::range(
                            format!("lowrank rank for layer '{name}'"),
                            entry.shown(),
                            "absent: embedding tables are not factorized",
                        ));
                    }
                    factorize(l, name, |w| entry.rank(w), true)?;
                }
                Ok(out)
            }
            other => Err(Error::unknown(
                "lowrank",
                other,
                ["none", "pufferfish", "cuttlefish"],
            )),
        }
    }
}

/// Factorizes every matrix of `l` with positions > 0 at the rank `rank(w)`.
fn factorize(
    l: &mut crate::dnn::Layer,
    name: &str,
    rank: impl Fn(&Weight) -> i64,
    skip_unprofitable: bool,
) -> Result<()> {
    let mut weights = Vec::with_capacity(l.weights.len() * 2);
    for w in &l.weights {
        if w.positions_per_sample <= 0.0 {
            weights.push(w.clone());
            continue;
        }
        let r = rank(w);
        let max = w.rows.min(w.cols) as i64;
        if r < 1 || r > max {
            return Err(Error::range(
                format!("lowrank rank for layer '{name}'"),
                r,
                format!(
                    "an integer in [1, {max}] (min dimension of its {} matrix, {}×{})",
                    w.name, w.rows, w.cols
                ),
            ));
        }
        let r = r as u64;
        if skip_unprofitable && r * (w.rows + w.cols) >= w.rows * w.cols {
            weights.push(w.clone());
            continue;
        }
        weights.push(Weight::new(
            &format!("{}.u", w.name),
            w.rows,
            r,
            w.positions_per_sample,
        ));
        weights.push(Weight::new(
            &format!("{}.v", w.name),
            r,
            w.cols,
            w.positions_per_sample,
        ));
        l.mem_elems_per_sample += 2.0 * r as f64 * w.positions_per_sample;
        l.kernels += 1;
    }
    l.weights = weights;
    Ok(())
}

/// One layer's rank as a profile gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RankEntry {
    /// A rank, used as is for every matrix of the layer.
    Rank(i64),
    /// A measured stable rank at the switch point (and, when measured, the one at
    /// initialization), scaled per matrix by Cuttlefish's rule ([`scaled_stable_rank`]).
    Stable { srank: f64, init: Option<f64> },
}

impl RankEntry {
    fn rank(&self, w: &Weight) -> i64 {
        match *self {
            RankEntry::Rank(r) => r,
            RankEntry::Stable { srank, init } => scaled_stable_rank(w.rows, w.cols, srank, init),
        }
    }

    fn shown(&self) -> String {
        match *self {
            RankEntry::Rank(r) => r.to_string(),
            RankEntry::Stable { srank, .. } => format!("stable rank {srank}"),
        }
    }
}

/// Stable rank `‖W‖_F² / σ_max²` of an `m×n` matrix with i.i.d. zero-mean entries (the state of a
/// freshly initialized layer, e.g. Kaiming-normal), by the Bai–Yin limit
/// `σ_max ≈ σ·(√m + √n)`: `srank(W_0) ≈ m·n / (√m + √n)²` (a square `n×n` matrix: `n/4`).
/// Cuttlefish measures `srank(W_0)` at epoch −1; this is its large-matrix estimate, used when no
/// measured value is given.
pub fn init_stable_rank(rows: u64, cols: u64) -> f64 {
    let (m, n) = (rows as f64, cols as f64);
    // (√m + √n)² written as m + n + 2√(mn), exact for square matrices.
    m * n / (m + n + 2.0 * (m * n).sqrt())
}

/// Cuttlefish's scaled stable rank of an `m×n` matrix: `min(k, ⌈srank_t · k / srank_0⌉)`, at least
/// 1, with `k = min(m, n)`, `srank_t` the stable rank at the switch point and `srank_0` the one at
/// initialization (`None`: [`init_stable_rank`]). Scaling by `k / srank_0` maps a random matrix
/// (which has full rank but a stable rank of about `k/4`) to full rank (Wang et al. 2023, §3;
/// their `main.py`: `int(math.ceil(er * ars))`, `ars = ori_rank / estimated_rank` at epoch −1).
pub fn scaled_stable_rank(rows: u64, cols: u64, srank_t: f64, srank_0: Option<f64>) -> i64 {
    let k = rows.min(cols) as f64;
    let s0 = srank_0.unwrap_or_else(|| init_stable_rank(rows, cols));
    ((srank_t * k / s0).ceil()).clamp(1.0, k) as i64
}

/// `max(1, ⌊ratio · min(m, n)⌋)`, the rank floors of Cuttlefish's scripts (`int(ori_rank * r)`).
fn floor_rank(ratio: f64, w: &Weight) -> i64 {
    ((ratio * w.rows.min(w.cols) as f64).floor() as i64).max(1)
}

/// Cuttlefish's rank floor on ImageNet CNNs, as a fraction of full rank
/// (`cuttlefish_imagenet_training.py`: `__rr_lower_bound = 1/5`).
pub const CNN_RANK_FLOOR: f64 = 0.2;

/// Cuttlefish's rank on vision transformers / MLP mixers, as a fraction of full rank
/// (`cuttlefish_deit/main.py`: the scaled-rank branch is commented out and every factorized layer
/// gets `int(ori_rank * 0.5)`).
pub const TRANSFORMER_RANK_RATIO: f64 = 0.5;

/// The default Cuttlefish profile of a catalog model: which layers are factorized, at what
/// fraction of full rank, and where that comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultProfile {
    /// `(layer index, rank / full rank)` of the factorized layers.
    pub layers: Vec<(usize, f64)>,
    /// Where the layer set and ranks come from (printed as the row's `lowrank_ranks`).
    pub source: String,
}

/// The default Cuttlefish profile of `model`, used when no ranks or stable ranks are given.
///
/// The ranks are **estimated**: Cuttlefish picks each rank from the weights' stable rank after
/// warm-up, which only training shows. What its public scripts fix regardless of training is
/// used instead (github.com/hwang595/Cuttlefish, Wang et al. 2023):
/// - **transformers** (a model with blocks): every block's matrices at `⌊k/2⌋`, embeddings and
///   head full rank — the rank `cuttlefish_deit/main.py` assigns (DeiT, ResMLP); exact for what
///   that script does, an extrapolation to BERT/GPT-2 (its BERT runs pick ranks from a stored
///   spectrum instead).
/// - **ResNets**: the layers its ImageNet ResNet-50 script factorizes (blocks from `layer2.2` on,
///   plus `layer4.0.downsample`; `conv1`, `layer1`, `layer2.0–2.1` and `fc` stay full rank: the
///   `K` its profiling chose) at the script's rank floor `⌊k/5⌋`. Trained stable ranks scaled
///   above the floor only raise ranks, so this is the most compressed model Cuttlefish can pick
///   there and its speedup an upper bound for that layer set.
/// - **other CNNs** (VGG): every weighted layer but the first and the last, at `⌊k/5⌋`
///   (extrapolated from the ResNet-50 script).
pub fn default_profile(model: &DnnModel) -> DefaultProfile {
    let weighted = |l: &crate::dnn::Layer| !l.weights.is_empty() && l.kind != LayerKind::Embedding;
    if model.layers.iter().any(|l| l.kind == LayerKind::Block) {
        let layers = model
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind == LayerKind::Block)
            .map(|(i, _)| (i, TRANSFORMER_RANK_RATIO))
            .collect();
        return DefaultProfile {
            layers,
            source: "cuttlefish default (estimated): every block at rank k/2, embeddings and head full rank (cuttlefish_deit/main.py of Wang et al. 2023)".into(),
        };
    }
    // ResNet block coordinates of `layer{s}.{b}.…`.
    let block = |name: &str| -> Option<(u32, u32)> {
        let rest = name.strip_prefix("layer")?;
        let mut it = rest.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    if model.layers.iter().any(|l| block(&l.name).is_some()) {
        let layers = model
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.kind == LayerKind::Conv
                    && block(&l.name).is_some_and(|sb| sb > (2, 1))
                    && (!l.name.ends_with("downsample") || l.name == "layer4.0.downsample")
            })
            .map(|(i, _)| (i, CNN_RANK_FLOOR))
            .collect();
        return DefaultProfile {
            layers,
            source: "cuttlefish default (estimated): layer2.2 on and layer4.0.downsample at the rank floor k/5 (cuttlefish_imagenet_training.py of Wang et al. 2023); conv1, layer1, layer2.0-2.1, fc full rank".into(),
        };
    }
    let w: Vec<usize> = model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| weighted(l))
        .map(|(i, _)| i)
        .collect();
    let inner = if w.len() > 2 {
        &w[1..w.len() - 1]
    } else {
        &[][..]
    };
    DefaultProfile {
        layers: inner.iter().map(|&i| (i, CNN_RANK_FLOOR)).collect(),
        source: "cuttlefish default (estimated): every weighted layer but the first and last at the rank floor k/5 (extrapolated from cuttlefish_imagenet_training.py of Wang et al. 2023)".into(),
    }
}

fn read_ranks(path: &Path, scale: Option<f64>) -> Result<Vec<(String, RankEntry)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| Error::parse(path, Some(1), e.to_string()))?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let layer =
        col("layer").ok_or_else(|| Error::parse(path, Some(1), "missing column 'layer'"))?;
    let (vcol, stable) = match (col("rank"), col("stable_rank")) {
        (Some(c), _) => (c, false),
        (None, Some(c)) => (c, true),
        _ => {
            return Err(Error::parse(
                path,
                Some(1),
                "missing column 'rank' or 'stable_rank'",
            ))
        }
    };
    let init_col = col("init_stable_rank");
    let num = |rec: &csv::StringRecord, c: usize, line: Option<u64>| -> Result<f64> {
        let raw = rec.get(c).unwrap_or("");
        let v: f64 = raw
            .parse()
            .map_err(|_| Error::parse(path, line, format!("{raw}: not a number")))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::parse(
                path,
                line,
                format!("{} = {v}: must be > 0", headers.get(c).unwrap_or("")),
            ));
        }
        Ok(v)
    };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec =
            rec.map_err(|e| Error::parse(path, e.position().map(|p| p.line()), e.to_string()))?;
        let line = rec.position().map(|p| p.line());
        let v = num(&rec, vcol, line)?;
        let entry = match (stable, scale) {
            (false, _) => RankEntry::Rank(v.round() as i64),
            (true, Some(s)) => RankEntry::Rank((s * v).ceil() as i64),
            (true, None) => RankEntry::Stable {
                srank: v,
                init: init_col.map(|c| num(&rec, c, line)).transpose()?,
            },
        };
        out.push((rec.get(layer).unwrap_or("").to_string(), entry));
    }
    Ok(out)
}

/// Run time of a two-phase (full-rank warm-up, then low-rank) training run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwoPhase {
    /// Total epochs.
    pub epochs: f64,
    /// Full-rank warm-up epochs.
    pub warmup_epochs: f64,
    /// Steps per epoch.
    pub steps_per_epoch: f64,
    /// Full-rank step, seconds.
    pub full_rank_step_s: f64,
    /// Low-rank step, seconds.
    pub low_rank_step_s: f64,
    /// Run time, seconds.
    pub run_s: f64,
    /// Run time with the full-rank model throughout, seconds.
    pub full_rank_run_s: f64,
    /// `full_rank_run_s / run_s`.
    pub run_speedup: f64,
}

/// `run = W·steps·t_full + (E−W)·steps·t_low`, with `steps = ⌈samples / (batch · workers)⌉`.
///
/// # Errors
/// [`Error::OutOfRange`] for epochs outside (0, 10^6], warm-up outside [0, E], samples outside
/// (0, 10^15].
pub fn two_phase(
    full_step_s: f64,
    low_step_s: f64,
    lr: &LowRank,
    global_batch: f64,
) -> Result<Option<TwoPhase>> {
    let (Some(e), Some(n)) = (lr.epochs, lr.dataset_samples) else {
        return Ok(None);
    };
    check::in_closed(
        "lowrank.epochs",
        check::positive("lowrank.epochs", e)?,
        0.0,
        1e6,
    )?;
    check::in_closed("lowrank.warmup_epochs", lr.warmup_epochs, 0.0, e)?;
    check::in_closed(
        "lowrank.dataset_samples",
        check::positive("lowrank.dataset_samples", n)?,
        0.0,
        1e15,
    )?;
    let steps = (n / global_batch).ceil();
    let run = lr.warmup_epochs * steps * full_step_s + (e - lr.warmup_epochs) * steps * low_step_s;
    let full = e * steps * full_step_s;
    Ok(Some(TwoPhase {
        epochs: e,
        warmup_epochs: lr.warmup_epochs,
        steps_per_epoch: steps,
        full_rank_step_s: full_step_s,
        low_rank_step_s: low_step_s,
        run_s: run,
        full_rank_run_s: full,
        run_speedup: full / run,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::dnn::model;

    fn m(name: &str) -> DnnModel {
        model(&Catalog::embedded().unwrap(), name).unwrap()
    }

    /// Pufferfish at ratio 1/4 on a square d×d matrix keeps r(2d) = d²/2 parameters: a BERT block's
    /// four matrices (qkv d×3d → r = d/4: d·(d/4)+(d/4)·3d = d²; out d²/2; fc1, fc2 d×4d → r = d/4:
    /// 5d²/4 each) go from 12d² to 4d²; embeddings and head stay.
    #[test]
    fn pufferfish_block_params_by_hand() {
        let base = m("bert-base");
        let lr = LowRank {
            kind: "pufferfish".into(),
            ..Default::default()
        };
        let f = lr.apply(&base).unwrap();
        let d = 768u64;
        let blk = |mm: &DnnModel| mm.layers[3].params();
        assert_eq!(blk(&base) - blk(&f), 12 * d * d - 4 * d * d);
        assert_eq!(f.layers[0].params(), base.layers[0].params());
        assert_eq!(
            f.layers.last().unwrap().params(),
            base.layers.last().unwrap().params()
        );
        // FLOPs fall by the same factor for the weight matmuls.
        let wf = |mm: &DnnModel| mm.layers[3].weight_flops_per_sample();
        assert!((wf(&f) / wf(&base) - 4.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn cuttlefish_ranks_and_errors_name_the_layer() {
        let base = m("resnet-50");
        let mut lr = LowRank {
            kind: "cuttlefish".into(),
            ..Default::default()
        };
        lr.ranks.insert("layer4.0.conv2".into(), 64);
        let f = lr.apply(&base).unwrap();
        let i = base.layer_index("layer4.0.conv2").unwrap();
        // 3×3×512 → 512 at rank 64: 4608·64 + 64·512 instead of 4608·512
        assert_eq!(
            base.layers[i].params() - f.layers[i].params(),
            4608 * 512 - (4608 * 64 + 64 * 512)
        );
        lr.ranks.insert("layer4.0.conv2".into(), 600);
        let e = lr.apply(&base).unwrap_err().to_string();
        assert!(
            e.contains("layer 'layer4.0.conv2'") && e.contains("[1, 512]"),
            "{e}"
        );
        lr.ranks.insert("layer4.0.conv2".into(), 0);
        assert!(lr.apply(&base).unwrap_err().to_string().contains("= 0"));
        lr.ranks.clear();
        lr.ranks.insert("layer9".into(), 4);
        assert!(lr
            .apply(&base)
            .unwrap_err()
            .to_string()
            .contains("unknown layer"));
        let bad = LowRank {
            kind: "pufferfish".into(),
            rank_ratio: Some(1.5),
            ..Default::default()
        };
        assert!(bad.apply(&base).unwrap_err().to_string().contains("(0, 1]"));
    }

    #[test]
    fn two_phase_by_hand() {
        let lr = LowRank {
            kind: "pufferfish".into(),
            warmup_epochs: 10.0,
            epochs: Some(90.0),
            dataset_samples: Some(1000.0),
            ..Default::default()
        };
        let t = two_phase(2.0, 1.0, &lr, 100.0).unwrap().unwrap();
        assert_eq!(t.steps_per_epoch, 10.0);
        assert_eq!(t.run_s, 10.0 * 10.0 * 2.0 + 80.0 * 10.0 * 1.0);
        assert_eq!(t.full_rank_run_s, 1800.0);
        let bad = LowRank {
            warmup_epochs: 100.0,
            ..lr
        };
        assert!(two_phase(2.0, 1.0, &bad, 100.0).is_err());
    }

    /// Stable ranks are scaled and rounded up: ⌈2 · 30.2⌉ = 61; an explicit `rank` column is
    /// taken as is; a bad value names the file and line.
    #[test]
    fn cuttlefish_reads_a_stable_rank_profile() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sr.csv");
        std::fs::write(
            &p,
            "# stable ranks after warm-up\nlayer,stable_rank\nlayer4.0.conv2,30.2\nfc,12\n",
        )
        .unwrap();
        let lr = LowRank {
            kind: "cuttlefish".into(),
            ranks_csv: Some(p.clone()),
            rank_scale: Some(2.0),
            ..Default::default()
        };
        let base = m("resnet-50");
        let f = lr.apply(&base).unwrap();
        let i = base.layer_index("layer4.0.conv2").unwrap();
        assert_eq!(f.layers[i].weights[0].cols, 61);
        let fc = base.layer_index("fc").unwrap();
        assert_eq!(f.layers[fc].weights[1].rows, 24);
        std::fs::write(&p, "layer,rank\nfc,abc\n").unwrap();
        let e = lr.apply(&base).unwrap_err().to_string();
        assert!(e.contains("sr.csv:2") && e.contains("abc"), "{e}");
    }

    /// Cuttlefish's scaling by hand: a 512×512 random matrix has srank_0 = 512²/(2√512)² = 128,
    /// so a trained stable rank of 10 scales to ⌈10·512/128⌉ = 40; a measured srank_0 of 100 gives
    /// ⌈51.2⌉ = 52; the rank is capped at 512 and floored at 1. A 4608×512 conv has
    /// (√4608 + √512)² = 5120 + 2·1536 = 8192, so srank_0 = 4608·512/8192 = 288.
    #[test]
    fn scaled_stable_rank_by_hand() {
        assert!((init_stable_rank(512, 512) - 128.0).abs() < 1e-9);
        assert!((init_stable_rank(4608, 512) - 288.0).abs() < 1e-9);
        assert_eq!(scaled_stable_rank(512, 512, 10.0, None), 40);
        assert_eq!(scaled_stable_rank(512, 512, 10.0, Some(100.0)), 52);
        assert_eq!(scaled_stable_rank(512, 512, 200.0, None), 512);
        assert_eq!(scaled_stable_rank(512, 512, 1e-6, None), 1);
    }

    /// `--lowrank cuttlefish` with no ranks: ResNet-50 gets the ImageNet script's layer set at
    /// ⌊k/5⌋ (layer4.0.conv2: k = 512 → 102; layer4.0.downsample 1024→2048: k = 1024 → 204);
    /// conv1, layer1, layer2.0–2.1, layer3.0.downsample and fc keep their parameters.
    #[test]
    fn cuttlefish_default_profile_resnet50() {
        let base = m("resnet-50");
        let lr = LowRank {
            kind: "cuttlefish".into(),
            ..Default::default()
        };
        let f = lr.apply(&base).unwrap();
        let p = |mm: &DnnModel, n: &str| mm.layers[mm.layer_index(n).unwrap()].params();
        for kept in [
            "conv1",
            "layer1.0.conv2",
            "layer2.1.conv3",
            "layer3.0.downsample",
            "fc",
        ] {
            assert_eq!(p(&f, kept), p(&base, kept), "{kept}");
        }
        assert_eq!(
            p(&base, "layer4.0.conv2") - p(&f, "layer4.0.conv2"),
            4608 * 512 - (4608 * 102 + 102 * 512)
        );
        assert_eq!(
            p(&base, "layer4.0.downsample") - p(&f, "layer4.0.downsample"),
            1024 * 2048 - 204 * (1024 + 2048)
        );
        // layer2.2.conv2 (1152×128, k = 128 → 25) is the first factorized layer.
        assert_eq!(
            p(&base, "layer2.2.conv2") - p(&f, "layer2.2.conv2"),
            1152 * 128 - 25 * (1152 + 128)
        );
        let src = lr.rank_source(&base).unwrap();
        assert!(src.contains("estimated") && src.contains("k/5"), "{src}");
        // A layer named in full_rank_layers stays full rank on top of the profile.
        let keep = LowRank {
            full_rank_layers: Some(vec!["layer4.0.conv2".into()]),
            ..lr.clone()
        };
        let g = keep.apply(&base).unwrap();
        assert_eq!(p(&g, "layer4.0.conv2"), p(&base, "layer4.0.conv2"));
        assert!(g.params() > f.params() && f.params() < base.params());
    }

    /// Transformers: every block at ⌊k/2⌋ = 384 for d = 768: qkv (d×3d) and fc1/fc2 (d×4d) shrink,
    /// the d×d output projection would not (384·2d = d²) and is kept: 4d² fewer per block.
    /// VGG: the first and last weighted layers stay full rank.
    #[test]
    fn cuttlefish_default_profile_transformer_and_vgg() {
        let lr = LowRank {
            kind: "cuttlefish".into(),
            ..Default::default()
        };
        let base = m("bert-base");
        let f = lr.apply(&base).unwrap();
        let d = 768u64;
        for i in 0..base.layers.len() {
            let (b, g) = (&base.layers[i], &f.layers[i]);
            if b.kind == LayerKind::Block {
                assert_eq!(b.params() - g.params(), 4 * d * d, "{}", b.name);
            } else {
                assert_eq!(b.params(), g.params(), "{}", b.name);
            }
        }
        assert!(lr.rank_source(&base).unwrap().contains("k/2"));
        let vgg = m("vgg-16");
        let v = lr.apply(&vgg).unwrap();
        let w: Vec<usize> = (0..vgg.layers.len())
            .filter(|&i| !vgg.layers[i].weights.is_empty())
            .collect();
        let (first, last) = (w[0], w[w.len() - 1]);
        assert_eq!(v.layers[first].params(), vgg.layers[first].params());
        assert_eq!(v.layers[last].params(), vgg.layers[last].params());
        assert!(v.layers[w[1]].params() < vgg.layers[w[1]].params());
    }

    /// A stable-rank profile without `rank_scale` is scaled by Cuttlefish's rule: layer4.0.conv2
    /// (4608×512, srank_0 = 288) at stable rank 30.2 → ⌈30.2·512/288⌉ = 54; with a measured
    /// init_stable_rank of 64 → ⌈30.2·8⌉ = 242. Given ranks name their source.
    #[test]
    fn cuttlefish_scales_measured_stable_ranks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sr.csv");
        std::fs::write(&p, "layer,stable_rank\nlayer4.0.conv2,30.2\n").unwrap();
        let lr = LowRank {
            kind: "cuttlefish".into(),
            ranks_csv: Some(p.clone()),
            ..Default::default()
        };
        let base = m("resnet-50");
        let i = base.layer_index("layer4.0.conv2").unwrap();
        assert_eq!(lr.apply(&base).unwrap().layers[i].weights[0].cols, 54);
        std::fs::write(
            &p,
            "layer,stable_rank,init_stable_rank\nlayer4.0.conv2,30.2,64\n",
        )
        .unwrap();
        assert_eq!(lr.apply(&base).unwrap().layers[i].weights[0].cols, 242);
        // Only the listed layer is factorized: no default profile on top of given ranks.
        let f = lr.apply(&base).unwrap();
        let fc = base.layer_index("layer3.1.conv2").unwrap();
        assert_eq!(f.layers[fc].params(), base.layers[fc].params());
        assert!(lr.rank_source(&base).unwrap().starts_with("given"));
        std::fs::write(
            &p,
            "layer,stable_rank,init_stable_rank\nlayer4.0.conv2,30.2,0\n",
        )
        .unwrap();
        let e = lr.apply(&base).unwrap_err().to_string();
        assert!(e.contains("init_stable_rank = 0"), "{e}");
    }
}
