//! The registry of techniques that `perfcast calibrate` and `perfcast validate` hand measurement
//! rows to, by the rows' `technique` column. A technique plugs in by implementing
//! [`Technique`] (a fit of its micro-measurements and a predictor of its end-to-end rows) and
//! adding one line to [`ALL`]; no other technique changes.
//!
//! Top layer, like the scenario runner: it names every calibrated technique.

use crate::error::{Error, Result};
use crate::measure::{read_by_technique, Measurements};
use crate::validate::Technique;
use std::path::PathBuf;

/// Every technique with a calibration and a validation predictor.
pub const ALL: &[&dyn Technique] = &[
    &crate::specdec::calib::run::Specdec,
    &crate::freeze::calib::run::Freeze,
    &crate::embcache::calib::run::Embcache,
    &crate::gradcomp::calib::run::Gradcomp,
];

/// Their names, in [`ALL`] order.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|t| t.name()).collect()
}

/// Reads `paths` and hands back each technique that has rows, with its rows, in [`ALL`] order.
///
/// # Errors
/// As [`read_by_technique`] (a row of an unknown technique names it and the known ones); no
/// row at all in `paths`.
pub fn route(paths: &[PathBuf]) -> Result<Vec<(&'static dyn Technique, Measurements)>> {
    let parts = read_by_technique(paths, &names())?;
    if parts.is_empty() {
        let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::range(
            "measurement rows",
            format!("none in [{}]", files.join(", ")),
            format!(
                "at least one row of a known technique ({})",
                names().join(", ")
            ),
        ));
    }
    Ok(parts
        .into_iter()
        .filter_map(|m| {
            ALL.iter()
                .find(|t| t.name() == m.technique)
                .map(|t| (*t, m))
        })
        .collect())
}
