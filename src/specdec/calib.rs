//! specdec's calibration: the latency model's parameters fitted from `forward` measurements
//! (`models/calibration/<gpu>.toml`) and the predictor `perfcast validate` runs on its
//! end-to-end rows.
//!
//! - [`dataset`]: specdec's rows of the measurement contract ([`crate::measure`]), checked and
//!   split by kind (forward grid, survival curves, end-to-end points);
//! - [`fit`]: least-squares fit of the specdec latency model's rates and overheads from `forward`
//!   rows only (nalgebra SVD);
//! - [`validate`]: predicts every end-to-end point from the calibrated latency model and the
//!   point's *measured* survival curve, and reports the error per point and per set;
//! - [`plot`]: the parity plot and γ curves of a validation.
//!
//! A calibration file overrides the catalog's latency defaults for one GPU; it is written by
//! `perfcast calibrate`, never by hand, and read back as catalog data
//! ([`Catalog::latency`]):
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
//! (`models/calibration/<gpu>-validation.toml`), which reports cite
//! ([`crate::validate::validation_note`]).

pub mod dataset;
pub mod fit;
pub mod plot;
pub mod run;
pub mod validate;

/// The old name of [`dataset`] (specdec's measurement rows).
pub use dataset as measure;

use crate::catalog::{Catalog, LatencyDefaults};
use crate::measure::Source;
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
    pub source: Vec<Source>,
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

/// Adds to every record of a `perfcast specdec` result how far its latency model can be
/// trusted, from the recorded validation of its GPU (`calibration/<gpu>-validation.toml`). The
/// recorded error describes the harness stack on the GPU it was measured on, so it is cited only
/// for records with `stack = harness` and `latency_model = calibrated` (the stack measured on the
/// record's own `gpu`): `validation_costs` (which recorded error applies: `roofline` when the
/// target and any draft model were measured on this GPU and have their own refit, else
/// `heldout`, the error of architectures predicted without their own measurements, or the
/// nearest recorded substitute), `validation_mape` (the worst set's MAPE of tokens/s),
/// `validation_max_abs_pct_err` (the worst point), `validation_sets` and
/// `validation_applies_to` (`<gpu> with the harness stack`). Other records (another stack, or
/// the harness stack transferred to a GPU it was not measured on) get no validation fields.
pub fn annotate_specdec(rows: &mut crate::report::Rows, cat: &Catalog) {
    use serde_json::Value;
    for r in &mut rows.records {
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let gpu = field("gpu");
        if field("stack") != "harness" || field("latency_model") != "calibrated" {
            continue;
        }
        let rec = cat.recorded_validation(&gpu).ok().flatten();
        let lat = cat.latency(&gpu).ok();
        let sets_of = |costs: validate::Costs| -> Vec<&crate::catalog::RecordedSet> {
            rec.as_ref()
                .map(|r| {
                    r.set
                        .iter()
                        .filter(|s| s.technique == "specdec" && s.costs == costs.as_str())
                        .collect()
                })
                .unwrap_or_default()
        };
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
        if !sets.is_empty() {
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
            r.insert(
                "validation_applies_to".into(),
                Value::from(format!("{gpu} with the harness stack")),
            );
        }
    }
}
