//! Calibration: model parameters fitted from measurements (`models/calibration/<gpu>.toml`).
//!
//! A calibration file overrides the catalog's latency defaults for one GPU:
//!
//! ```toml
//! [latency]
//! flops_efficiency = 0.62
//! bw_efficiency = 0.81
//! layer_overhead_s = 9.1e-6
//! step_overhead_s = 4.0e-5
//! ```

use crate::catalog::{Catalog, LatencyDefaults};
use crate::error::Result;

#[derive(serde::Deserialize)]
struct CalibFile {
    latency: LatencyDefaults,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// The latency-model parameters to use for `gpu`: its calibration file when the catalog has one,
/// else the catalog defaults.
///
/// # Errors
/// Unknown GPU, or a calibration file that exists but is malformed or out of range.
pub fn latency_for(cat: &Catalog, gpu: &str) -> Result<LatencyDefaults> {
    let g = cat.gpu(gpu)?;
    let rel = format!("calibration/{}.toml", g.name);
    match cat.read_text(&rel) {
        Ok((text, path)) => {
            let f: CalibFile = crate::catalog::parse_toml_str(&text, &path)?;
            f.latency.validate(&format!("{}.latency", path.display()))?;
            Ok(f.latency)
        }
        Err(_) => Ok(g.latency),
    }
}

/// Whether a calibration file exists for `gpu`.
pub fn is_calibrated(cat: &Catalog, gpu: &str) -> bool {
    cat.read_text(&format!("calibration/{gpu}.toml")).is_ok()
}

/// One line for reports saying how far a technique's predictions have been checked against
/// measurements (from the committed validation sets).
pub fn validation_note(technique: &str) -> String {
    format!("no committed measurement set validates `{technique}` yet: treat these numbers as uncalibrated model output")
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
        assert_eq!(latency_for(&c, "a10g").unwrap().bw_efficiency, 0.5);
        assert!(is_calibrated(&c, "a10g"));
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "[latency]\nflops_efficiency = 1.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        assert!(latency_for(&c, "a10g")
            .unwrap_err()
            .to_string()
            .contains("flops_efficiency = 1.5"));
    }
}
