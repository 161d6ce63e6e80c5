//! Calibration and validation: model parameters fitted from measurements
//! (`models/calibration/<gpu>.toml`) and the measured error of the predictions.
//!
//! - [`measure`]: the measurement CSV schema (`validation/results/*.csv`) and its streaming reader;
//! - [`fit`]: least-squares fit of the specdec latency model's rates and overheads from `forward`
//!   rows only (nalgebra SVD);
//! - [`validate`]: predicts every end-to-end point from the calibrated latency model and the
//!   point's *measured* survival curve, and reports the error per point and per set;
//! - [`metrics`]: MAPE, max |error|, bias with a Student-t interval (statrs).
//!
//! A calibration file overrides the catalog's latency defaults for one GPU; it is written by
//! `perfcast calibrate`, never by hand:
//!
//! ```toml
//! gpu = "h200"
//! fitted_kinds = ["forward"]
//! [latency]
//! flops_efficiency = 0.62
//! bw_efficiency = 0.81
//! layer_overhead_s = 9.1e-6
//! step_overhead_s = 4.0e-5
//! ```
//!
//! `perfcast validate --record FILE` writes the measured error per set
//! (`models/calibration/<gpu>-validation.toml`), which [`validation_note`] cites in reports.

pub mod fit;
pub mod measure;
pub mod metrics;
pub mod plot;
pub mod sha256;
pub mod validate;

use crate::catalog::{Catalog, LatencyDefaults, LlmArch, EMBEDDED};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Summary of a fit as the calibration file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// How the parameters were obtained.
    pub method: String,
    /// Forward points fitted.
    pub points: usize,
    /// Root-mean-square relative error of the fitted forward latencies, fraction.
    pub rms_rel_err: f64,
    /// Mean absolute relative error, fraction.
    pub mape: f64,
    /// Largest |relative error|, fraction.
    pub max_abs_pct_err: f64,
    /// Mean signed relative error, fraction.
    pub mean_pct_err: f64,
    /// Effective matmul rate, FLOP/s.
    pub flops_per_s: f64,
    /// Effective bandwidth, bytes/s.
    pub bw_bytes_per_s: f64,
    /// Parameters determined by the data.
    pub identified: Vec<String>,
    /// Parameters no measured point constrains (kept at the catalog default).
    pub not_identified: Vec<String>,
    /// Parameters at their bound (efficiency 1 or overhead 0).
    pub at_bound: Vec<String>,
    /// 95% confidence half-width of each free parameter, relative to its value.
    pub ci95_rel: BTreeMap<String, f64>,
    /// Measurement sets the forward rows came from.
    pub sets: Vec<String>,
    /// Regime-assignment iterations of the winning start.
    pub iterations: usize,
    /// Starting points tried.
    pub starts: usize,
}

/// A calibration file (`models/calibration/<gpu>.toml`), as written by `perfcast calibrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFile {
    /// Catalog GPU name.
    pub gpu: String,
    /// Tool and version that wrote the file.
    pub generated_by: String,
    /// When it was written (ISO 8601 UTC).
    pub date: String,
    /// Row kinds the parameters were fitted from: always exactly `["forward"]`.
    pub fitted_kinds: Vec<String>,
    /// The fitted latency-model parameters (relative to the catalog GPU's peaks).
    pub latency: LatencyDefaults,
    /// Fit quality.
    pub fit: FitSummary,
    /// The results files used, with SHA-256 and size.
    pub source: Vec<measure::Source>,
    /// Per-architecture refits (`[model.<name>]`), used for that architecture instead of
    /// `[latency]`.
    #[serde(default)]
    pub model: BTreeMap<String, ModelCalibration>,
    /// Per-point residuals of the pooled fit.
    #[serde(default)]
    pub residual: Vec<fit::Residual>,
}

