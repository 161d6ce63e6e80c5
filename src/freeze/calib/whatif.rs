//! The what-if's use of a committed freeze calibration (`models/calibration/<gpu>-freeze.toml`,
//! written by `perfcast calibrate`; embedded, or from `--catalog DIR`): which per-layer costs
//! `perfcast freeze` and the scenario study use for a catalog model, and what the output calls
//! them (`costs`).
//!
//! **Which architecture a calibration describes.** The harness names its models `val-<name>`;
//! a calibrated shape of `val-bert-base` stands for the catalog's `bert-base` when the catalog
//! architecture has the same number of encoder blocks and the same parameters per block (checked;
//! a shape that fails the check is not used).
//!
//! **Exact** (`calibrated (<gpu>-freeze, measured MAPE X%, max Y%)`): the what-if's model, dtype, batch and
//! sequence length are a calibrated shape. The profile is [`ShapeCal::profile`] of that shape, the
//! numbers `perfcast validate --technique freeze` scores, so X is the largest MAPE and Y the largest
//! point error of the freeze sets recorded for the GPU in `<gpu>-validation.toml` (total run time, end-to-end).
//!
//! **Scaling** (`calibrated scaling (…)`): any other catalog transformer (its layers are
//! embeddings, blocks and a head), batch or sequence length, in a calibrated dtype. For each unit
//! kind (embeddings, block, head) and cost (forward, input gradient, weight gradient, optimizer,
//! gradient norm) the calibrated cost `C` at the dtype's calibrated shapes is regressed on the
//! roofline work `R` of the same unit at the same shape ([`crate::dnn::Profile::roofline`] on the
//! GPU, in the dtype, without its per-kernel launch term: `max(FLOPs / P, bytes / BW)`):
//! `C = a·R + o`, least squares with `a, o ≥ 0` (`1/a`: the achieved fraction of the roofline;
//! `o`: a fixed cost per unit and iteration, so the block's `o` is the per-layer overhead and the
//! embeddings' and head's the per-iteration ones). Regressing on the roofline *with* its launch
//! term fitted far worse (±60% on the bf16 iterations: the launch term makes `R` nearly flat in the
//! batch while the measured costs grow with it). Where `R` does not vary over
//! the shapes (the optimizer and norm costs depend on the parameters only) the fit is the ratio
//! `a = ΣC / ΣR`, `o = 0`. The target's costs are `a·R + o` of its own roofline layers. The label
//! gives the fit's largest error on the calibrated shapes' whole iterations (the two measured
//! ones: nothing frozen, and all but the head frozen; committed H200 file: ±17% bf16, ±9% f32),
//! the measured MAPE and max there, and whether the point is inside the measured batch and
//! sequence ranges of the calibrated architecture (`interpolated`) or not (`extrapolated`: another
//! architecture, or a batch or sequence length outside the measured ones). The micro rows measure
//! one architecture at four shapes per dtype, two batches × two sequence lengths, so `a` and `o`
//! per kind are all they can support; another architecture's blocks are assumed to reach the same
//! fraction of their roofline as BERT-base's, which nothing measured here checks.
//!
//! Anything else (no calibration for the GPU, a dtype without calibrated shapes, a layer kind the
//! calibration has no unit for such as convolutions) is `roofline (uncalibrated)` with the reason.

use super::{FreezeCalibration, ShapeCal, ShapeKey};
use crate::catalog::Catalog;
use crate::dnn::LayerKind;
use crate::error::{Error, Result};
use crate::freeze::cost::IterCosts;
use crate::freeze::profile::{catalog_dnn_profile, Dtype, LayerCost, Profile};
use serde::Deserialize;

/// Which per-layer costs a catalog what-if uses (`--costs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CostSource {
    /// The GPU's freeze calibration when one applies, else the roofline.
    #[default]
    Auto,
    /// The uncalibrated roofline, even when a calibration exists.
    Roofline,
    /// The calibration; an error when none applies.
    Calibrated,
}

impl CostSource {
    /// Parses `auto|roofline|calibrated`.
    ///
    /// # Errors
    /// [`Error::UnknownName`] (kind `costs`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(CostSource::Auto),
            "roofline" => Ok(CostSource::Roofline),
            "calibrated" => Ok(CostSource::Calibrated),
            o => Err(Error::unknown(
                "costs",
                o,
                ["auto", "roofline", "calibrated"],
            )),
        }
    }
}

