//! How far a `perfcast gradcomp` prediction can be trusted, from the recorded validation of its
//! GPU (`calibration/<gpu>-validation.toml`, written by `perfcast validate --record`): the
//! measured error of the calibrated codec costs it used and of the step-time model, cited next
//! to the prediction as specdec cites its own ([`crate::specdec::calib::annotate_specdec`]).
//!
//! Only hold-out sets count (measured on a fresh machine and only ever predicted): the codec
//! calls of the execution mode the prediction priced (`…-codec-graph-holdout-…` for
//! `--codec-exec graph`, `…-codec-holdout-…` for eager hooks) and the harness's real training
//! steps (`…-gradcomp-holdout-…` on one GPU, `…x2-gradcomp-holdout-…` with DDP on two). Each
//! figure is the worst set's: a what-if at other shapes, hosts or scales may land anywhere in
//! that spread, and beyond two GPUs the step model is not measured (`validation_applies_to`).

use crate::catalog::{Catalog, RecordedSet};

/// The recorded hold-out sets of `rec` that cite the codec costs of `exec` (`eager`, `graph`).
pub fn codec_holdouts<'a>(rec: &'a [RecordedSet], exec: &str) -> Vec<&'a RecordedSet> {
    let tag = if exec == "graph" {
        "-codec-graph-holdout-"
    } else {
        "-codec-holdout-"
    };
    rec.iter()
        .filter(|s| s.technique == "gradcomp" && s.set.contains(tag))
        .collect()
}

/// The recorded hold-out sets of `rec` that time real training steps (one GPU, or DDP on two).
pub fn step_holdouts(rec: &[RecordedSet]) -> Vec<&RecordedSet> {
    rec.iter()
        .filter(|s| s.technique == "gradcomp" && s.set.contains("gradcomp-holdout-"))
        .collect()
}

/// (worst set's MAPE, worst point's |relative error|, sets), `None` without sets.
fn worst(sets: &[&RecordedSet]) -> Option<(f64, f64, usize)> {
    (!sets.is_empty()).then(|| {
        (
            sets.iter().map(|s| s.mape).fold(0.0, f64::max),
            sets.iter().map(|s| s.max_abs_pct_err).fold(0.0, f64::max),
            sets.len(),
        )
    })
}

/// Adds the validation fields to every record of a `perfcast gradcomp` result whose codec costs
/// are calibrated (`codec_costs` = `calibrated` or `calibrated (graph-replayed)`) and whose GPU
/// has a recorded validation: `codec_validation_mape`, `codec_validation_max_abs_pct_err` and
/// `codec_validation_sets` (per codec call, hold-outs of the priced execution mode),
/// `step_validation_mape`, `step_validation_max_abs_pct_err`, `step_validation_sets` (per
/// training step) and `validation_applies_to`. Records priced with datasheet codec costs get
/// none: nothing measured them.
pub fn annotate_gradcomp(rows: &mut crate::report::Rows, cat: &Catalog) {
    use serde_json::Value;
    for r in &mut rows.records {
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let costs = field("codec_costs");
        if !costs.starts_with("calibrated") {
            continue;
        }
        let gpu = field("gpu");
        let Some(rec) = cat.recorded_validation(&gpu).ok().flatten() else {
            continue;
        };
        let exec = if costs.contains("graph-replayed") {
            "graph"
        } else {
            "eager"
        };
        let codec = worst(&codec_holdouts(&rec.set, exec));
        let step = worst(&step_holdouts(&rec.set));
        for (prefix, w) in [("codec", codec), ("step", step)] {
            if let Some((mape, max, n)) = w {
                r.insert(format!("{prefix}_validation_mape"), Value::from(mape));
                r.insert(
                    format!("{prefix}_validation_max_abs_pct_err"),
                    Value::from(max),
                );
                r.insert(format!("{prefix}_validation_sets"), Value::from(n));
            }
        }
        if codec.is_some() || step.is_some() {
            r.insert(
                "validation_applies_to".into(),
                Value::from(format!(
                    "{gpu} with the harness codecs ({exec} calls, hold-out sets' worst); steps on 1-2 GPUs"
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, mape: f64, max: f64) -> RecordedSet {
        RecordedSet {
            technique: "gradcomp".into(),
            set: name.into(),
            costs: "calibrated".into(),
            points: 10,
            mape,
            max_abs_pct_err: max,
            pass: false,
        }
    }

    /// Graph and eager hold-outs are told apart by name; calibration sets and other techniques'
    /// sets never count; step hold-outs include the two-GPU DDP ones.
    #[test]
    fn holdouts_are_picked_by_mode_and_kind() {
        let mut other = set("h200-gradcomp-codec-holdout-run9", 0.9, 0.9);
        other.technique = "specdec".into();
        let rec = vec![
            set("h200-gradcomp-codec-graph-holdout-run68", 0.05, 0.39),
            set("h200-gradcomp-codec-graph-holdout-other-run68", 0.07, 1.16),
            set("h200-gradcomp-codec-graph-run61", 0.01, 0.01),
            set("h200-gradcomp-codec-holdout-run59", 0.076, 0.39),
            set("h200-gradcomp-codec-run48", 0.02, 0.02),
            set("h200-gradcomp-holdout-run59", 0.015, 0.047),
            set("h200x2-gradcomp-holdout-run49", 0.022, 0.045),
            set("h200-gradcomp-e2e-run48", 0.5, 0.5),
            other,
        ];
        assert_eq!(worst(&codec_holdouts(&rec, "graph")), Some((0.07, 1.16, 2)));
        assert_eq!(
            worst(&codec_holdouts(&rec, "eager")),
            Some((0.076, 0.39, 1))
        );
        assert_eq!(worst(&step_holdouts(&rec)), Some((0.022, 0.047, 2)));
        assert_eq!(worst(&[]), None);
    }
}
