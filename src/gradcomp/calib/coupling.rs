//! Rank coupling of a DDP step (issue 15): the time a multi-GPU step loses to its ranks meeting
//! at every collective, which neither the collective's α–β cost nor the overlap timeline holds.
//!
//! Measured by the harness's token steps (`perfcast-gpu gradcomp ddp --token-only 1`, rows with
//! params `token_only=1`): the step runs as usual but every timed collective moves one element,
//! so the ranks still rendezvous at each collective, in the same order and on the same streams,
//! while no data moves. Its excess over its no-communication twin (`step_s − step_nocomm_s`, the
//! same process, the same weights) is the coupling. Run 43 found it additive and independent of
//! the link: BERT `none` at NVLink and behind 5 GB/s exposed 3.8–7.4 ms over the twin with
//! one-element collectives, and the real step's data added what the α–β model predicts.
//!
//! The fit is the median excess over the token rows, separately for the two ways the harness
//! issues collectives: **async** (overlap on, every method but PowerSGD: the collectives run on
//! their own stream while backward continues) and **inline** (PowerSGD, whose second all-reduce
//! needs the first's result, or overlap off: the compute stream waits at each collective). The
//! predictor adds it once per multi-GPU step ([`super::step::predict_ddp`]); the twin does not
//! pay it. A median per step, not per collective: run 43's BERT (19 collectives) and GPT-2
//! PowerSGD (36) do not scale with the collective count (3.8–7.4 ms against 1.6–2.0 ms).
//!
//! Token rows are calibration micro-measurements: `perfcast validate` never scores them as DDP
//! steps.

use super::step::DdpRow;
use crate::validate::metrics::median;
use serde::{Deserialize, Serialize};

/// The fitted coupling, seconds per multi-GPU step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdpCoupling {
    /// Collectives on their own stream (overlap on, not PowerSGD): median token excess, seconds.
    pub async_s: f64,
    /// Token points behind `async_s` (0: copied from `inline_s`).
    pub async_points: usize,
    /// Collectives in line with compute (PowerSGD, or overlap off), seconds.
    pub inline_s: f64,
    /// Token points behind `inline_s` (0: copied from `async_s`).
    pub inline_points: usize,
    /// Sets fitted.
    pub sets: Vec<String>,
}

impl DdpCoupling {
    /// The coupling of one step of `method` (family name as `Method::family()`), seconds.
    pub fn of(&self, family: &str, overlap: bool) -> f64 {
        if is_inline(family, overlap) {
            self.inline_s
        } else {
            self.async_s
        }
    }
}

/// Whether the harness issues the step's collectives in line with compute.
pub fn is_inline(family: &str, overlap: bool) -> bool {
    family == "powersgd" || !overlap
}

/// The coupling of the token rows among `rows` (multi-GPU, with a twin), or `None` without any.
/// A mode without points takes the other mode's value (and says so with 0 points).
pub fn fit(rows: &[DdpRow]) -> Option<DdpCoupling> {
    let (mut a, mut i) = (Vec::new(), Vec::new());
    let mut sets: Vec<String> = Vec::new();
    for d in rows.iter().filter(|d| {
        d.token_only
            && d.step.world >= 2
            && super::step::superseded(&d.step.method.family(), None, &d.step.date).is_none()
    }) {
        let Some(n) = d.nocomm_s else { continue };
        let x = d.step.step_s - n;
        if is_inline(&d.step.method.family(), d.overlap) {
            i.push(x);
        } else {
            a.push(x);
        }
        sets.push(d.step.set.clone());
    }
    sets.sort();
    sets.dedup();
    let (an, inn) = (a.len(), i.len());
    let (ma, mi) = (median(a), median(i));
    let (async_s, inline_s) = match (ma, mi) {
        (None, None) => return None,
        (Some(x), None) => (x, x),
        (None, Some(y)) => (y, y),
        (Some(x), Some(y)) => (x, y),
    };
    Some(DdpCoupling {
        async_s,
        async_points: an,
        inline_s,
        inline_points: inn,
        sets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcomp::calib::step::StepRow;
    use crate::gradcomp::compressor::Method;

    fn row(method: &str, step_s: f64, nocomm: Option<f64>, token: bool, world: u32) -> DdpRow {
        DdpRow {
            step: StepRow {
                set: "s-token-run1".into(),
                model: "val-bert-base".into(),
                batch: 32,
                seq: "128".into(),
                method: Method::parse(method).unwrap(),
                world,
                bucket_bytes: 26214400.0,
                first_bucket_bytes: 1048576.0,
                step_s,
                date: "2026-12-01T00:00:00Z".into(),
            },
            overlap: true,
            transport: "default".into(),
            nocomm_s: nocomm,
            link_bytes_per_s: None,
            token_only: token,
        }
    }

    #[test]
    fn the_fit_is_the_median_token_excess_per_mode() {
        let rows = vec![
            // async: excesses 4, 7, 5 ms → median 5 ms.
            row("none", 0.164, Some(0.160), true, 2),
            row("fp16", 0.167, Some(0.160), true, 2),
            row("topk:density=0.01", 0.175, Some(0.170), true, 2),
            // inline (PowerSGD): 2 and 1 ms → 1.5 ms.
            row("powersgd:rank=4", 0.281, Some(0.279), true, 2),
            row("powersgd:rank=4", 0.280, Some(0.279), true, 2),
            // Ignored: a real step, a token step without a twin, one rank.
            row("none", 0.200, Some(0.160), false, 2),
            row("none", 0.200, None, true, 2),
            row("none", 0.200, Some(0.100), true, 1),
        ];
        let c = fit(&rows).unwrap();
        assert!((c.async_s - 0.005).abs() < 1e-12, "{c:?}");
        assert!((c.inline_s - 0.0015).abs() < 1e-12, "{c:?}");
        assert_eq!((c.async_points, c.inline_points), (3, 2));
        assert_eq!(c.sets, vec!["s-token-run1".to_string()]);
        assert_eq!(c.of("none", true), c.async_s);
        assert_eq!(c.of("none", false), c.inline_s);
        assert_eq!(c.of("powersgd", true), c.inline_s);
        // PowerSGD token steps timed before its orthogonalization kernel are not fitted.
        let mut old = rows.clone();
        for r in &mut old[3..5] {
            r.step.date = "2026-11-30T10:00:00Z".into();
        }
        let c = fit(&old).unwrap();
        assert_eq!((c.async_points, c.inline_points), (3, 0));
        assert_eq!(c.inline_s, c.async_s);
    }

    #[test]
    fn a_mode_without_points_borrows_the_other_and_no_token_rows_fit_nothing() {
        let c = fit(&[row("none", 0.166, Some(0.160), true, 2)]).unwrap();
        assert!((c.async_s - 0.006).abs() < 1e-12, "{c:?}");
        assert_eq!(c.inline_s, c.async_s);
        assert_eq!((c.async_points, c.inline_points), (1, 0));
        assert!(fit(&[row("none", 0.166, Some(0.160), false, 2)]).is_none());
    }
}