impl std::str::FromStr for CostSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        CostSource::parse(s)
    }
}

/// The label of uncalibrated roofline costs.
pub const ROOFLINE: &str = "roofline (uncalibrated)";

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    sets: Vec<String>,
    #[serde(default)]
    shape: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(flatten)]
    key: ShapeKey,
    #[serde(flatten)]
    cal: ShapeCal,
}

/// A GPU's committed freeze calibration, with its measured error.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatIfCalibration {
    /// `<gpu>-freeze` (the file's stem).
    pub name: String,
    /// The fitted shapes.
    pub cal: FreezeCalibration,
    /// Largest MAPE of the GPU's recorded freeze sets (fraction), if any is recorded.
    pub measured_mape: Option<f64>,
    /// Largest point error of those sets (fraction), if any is recorded.
    pub measured_max: Option<f64>,
}

impl WhatIfCalibration {
    /// Parses a calibration file's text (`path` names it in errors).
    ///
    /// # Errors
    /// [`Error::Parse`] naming the file.
    pub fn parse(text: &str, path: &std::path::Path, name: &str) -> Result<Self> {
        let f: File = crate::catalog::parse_toml_str(text, path)?;
        Ok(Self::from_file(&f, name))
    }

    fn from_file(f: &File, name: &str) -> Self {
        WhatIfCalibration {
            name: name.to_string(),
            cal: FreezeCalibration {
                shapes: f
                    .shape
                    .iter()
                    .map(|e| (e.key.clone(), e.cal.clone()))
                    .collect(),
                sets: f.sets.clone(),
            },
            measured_mape: None,
            measured_max: None,
        }
    }

    /// `measured MAPE X%, max Y%` (or that no error is recorded).
    fn measured(&self) -> String {
        match (self.measured_mape, self.measured_max) {
            (Some(m), Some(x)) => {
                format!("measured MAPE {:.1}%, max {:.0}%", 100.0 * m, 100.0 * x)
            }
            (Some(m), None) => format!("measured MAPE {:.1}%", 100.0 * m),
            _ => "error not yet measured".to_string(),
        }
    }
}

/// The calibration of `gpu` (`calibration/<gpu>-freeze.toml` of the catalog), with the largest
/// MAPE and point error of its recorded freeze sets; `None` when the catalog has none.
///
/// # Errors
/// A malformed calibration file, naming it.
pub fn load(cat: &Catalog, gpu: &str) -> Result<Option<WhatIfCalibration>> {
    let name = format!("{}-freeze", gpu.to_ascii_lowercase());
    let rel = format!("calibration/{name}.toml");
    if !cat.has_file(&rel) {
        return Ok(None);
    }
    let f: std::sync::Arc<File> = cat.parse_shared(&rel)?;
    let mut w = WhatIfCalibration::from_file(&f, &name);
    let records = cat.validation_records();
    let sets = || {
        records
            .iter()
            .filter(|r| r.gpu.eq_ignore_ascii_case(gpu))
            .flat_map(|r| r.set.iter())
            .filter(|s| s.technique == "freeze")
    };
    w.measured_mape = sets().map(|s| s.mape).reduce(f64::max);
    w.measured_max = sets().map(|s| s.max_abs_pct_err).reduce(f64::max);
    Ok(Some(w))
}

/// What [`resolve`] found for a what-if.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Calibrated costs (exact or scaled) and their label.
    Calibrated {
        /// Per-layer costs.
        profile: Profile,
        /// `calibrated (…)` or `calibrated scaling (…)`.
        costs: String,
    },
    /// The calibration does not apply; why.
    NotApplicable(String),
}

/// `C = a·R + o` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fit {
    /// Multiplier of the roofline cost (1 / achieved fraction).
    pub a: f64,
    /// Fixed cost per unit and iteration, seconds.
    pub o: f64,
}

