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
//! - **Cuttlefish** (Wang et al. 2023, "Cuttlefish: Low-Rank Model Training without All the
//!   Tuning", MLSys): ranks per layer, given directly or from a stable-rank profile CSV (columns
//!   `layer,rank` or `layer,stable_rank`; `rank = ⌈scale · stable_rank⌉`); unlisted layers stay full
//!   rank, and a matrix whose factorization would not reduce its size (`r·(m+n) ≥ m·n`) is kept.
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
    /// Layers kept full rank (Pufferfish; default: first and last weighted layers).
    #[serde(default)]
    pub full_rank_layers: Option<Vec<String>>,
    /// Cuttlefish ranks per layer name.
    #[serde(default)]
    pub ranks: BTreeMap<String, i64>,
    /// Cuttlefish rank profile CSV (`layer,rank` or `layer,stable_rank`).
    #[serde(default)]
    pub ranks_csv: Option<PathBuf>,
    /// Cuttlefish stable-rank scale (default 1).
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

    /// Kind name, lower case.
    pub fn name(&self) -> String {
        self.kind.to_ascii_lowercase()
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
                let mut ranks: BTreeMap<String, i64> = self.ranks.clone();
                if let Some(p) = &self.ranks_csv {
                    let scale = self.rank_scale.unwrap_or(1.0);
                    check::positive("lowrank.rank_scale", scale)?;
                    for (k, v) in read_ranks(p, scale)? {
                        ranks.insert(k, v);
                    }
                }
                if ranks.is_empty() {
                    return Err(Error::range(
                        "lowrank.ranks",
                        "none",
                        "at least one layer rank (ranks table or ranks_csv) for cuttlefish",
                    ));
                }
                let mut out = model.clone();
                for (name, &r) in &ranks {
                    let i = model.layer_index(name)?;
                    let l = &mut out.layers[i];
                    if l.kind == LayerKind::Embedding {
                        return Err(Error::range(
                            format!("lowrank rank for layer '{name}'"),
                            r,
                            "absent: embedding tables are not factorized",
                        ));
                    }
                    factorize(l, name, |_| r, true)?;
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

fn read_ranks(path: &Path, scale: f64) -> Result<Vec<(String, i64)>> {
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
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec =
            rec.map_err(|e| Error::parse(path, e.position().map(|p| p.line()), e.to_string()))?;
        let line = rec.position().map(|p| p.line());
        let v: f64 = rec.get(vcol).unwrap_or("").parse().map_err(|_| {
            Error::parse(
                path,
                line,
                format!("{}: not a number", rec.get(vcol).unwrap_or("")),
            )
        })?;
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::parse(path, line, format!("rank = {v}: must be > 0")));
        }
        let r = if stable {
            (scale * v).ceil() as i64
        } else {
            v.round() as i64
        };
        out.push((rec.get(layer).unwrap_or("").to_string(), r));
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
/// [`Error::OutOfRange`] for epochs ≤ 0, warm-up outside [0, E], samples ≤ 0.
pub fn two_phase(
    full_step_s: f64,
    low_step_s: f64,
    lr: &LowRank,
    global_batch: f64,
) -> Result<Option<TwoPhase>> {
    let (Some(e), Some(n)) = (lr.epochs, lr.dataset_samples) else {
        return Ok(None);
    };
    check::positive("lowrank.epochs", e)?;
    check::in_closed("lowrank.warmup_epochs", lr.warmup_epochs, 0.0, e)?;
    check::positive("lowrank.dataset_samples", n)?;
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
}
