//! The host's launch probe (issue 14): what one small kernel launch costs the CPU that issues it,
//! recorded with every codec micro run, and why predictions are not scaled by it.
//!
//! Launch-bound codec calls run at the dispatch speed of their host, not of the GPU: with run
//! 48's calibration, the same codec calls on four fresh H200 hosts (runs 49, 50, 52, 53) had
//! MAPE 9.1%, 15.3%, 18.8% and 10.7%; by the calls' measured time, those under 100 µs carried
//! most of it (run 50: 22.8% under 20 µs, 12.9% at 100 µs and more), and run 50's randomk and
//! topk calls of 13–90 µs took 1.4–1.6× run 48's while their large calls agreed within 1%.
//! The harness's codec micro run times the smallest candle op (`affine` on a one-element
//! tensor: an allocation and one launch) under the codec protocol before its first method and
//! after its last (rows of kind `host`, model `candle-affine`, params
//! `op=launch;elems=1;at=start|end;pool=…`, metric `time_s`); a run's probe is the mean of its
//! rows. The hypothesis was that scaling every fitted launch term by the ratio of two hosts'
//! probes carries the fit to another host. It does not: the probe said run 50's host was 0.85×
//! the calibration host while its launch-bound calls were 1.4–1.6×, and scaling moved the four
//! hold-outs' MAPE to 8.6%, 18.9%, 17.2% and 10.6% (mean 13.8% against 13.5% unscaled). So
//! `validate` prices every set unscaled and reports, per set, the error scaling would have given
//! ([`factor`]), which keeps the probe's record next to each hold-out for a better probe later.

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

/// The mean launch probe of the hosts of `sets` that timed one, seconds.
pub fn of_sets(hosts: &HostLaunches, sets: &[String]) -> Option<f64> {
    let v: Vec<f64> = sets.iter().filter_map(|s| of_set(hosts, s)).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
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
    fn a_runs_probe_is_the_mean_of_its_rows_and_the_factor_their_ratio() {
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