impl Fit {
    /// Least squares through `(R, C)` points with `a, o ≥ 0`; the ratio when `R` does not vary.
    pub fn of(points: &[(f64, f64)]) -> Fit {
        let n = points.len() as f64;
        if points.is_empty() {
            return Fit::default();
        }
        let sr: f64 = points.iter().map(|p| p.0).sum();
        let sc: f64 = points.iter().map(|p| p.1).sum();
        let (mr, mc) = (sr / n, sc / n);
        let var: f64 = points.iter().map(|p| (p.0 - mr).powi(2)).sum();
        if var <= (1e-3 * mr).powi(2) * n {
            return if sr > 0.0 {
                Fit { a: sc / sr, o: 0.0 }
            } else {
                Fit { a: 0.0, o: mc }
            };
        }
        let a = points.iter().map(|p| (p.0 - mr) * (p.1 - mc)).sum::<f64>() / var;
        let o = mc - a * mr;
        if a < 0.0 {
            Fit { a: 0.0, o: mc }
        } else if o < 0.0 {
            let srr: f64 = points.iter().map(|p| p.0 * p.0).sum();
            let src: f64 = points.iter().map(|p| p.0 * p.1).sum();
            Fit {
                a: src / srr,
                o: 0.0,
            }
        } else {
            Fit { a, o }
        }
    }

    fn at(self, r: f64) -> f64 {
        (self.a * r + self.o).max(0.0)
    }
}

/// The fits of one unit kind: forward, input gradient, weight gradient, optimizer, norm.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KindFit {
    /// Forward.
    pub forward: Fit,
    /// Input gradient.
    pub input_grad: Fit,
    /// Weight gradient.
    pub weight_grad: Fit,
    /// AdamW step (on the roofline optimizer time).
    pub optimizer: Fit,
    /// Gradient-norm cost under AutoFreeze (on the roofline optimizer time).
    pub grad_norm: Fit,
}

/// The scaling of one dtype (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    /// Catalog architecture the shapes measured.
    pub arch: String,
    /// Dtype.
    pub dtype: Dtype,
    /// Embeddings, block, head.
    pub kinds: [KindFit; 3],
    /// The calibrated shapes fitted.
    pub shapes: Vec<ShapeKey>,
    /// Largest |relative error| of the scaled whole iterations (k = 0 and all but the head
    /// frozen) against the calibrated ones at those shapes.
    pub max_rel_err: f64,
}

fn kind_index(k: LayerKind) -> Option<usize> {
    match k {
        LayerKind::Embedding => Some(0),
        LayerKind::Block => Some(1),
        LayerKind::Head => Some(2),
        _ => None,
    }
}

/// The catalog architecture a calibrated model name stands for (`val-bert-base` → `bert-base`).
pub fn arch_of(model: &str) -> &str {
    model.strip_prefix("val-").unwrap_or(model)
}

/// The roofline profile of the calibrated shape `key` on `gpu`, if the catalog architecture
/// matches the calibration (same blocks, same parameters per block).
fn reference(
    cat: &Catalog,
    gpu: &str,
    key: &ShapeKey,
    sc: &ShapeCal,
    dtype: Dtype,
) -> Option<crate::dnn::Profile> {
    let d = catalog_dnn_profile(
        cat,
        arch_of(&key.model),
        gpu,
        key.batch,
        Some(key.seq),
        dtype,
        false,
    )
    .ok()?;
    let blocks: Vec<_> = d
        .layers
        .iter()
        .filter(|l| l.kind == LayerKind::Block)
        .collect();
    (blocks.len() == sc.blocks && blocks.iter().all(|b| b.params == sc.block.params)).then_some(d)
}

