//! The host's launch cost (issue 14): what one kernel launch costs the CPU that issues it.
//!
//! Launch-bound codec stages run at the dispatch rate of the host CPU, not the GPU's: run 46's
//! host ran PowerSGD's `q` (then 50–900 launches per call) 1.52× slower than run 44's on the
//! same GPU model, while bandwidth-bound stages agreed within 1–3%. The harness's codec micro
//! run times the smallest candle op (`affine` on a one-element tensor: an allocation and one
//! launch) under the codec protocol before its first method and after its last (rows of kind
//! `host`, model `candle-affine`, params `op=launch;elems=1;at=start|end`, metric `time_s`).
//! A run's host launch cost is the mean of its rows; a set measured on another host than the
//! codec calibration's has every fitted launch term (`CodecCost::launch_s`) scaled by the
//! ratio of the two. Sets of runs without a host row, or predicted from a calibration without
//! one, are not scaled (and `validate` says so).

use super::run_number;
use crate::error::Result;
use crate::measure::Measurements;
use std::collections::BTreeMap;

/// Host launch cost per run number: (mean seconds per launch, rows).
pub type HostLaunches = BTreeMap<u64, (f64, usize)>;

/// The host launch rows of `rows` by run number (a set without a `-runN` suffix is skipped).
///
/// # Errors
/// A host row whose `time_s` is not a positive finite number, naming file and line.
pub fn launches(rows: &Measurements) -> Result<HostLaunches> {
    let mut acc: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for (o, r) in &rows.rows {
        if r.kind != "host" || r.metric != "time_s" {
            continue;
        }
        if !(r.value > 0.0 && r.value.is_finite()) {
            return Err(o.err(format!(
                "host time_s = {}: seconds per launch, > 0",
                r.value
            )));
        }
        if let Some(n) = run_number(&r.set) {
            let e = acc.entry(n).or_default();
            e.0 += r.value;
            e.1 += 1;
        }
    }
    Ok(acc
        .into_iter()
        .map(|(n, (sum, k))| (n, (sum / k as f64, k)))
        .collect())
}

/// The launch cost of the host that measured `set`, seconds, if its run timed one.
pub fn of_set(hosts: &HostLaunches, set: &str) -> Option<f64> {
    run_number(set).and_then(|n| hosts.get(&n)).map(|h| h.0)
}

/// The factor on the fitted launch terms for a set measured on the host of `set`, predicted from
/// a calibration whose host launch cost is `cal_s`: `host(set) / cal_s`, or `None` (no scaling)
/// when either is unknown.
pub fn factor(hosts: &HostLaunches, set: &str, cal_s: Option<f64>) -> Option<f64> {
    Some(of_set(hosts, set)? / cal_s?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Origin, Row};

    fn row(set: &str, kind: &str, v: f64) -> (Origin, Row) {
        (
            Origin {
                file: std::path::Path::new("t.csv").into(),
                line: 2,
            },
            Row {
                set: set.into(),
                kind: kind.into(),
                model: "candle-affine".into(),
                metric: "time_s".into(),
                value: v,
                ..Row::default()
            },
        )
    }

    #[test]
    fn a_runs_launch_cost_is_the_mean_of_its_rows_and_scales_by_the_ratio() {
        let rows = Measurements {
            technique: "gradcomp".into(),
            rows: vec![
                row("h200-gradcomp-codec-run48", "host", 2e-6),
                row("h200-gradcomp-codec-run48", "host", 3e-6),
                row("h200-gradcomp-codec-holdout-run49", "host", 5e-6),
                row("h200-gradcomp-codec-run48", "codec", 9.0),
                row("no-run-suffix", "host", 1e-6),
            ],
            ..Measurements::default()
        };
        let h = launches(&rows).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[&48].1, 2);
        assert!((h[&48].0 - 2.5e-6).abs() < 1e-18);
        let cal = of_set(&h, "h200-gradcomp-codec-run48");
        // Another set of run 49 (its steps) shares the run's host.
        let f = factor(&h, "h200-gradcomp-holdout-run49", cal).unwrap();
        assert!((f - 2.0).abs() < 1e-12);
        assert_eq!(factor(&h, "h200-gradcomp-holdout-run46", cal), None);
        assert_eq!(factor(&h, "h200-gradcomp-holdout-run49", None), None);
        let bad = Measurements {
            technique: "gradcomp".into(),
            rows: vec![row("x-run1", "host", -1.0)],
            ..Measurements::default()
        };
        let e = launches(&bad).unwrap_err().to_string();
        assert!(e.contains("t.csv") && e.contains("time_s = -1"), "{e}");
    }
}