/// One architecture's refit as the calibration file records it ([`fit::fit_per_model`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCalibration {
    /// The refitted parameters (`step_overhead_s` held at the pooled fit's value).
    pub latency: LatencyDefaults,
    /// Parameters this architecture's points do not determine (set to the pooled value unless
    /// that changed a point's regime).
    #[serde(default)]
    pub not_identified: Vec<String>,
    /// Forward points of this architecture.
    pub points: usize,
    /// MAPE of the refit on those points, fraction.
    pub mape: f64,
    /// Largest |relative error| of the refit, fraction.
    pub max_abs_pct_err: f64,
    /// MAPE of the pooled fit on the same points, fraction.
    pub pooled_mape: f64,
    /// Largest |relative error| of the pooled fit on them, fraction.
    pub pooled_max_abs_pct_err: f64,
    /// MAPE on these points of a pooled fit without them (leave-one-architecture-out): the
    /// error to expect for an architecture that was never measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_mape: Option<f64>,
    /// Largest |relative error| of that held-out fit, fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_max_abs_pct_err: Option<f64>,
    /// The held-out fit's parameters (`validate --costs heldout` predicts this architecture
    /// with them: the end-to-end error of an architecture never measured on this GPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_latency: Option<LatencyDefaults>,
}

/// The latency parameters of one GPU: the pooled fit (or catalog defaults) and per-architecture
/// refits.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuLatency {
    /// Parameters for any architecture without its own refit.
    pub pooled: LatencyDefaults,
    /// Refits by catalog model name.
    pub per_model: BTreeMap<String, LatencyDefaults>,
    /// Leave-one-architecture-out fits by catalog model name (validation only).
    pub held_out: BTreeMap<String, LatencyDefaults>,
}

impl GpuLatency {
    /// The parameters for `arch`: its refit when calibrated, else the pooled ones. Takes the
    /// catalog entry (not a user-typed name) so lookups use the catalog's spelling.
    pub fn for_model(&self, arch: &LlmArch) -> &LatencyDefaults {
        self.per_model.get(&arch.name).unwrap_or(&self.pooled)
    }

    /// Whether `arch` has its own refit.
    pub fn has_model(&self, arch: &LlmArch) -> bool {
        self.per_model.contains_key(&arch.name)
    }

    /// The parameters of a fit that never saw `arch`'s measurements: its leave-one-out fit when
    /// recorded, else the pooled fit ([`GpuLatency::has_held_out`] tells which).
    pub fn held_out_for(&self, arch: &LlmArch) -> &LatencyDefaults {
        self.held_out.get(&arch.name).unwrap_or(&self.pooled)
    }

    /// Whether a leave-one-out fit of `arch` is recorded.
    pub fn has_held_out(&self, arch: &LlmArch) -> bool {
        self.held_out.contains_key(&arch.name)
    }
}

/// One set's measured error as `validate --record` stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSet {
    /// Technique (`specdec`).
    pub technique: String,
    /// Set name.
    pub set: String,
    /// Where the forward latencies came from (`roofline` or `profile`).
    #[serde(default)]
    pub costs: validate::Costs,
    /// End-to-end points.
    pub points: usize,
    /// Mean absolute relative error of tokens/s, fraction.
    pub mape: f64,
    /// Largest |relative error|, fraction.
    pub max_abs_pct_err: f64,
    /// Whether the set met its tolerance.
    pub pass: bool,
}

/// The file `perfcast validate --record` writes (`models/calibration/<gpu>-validation.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// Catalog GPU name.
    pub gpu: String,
    /// Tool and version that wrote the file.
    pub generated_by: String,
    /// When it was written (ISO 8601 UTC).
    pub date: String,
    /// Whether the latency model was calibrated for this GPU.
    pub calibrated: bool,
    /// Per-set errors.
    pub set: Vec<RecordedSet>,
    /// The results files validated.
    pub source: Vec<measure::Source>,
}

#[derive(Deserialize)]
struct CalibHead {
    latency: LatencyDefaults,
    #[serde(default)]
    fitted_kinds: Option<Vec<String>>,
    #[serde(default)]
    model: BTreeMap<String, ModelHead>,
    #[serde(flatten)]
    _rest: toml::Table,
}