/// Fits the scaling of `dtype` from the calibrated shapes of `w` (None: no usable shape).
pub fn scaling(w: &WhatIfCalibration, cat: &Catalog, gpu: &str, dtype: Dtype) -> Option<Scaling> {
    let mut pts: [[Vec<(f64, f64)>; 5]; 3] = Default::default();
    let mut used = Vec::new();
    let mut refs = Vec::new();
    let mut arch = None;
    for (key, sc) in w.cal.shapes.iter().filter(|(k, _)| k.dtype == dtype.name()) {
        let Some(d) = reference(cat, gpu, key, sc, dtype) else {
            continue;
        };
        if arch.get_or_insert_with(|| d.model.clone()) != &d.model {
            continue;
        }
        let (sf, sb) = (sc.forward_scale, sc.backward_scale);
        for (ki, u) in [&sc.embeddings, &sc.block, &sc.head]
            .into_iter()
            .enumerate()
        {
            let Some(r) = d.layers.iter().find(|l| kind_index(l.kind) == Some(ki)) else {
                continue;
            };
            let c = [
                (r.forward_s, sf * u.forward_s),
                (r.input_grad_s, sb * u.input_grad_s),
                (r.weight_grad_s, sb * u.weight_grad_s),
                (r.optimizer_s, sb * u.optimizer_s),
                (r.optimizer_s, sb * u.grad_norm_s),
            ];
            for (ci, p) in c.into_iter().enumerate() {
                pts[ki][ci].push(p);
            }
        }
        used.push(key.clone());
        refs.push((key.clone(), sc.clone(), d));
    }
    let arch = arch?;
    let f = |ki: usize| KindFit {
        forward: Fit::of(&pts[ki][0]),
        input_grad: Fit::of(&pts[ki][1]),
        weight_grad: Fit::of(&pts[ki][2]),
        optimizer: Fit::of(&pts[ki][3]),
        grad_norm: Fit::of(&pts[ki][4]),
    };
    let mut s = Scaling {
        arch,
        dtype,
        kinds: [f(0), f(1), f(2)],
        shapes: used,
        max_rel_err: 0.0,
    };
    for (key, sc, d) in &refs {
        let (Ok(scaled), Ok(exact)) = (s.apply(d, false), sc.profile(key, false)) else {
            continue;
        };
        let (a, b) = (IterCosts::new(&scaled), IterCosts::new(&exact));
        for k in [0, exact.len() - 1] {
            let e = (a.base[k] - b.base[k]).abs() / b.base[k];
            s.max_rel_err = s.max_rel_err.max(e);
        }
    }
    Some(s)
}

impl Scaling {
    /// The scaled profile of a roofline profile (`Err`: a layer kind without a calibrated unit).
    ///
    /// # Errors
    /// The reason, as text.
    pub fn apply(
        &self,
        d: &crate::dnn::Profile,
        grad_norms: bool,
    ) -> std::result::Result<Profile, String> {
        let mut layers = Vec::with_capacity(d.layers.len());
        for l in &d.layers {
            let ki = kind_index(l.kind).ok_or_else(|| {
                format!(
                    "layer {} is a {} layer; the calibration has embedding, block and head units only",
                    l.name,
                    l.kind.as_str()
                )
            })?;
            let k = &self.kinds[ki];
            layers.push(LayerCost {
                name: l.name.clone(),
                forward_s: k.forward.at(l.forward_s),
                input_grad_s: k.input_grad.at(l.input_grad_s),
                weight_grad_s: k.weight_grad.at(l.weight_grad_s),
                optimizer_s: k.optimizer.at(l.optimizer_s)
                    + if grad_norms {
                        k.grad_norm.at(l.optimizer_s)
                    } else {
                        0.0
                    },
                params: l.params,
                activation_bytes_per_sample: l.out_act_bytes_per_sample,
            });
        }
        Profile::new(d.model.clone(), String::new(), d.batch, layers).map_err(|e| e.to_string())
    }
}