#[derive(Deserialize)]
struct ModelHead {
    latency: LatencyDefaults,
    #[serde(default)]
    held_out_latency: Option<LatencyDefaults>,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// The latency-model parameters to use for `gpu`: its calibration file when the catalog has one
/// (pooled fit and per-architecture refits), else the catalog defaults.
///
/// # Errors
/// Unknown GPU, or a calibration file that exists but is malformed or out of range.
pub fn latency_for(cat: &Catalog, gpu: &str) -> Result<GpuLatency> {
    let g = cat.gpu(gpu)?;
    let cache = |l: GpuLatency| {
        if let Ok(mut m) = cat.latency_cache.lock() {
            m.insert(g.name.clone(), l.clone());
        }
        Ok(l)
    };
    if let Some(l) = cat
        .latency_cache
        .lock()
        .ok()
        .and_then(|m| m.get(&g.name).cloned())
    {
        return Ok(l);
    }
    let rel = format!("calibration/{}.toml", g.name);
    match cat.read_text(&rel) {
        Ok((text, path)) => {
            let f: CalibHead = crate::catalog::parse_toml_str(&text, &path)?;
            f.latency.validate(&format!("{}.latency", path.display()))?;
            if let Some(k) = &f.fitted_kinds {
                if k.iter().any(|k| k != "forward") {
                    return Err(crate::Error::parse(
                        &path,
                        None,
                        format!("fitted_kinds = {k:?}: a calibration may be fitted from forward rows only (end-to-end rows are for validation)"),
                    ));
                }
            }
            let mut per_model = BTreeMap::new();
            let mut held_out = BTreeMap::new();
            for (name, m) in f.model {
                if cat.llm(&name).map(|a| a.name != name).unwrap_or(true) {
                    return Err(crate::Error::parse(
                        &path,
                        None,
                        format!("[model.{name}]: not a catalog model name (spelled as in models/llms*.toml)"),
                    ));
                }
                m.latency
                    .validate(&format!("{}.model.{name}.latency", path.display()))?;
                if let Some(h) = m.held_out_latency {
                    h.validate(&format!("{}.model.{name}.held_out_latency", path.display()))?;
                    held_out.insert(name.clone(), h);
                }
                per_model.insert(name, m.latency);
            }
            cache(GpuLatency {
                pooled: f.latency,
                per_model,
                held_out,
            })
        }
        Err(_) => cache(GpuLatency {
            pooled: g.latency,
            per_model: BTreeMap::new(),
            held_out: BTreeMap::new(),
        }),
    }
}

/// Whether a calibration file exists for `gpu`.
pub fn is_calibrated(cat: &Catalog, gpu: &str) -> bool {
    cat.read_text(&format!("calibration/{gpu}.toml")).is_ok()
}

/// The recorded validation of `gpu` (`calibration/<gpu>-validation.toml`), if the catalog has one.
///
/// # Errors
/// A file that exists but is malformed.
pub fn recorded_validation(cat: &Catalog, gpu: &str) -> Result<Option<ValidationRecord>> {
    match cat.read_text(&format!("calibration/{gpu}-validation.toml")) {
        Ok((text, path)) => crate::catalog::parse_toml_str(&text, &path).map(Some),
        Err(_) => Ok(None),
    }
}

fn note_from(records: &[ValidationRecord], technique: &str) -> Option<String> {
    let mut parts = Vec::new();
    for r in records {
        let sets: Vec<&RecordedSet> = r.set.iter().filter(|s| s.technique == technique).collect();
        if sets.is_empty() {
            continue;
        }
        let fmt = |s: &RecordedSet| {
            format!(
                "MAPE {:.1}%, max {:.1}% ({})",
                100.0 * s.mape,
                100.0 * s.max_abs_pct_err,
                if s.pass {
                    "within tolerance"
                } else {
                    "**outside tolerance**"
                }
            )
        };
        let mut names: Vec<&str> = sets.iter().map(|s| s.set.as_str()).collect();
        names.dedup();
        names.sort_unstable();
        names.dedup();
        let desc: Vec<String> = names
            .iter()
            .map(|name| {
                let of = |c: validate::Costs| sets.iter().find(|s| s.set == *name && s.costs == c);
                let points = sets.iter().find(|s| s.set == *name).map_or(0, |s| s.points);
                let mut d = format!("`{name}` ({points} points):");
                let mut parts = Vec::new();
                for (c, what) in [
                    (validate::Costs::Roofline, "with the calibrated latency model of architectures measured on this GPU"),
                    (validate::Costs::HeldOut, "for architectures never measured (each predicted by a fit without its own measurements: what predictions for other models carry)"),
                    (validate::Costs::Profile, "given measured forward latencies (the speculative-decoding model alone)"),
                ] {
                    if let Some(s) = of(c) {
                        parts.push(format!(" {} {what}", fmt(s)));
                    }
                }
                d += &parts.join(";");
                d
            })
            .collect();
        parts.push(format!(
            "tokens/s measured on {}{} ({}): {}",
            r.gpu,
            if r.calibrated {
                ", calibrated"
            } else {
                ", uncalibrated"
            },
            r.date,
            desc.join("; ")
        ));
    }
    (!parts.is_empty()).then(|| {
        parts.join(". ") + " (`perfcast validate` recomputes these; other GPUs are uncalibrated)"
    })
}

/// One line for reports saying how far a technique's predictions have been checked against
/// measurements: the error recorded by `perfcast validate --record` in the embedded
/// `calibration/*-validation.toml` files, with the set names.
pub fn validation_note(technique: &str) -> String {
    let records: Vec<ValidationRecord> = EMBEDDED
        .iter()
        .filter(|(name, _)| name.starts_with("calibration/") && name.ends_with("-validation.toml"))
        .filter_map(|(_, text)| toml::from_str(text).ok())
        .collect();
    note_from(&records, technique)
        .unwrap_or_else(|| format!("no committed measurement set validates `{technique}` yet: treat these numbers as uncalibrated model output"))
}

/// Adds to every record of a `perfcast specdec` result how far the latency model of `gpu` can
/// be trusted: `latency_model` (`calibrated` or `uncalibrated catalog defaults`) and, from the
/// recorded validation (`calibration/<gpu>-validation.toml`), `validation_costs` (which recorded
/// error applies: `roofline` when the target and any draft model were measured on this GPU and
/// have their own refit, else `heldout`, the error of architectures predicted without their own
/// measurements, or the nearest recorded substitute), `validation_mape` (the worst set's MAPE of tokens/s),
/// `validation_max_abs_pct_err` (the worst point) and `validation_sets`. Unknown GPUs or
/// unreadable records add `latency_model` only.
pub fn annotate_specdec(rows: &mut crate::report::Rows, cat: &Catalog, gpu: &str) {
    use serde_json::Value;
    let calibrated = cat
        .gpu(gpu)
        .map(|g| is_calibrated(cat, &g.name))
        .unwrap_or(false);
    let rec = cat
        .gpu(gpu)
        .ok()
        .and_then(|g| recorded_validation(cat, &g.name).ok().flatten());
    let lat = latency_for(cat, gpu).ok();
    let sets_of = |costs: validate::Costs| -> Vec<&RecordedSet> {
        rec.as_ref()
            .map(|r| {
                r.set
                    .iter()
                    .filter(|s| s.technique == "specdec" && s.costs == costs)
                    .collect()
            })
            .unwrap_or_default()
    };
    for r in &mut rows.records {
        let label = if calibrated {
            "calibrated"
        } else {
            "uncalibrated catalog defaults"
        };
        r.insert("latency_model".into(), Value::from(label));
        // A model counts as measured when it has its own refit; drafter labels that are not
        // catalog models (layerskip:E=…, cost ratios) need none.
        let measured = |key: &str| {
            r.get(key)
                .and_then(Value::as_str)
                .is_none_or(|m| match cat.llm(m) {
                    Err(_) => true,
                    Ok(a) => lat.as_ref().is_some_and(|l| l.has_model(a)),
                })
        };
        // Unmeasured architectures cite the held-out error; records without one fall back to
        // the pooled fit's, then the roofline's (the same parameters when nothing was refitted).
        let order: &[validate::Costs] = if measured("target") && measured("draft") {
            &[validate::Costs::Roofline]
        } else {
            &[
                validate::Costs::HeldOut,
                validate::Costs::Pooled,
                validate::Costs::Roofline,
            ]
        };
        let (costs, sets) = order
            .iter()
            .map(|&c| (c, sets_of(c)))
            .find(|(_, s)| !s.is_empty())
            .unwrap_or((validate::Costs::Roofline, Vec::new()));
        if calibrated && !sets.is_empty() {
            let mape = sets.iter().map(|s| s.mape).fold(0.0, f64::max);
            let max = sets.iter().map(|s| s.max_abs_pct_err).fold(0.0, f64::max);
            r.insert("validation_costs".into(), Value::from(costs.as_str()));
            r.insert("validation_mape".into(), Value::from(mape));
            r.insert("validation_max_abs_pct_err".into(), Value::from(max));
            r.insert(
                "validation_sets".into(),
                Value::from(
                    sets.iter()
                        .map(|s| s.set.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            );
        }
    }
}

/// The current UTC time as ISO 8601 (`2026-11-29T04:05:06Z`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iso8601(secs)
}

/// Formats seconds since the Unix epoch as ISO 8601 UTC (civil-from-days, H. Hinnant).
pub fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_dir_calibration_is_used_and_validated() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("calibration")).unwrap();
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "source = \"x\"\n[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        let c = Catalog::load(Some(d.path())).unwrap();
        assert_eq!(latency_for(&c, "a10g").unwrap().pooled.bw_efficiency, 0.5);
        assert!(is_calibrated(&c, "a10g"));
        // A loaded catalog resolves each GPU's calibration once; later edits need a fresh load.
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "[latency]\nflops_efficiency = 1.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        assert_eq!(
            latency_for(&c, "a10g").unwrap().pooled.flops_efficiency,
            0.5
        );
        let c = Catalog::load(Some(d.path())).unwrap();
        assert!(latency_for(&c, "a10g")
            .unwrap_err()
            .to_string()
            .contains("flops_efficiency = 1.5"));
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "fitted_kinds = [\"forward\", \"e2e\"]\n[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        assert!(latency_for(&c, "a10g")
            .unwrap_err()
            .to_string()
            .contains("forward rows only"));
        // Per-architecture refits: used for that architecture only, held-out fits only by
        // held_out_for, and every table validated by name.
        let base = "[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n";
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            format!("{base}[model.llama-2-7b]\npoints = 40\n[model.llama-2-7b.latency]\nflops_efficiency = 0.7\nbw_efficiency = 0.6\nlayer_overhead_s = 2e-5\nstep_overhead_s = 1e-4\n[model.llama-2-7b.held_out_latency]\nflops_efficiency = 0.4\nbw_efficiency = 0.4\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n"),
        )
        .unwrap();
        let c = Catalog::load(Some(d.path())).unwrap();
        let l = latency_for(&c, "a10g").unwrap();
        let (a7, a13) = (c.llm("llama-2-7b").unwrap(), c.llm("LLAMA-2-13B").unwrap());
        assert_eq!(l.for_model(a7).bw_efficiency, 0.6);
        assert_eq!(l.for_model(a13).bw_efficiency, 0.5);
        assert_eq!(l.held_out_for(a7).bw_efficiency, 0.4);
        assert_eq!(l.held_out_for(a13).bw_efficiency, 0.5);
        assert!(l.has_model(a7) && !l.has_model(a13));
        assert!(l.has_held_out(a7) && !l.has_held_out(a13));
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            format!("{base}[model.llama-2-7b.latency]\nflops_efficiency = 0.7\nbw_efficiency = 0.6\nlayer_overhead_s = -2e-5\nstep_overhead_s = 1e-4\n"),
        )
        .unwrap();
        let c = Catalog::load(Some(d.path())).unwrap();
        let e = latency_for(&c, "a10g").unwrap_err().to_string();
        assert!(
            e.contains("model.llama-2-7b.latency.layer_overhead_s"),
            "{e}"
        );
    }

    #[test]
    fn iso8601_hand_values() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC = 951827696 s.
        assert_eq!(iso8601(951_827_696), "2000-02-29T12:34:56Z");
    }

    #[test]
    fn note_cites_sets_and_errors() {
        let r = ValidationRecord {
            gpu: "h200".into(),
            generated_by: "t".into(),
            date: "2026-11-29T00:00:00Z".into(),
            calibrated: true,
            set: vec![RecordedSet {
                technique: "specdec".into(),
                set: "h200-e2e".into(),
                costs: validate::Costs::Profile,
                points: 24,
                mape: 0.031,
                max_abs_pct_err: 0.072,
                pass: true,
            }],
            source: vec![],
        };
        let n = note_from(std::slice::from_ref(&r), "specdec").unwrap();
        assert!(
            n.contains("`h200-e2e` (24 points): MAPE 3.1%, max 7.2% (within tolerance) given measured forward latencies"),
            "{n}"
        );
        assert!(note_from(&[r], "gradcomp").is_none());
        assert!(validation_note("no-such-technique").contains("uncalibrated"));
    }
}