/// The calibrated profile of catalog model `name` (the catalog's spelling) at `batch`, `seq`
/// tokens per sample (None: not a text transformer) and `dtype`, if `w` applies (see the module
/// docs); `grad_norms` adds AutoFreeze's norm cost to every optimizer time.
///
/// # Errors
/// Unknown GPU; an invalid calibrated profile.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    w: &WhatIfCalibration,
    cat: &Catalog,
    gpu: &str,
    name: &str,
    batch: u32,
    seq: Option<u32>,
    dtype: Dtype,
    grad_norms: bool,
) -> Result<Outcome> {
    let exact = w.cal.shapes.iter().find(|(key, _)| {
        arch_of(&key.model).eq_ignore_ascii_case(name)
            && key.dtype == dtype.name()
            && key.batch == batch
            && seq == Some(key.seq)
    });
    if let Some((key, sc)) = exact {
        if let Some(roof) = reference(cat, gpu, key, sc, dtype) {
            let mut p = sc.profile(key, grad_norms)?;
            p.model = roof.model.clone();
            for (l, r) in p.layers.iter_mut().zip(&roof.layers) {
                l.name = r.name.clone();
            }
            return Ok(Outcome::Calibrated {
                profile: p,
                costs: format!("calibrated ({}, {})", w.name, w.measured()),
            });
        }
    }
    let roof = catalog_dnn_profile(cat, name, gpu, batch, seq, dtype, false)?;
    let Some(s) = scaling(w, cat, gpu, dtype) else {
        return Ok(Outcome::NotApplicable(format!(
            "{} has no usable {} shape",
            w.name,
            dtype.name()
        )));
    };
    let mut p = match s.apply(&roof, grad_norms) {
        Ok(p) => p,
        Err(why) => return Ok(Outcome::NotApplicable(why)),
    };
    let range = |f: &dyn Fn(&ShapeKey) -> u32| {
        let v: Vec<u32> = s.shapes.iter().map(f).collect();
        (
            v.iter().copied().min().unwrap_or(0),
            v.iter().copied().max().unwrap_or(0),
        )
    };
    let (b0, b1) = range(&|k| k.batch);
    let (s0, s1) = range(&|k| k.seq);
    let mut outside = Vec::new();
    if !s.arch.eq_ignore_ascii_case(name) {
        outside.push(format!("{name} is not {}", s.arch));
    }
    if batch < b0 || batch > b1 {
        outside.push(format!("batch {batch} outside {b0}–{b1}"));
    }
    if let Some(q) = seq.filter(|q| *q < s0 || *q > s1) {
        outside.push(format!("seq {q} outside {s0}–{s1}"));
    }
    let extra = if outside.is_empty() {
        "interpolated".to_string()
    } else {
        format!("extrapolated: {}", outside.join(", "))
    };
    p.source = format!(
        "{} scaled by {} ({} a·roofline + o per unit kind, fitted at {} shapes of {})",
        roof.source,
        w.name,
        dtype.name(),
        s.shapes.len(),
        s.arch
    );
    let costs = format!(
        "calibrated scaling ({} {}: fit within ±{:.0}% at {} batch {b0}–{b1} seq {s0}–{s1}, {} there; {extra})",
        w.name,
        dtype.name(),
        100.0 * s.max_rel_err,
        s.arch,
        w.measured()
    );
    Ok(Outcome::Calibrated { profile: p, costs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_is_least_squares_with_non_negative_terms() {
        // C = 2R + 1 exactly.
        let f = Fit::of(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!(
            (f.a - 2.0).abs() < 1e-12 && (f.o - 1.0).abs() < 1e-12,
            "{f:?}"
        );
        // Constant R: the ratio.
        let f = Fit::of(&[(2.0, 3.0), (2.0, 5.0)]);
        assert_eq!((f.a, f.o), (2.0, 0.0));
        // A negative intercept refits through the origin: C = 3R − 1 → a = ΣRC/ΣR².
        let f = Fit::of(&[(1.0, 2.0), (2.0, 5.0)]);
        assert_eq!(f.o, 0.0);
        assert!((f.a - 12.0 / 5.0).abs() < 1e-12);
        // A falling trend keeps the mean.
        let f = Fit::of(&[(1.0, 5.0), (2.0, 3.0)]);
        assert_eq!((f.a, f.o), (0.0, 4.0));
        // R always 0 (the embeddings' input gradient): the mean cost.
        assert_eq!(Fit::of(&[(0.0, 0.0), (0.0, 0.0)]), Fit { a: 0.0, o: 0.0 });
    }

    #[test]
    fn committed_h200_calibration_loads_and_scales() {
        let cat = Catalog::embedded().unwrap();
        let w = load(&cat, "h200").unwrap().unwrap();
        assert_eq!(w.name, "h200-freeze");
        assert_eq!(w.cal.shapes.len(), 8);
        assert!(w.measured_mape.is_some());
        assert!(load(&cat, "a10g").unwrap().is_none());
        for dtype in [Dtype::Bf16, Dtype::F32] {
            let s = scaling(&w, &cat, "h200", dtype).unwrap();
            assert_eq!(s.arch, "bert-base");
            assert_eq!(s.shapes.len(), 4);
            // The scaling reproduces the calibrated iterations it was fitted to within 25%.
            assert!(s.max_rel_err < 0.25, "{dtype:?}: {}", s.max_rel_err);
        }
    }
}
