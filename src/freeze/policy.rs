//! Freezing policies and their timelines (`--policy`).
//!
//! - `none`: every layer trains.
//! - `fixed:k=K[,from=STEP]`: the first K layers are frozen from iteration STEP on (default 0).
//! - `autofreeze[:interval=I,percentile=P]`: AutoFreeze (Liu, Agarwal, Venkataraman 2021,
//!   "AutoFreeze: Automatically Freezing Model Blocks to Accelerate Fine-tuning"). Every I
//!   iterations (default a tenth of the run), for each unfrozen layer `l` the gradient-norm change
//!   rate `r_l = |g_l(t − I) − g_l(t)| / g_l(t − I)` is computed; the threshold is the P-th
//!   percentile (default 50, the median; linear interpolation between order statistics) of the
//!   unfrozen layers' rates; the frozen prefix grows to just below the first unfrozen layer whose
//!   rate is at or above the threshold. It never shrinks, and never reaches the last layer.
//!   The norms are the trace's last records at or before each decision step; AutoFreeze itself
//!   accumulates each layer's gradient norm over the interval, so record that accumulated value in
//!   a trace to reproduce its decisions exactly.
//! - `freezeout[:schedule=linear|squared|cubic,t0=T]`: FreezeOut (Brock, Lim, Ritchie, Weston
//!   2017). Layer `i` of `L` stops training after a fraction
//!   `t_i = scale(t0 + (1 − t0) · i / (L − 1))` of the run (scale = identity, square or cube),
//!   i.e. from iteration `⌊t_i · T⌋ + 1` on; the last layer trains to the end. Defaults follow
//!   the FreezeOut code: cubic with t0 = 0.8 (0.512 after cubing), linear/squared with t0 = 0.5.

use super::gradnorm::GradNorms;
use super::schedule::Timeline;
use crate::check::{self, parse_f64, parse_int, parse_kv};
use crate::error::{Error, Result};

/// FreezeOut's scaling of the per-layer freeze time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// t_i linear in the layer index.
    Linear,
    /// Squared.
    Squared,
    /// Cubed: later layers get cubically more time.
    Cubic,
}

/// A freezing policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Nothing frozen.
    None,
    /// The first `k` layers frozen from iteration `from` on.
    Fixed {
        /// Frozen prefix length.
        k: usize,
        /// First frozen iteration.
        from: u64,
    },
    /// AutoFreeze replay of a gradient-norm trace.
    AutoFreeze {
        /// Evaluation interval in iterations (None: a tenth of the run).
        interval: Option<u64>,
        /// Threshold percentile of the unfrozen layers' change rates, in [0, 100].
        percentile: f64,
    },
    /// FreezeOut schedule.
    FreezeOut {
        /// Scaling of t_i.
        schedule: Scale,
        /// First layer's freeze point before scaling, fraction of the run in [0, 1].
        t0: f64,
    },
}

impl std::str::FromStr for Policy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Policy::parse(s)
    }
}

/// Policy names for error messages.
pub const POLICIES: &[&str] = &["none", "fixed", "autofreeze", "freezeout"];

impl Policy {
    /// Parses a `--policy` value (see the module docs). Layer-count checks happen in
    /// [`Policy::timeline`], where the model is known.
    ///
    /// # Errors
    /// Unknown policy or key, malformed or out-of-range values (percentile outside [0, 100], t0
    /// outside [0, 1], ...), each naming `policy.<key>`.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, rest) = check::split_name(s);
        match name.trim().to_ascii_lowercase().as_str() {
            "none" => {
                parse_kv("policy.none", rest, &[])?;
                Ok(Policy::None)
            }
            "fixed" => {
                let kv = parse_kv("policy.fixed", rest, &["k", "from"])?;
                let k = kv
                    .get("k")
                    .ok_or_else(|| {
                        Error::range(
                            "policy.fixed.k",
                            "missing",
                            "given as fixed:k=K (an integer >= 0)",
                        )
                    })
                    .and_then(|v| parse_int("policy.fixed.k", v, 0, i64::from(u32::MAX)))?
                    as usize;
                let from = kv
                    .get("from")
                    .map(|v| parse_int("policy.fixed.from", v, 0, i64::MAX))
                    .transpose()?
                    .unwrap_or(0) as u64;
                Ok(Policy::Fixed { k, from })
            }
            "autofreeze" => {
                let kv = parse_kv("policy.autofreeze", rest, &["interval", "percentile"])?;
                let interval = kv
                    .get("interval")
                    .map(|v| parse_int("policy.autofreeze.interval", v, 1, i64::MAX))
                    .transpose()?
                    .map(|x| x as u64);
                let percentile = kv
                    .get("percentile")
                    .map(|v| parse_f64("policy.autofreeze.percentile", v, 0.0, 100.0))
                    .transpose()?
                    .unwrap_or(50.0);
                Ok(Policy::AutoFreeze {
                    interval,
                    percentile,
                })
            }
            "freezeout" => {
                let kv = parse_kv("policy.freezeout", rest, &["schedule", "t0"])?;
                let schedule = match kv
                    .get("schedule")
                    .map(|v| v.to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("cubic") => Scale::Cubic,
                    Some("linear") => Scale::Linear,
                    Some("squared") => Scale::Squared,
                    Some(o) => {
                        return Err(Error::range(
                            "policy.freezeout.schedule",
                            o,
                            "one of linear, squared, cubic",
                        ))
                    }
                };
                let default_t0 = if schedule == Scale::Cubic { 0.8 } else { 0.5 };
                let t0 = kv
                    .get("t0")
                    .map(|v| parse_f64("policy.freezeout.t0", v, 0.0, 1.0))
                    .transpose()?
                    .unwrap_or(default_t0);
                Ok(Policy::FreezeOut { schedule, t0 })
            }
            other => Err(Error::unknown("policy", other, POLICIES.iter().copied())),
        }
    }

    /// Canonical text of the policy (parses back to the same policy).
    pub fn label(&self) -> String {
        match self {
            Policy::None => "none".into(),
            Policy::Fixed { k, from: 0 } => format!("fixed:k={k}"),
            Policy::Fixed { k, from } => format!("fixed:k={k},from={from}"),
            Policy::AutoFreeze {
                interval: None,
                percentile,
            } => format!("autofreeze:percentile={percentile}"),
            Policy::AutoFreeze {
                interval: Some(i),
                percentile,
            } => format!("autofreeze:interval={i},percentile={percentile}"),
            Policy::FreezeOut { schedule, t0 } => {
                let s = match schedule {
                    Scale::Linear => "linear",
                    Scale::Squared => "squared",
                    Scale::Cubic => "cubic",
                };
                format!("freezeout:schedule={s},t0={t0}")
            }
        }
    }

    /// Whether the policy needs gradient norms.
    pub fn needs_grad_norms(&self) -> bool {
        matches!(self, Policy::AutoFreeze { .. })
    }

    /// The frozen-prefix timeline of a run of `total_steps` iterations of a `layers`-layer model.
    ///
    /// # Errors
    /// `fixed` with `k > layers`; `autofreeze` without gradient norms or with norms for a
    /// different number of layers.
    pub fn timeline(
        &self,
        layers: usize,
        total_steps: u64,
        grads: Option<&GradNorms>,
    ) -> Result<Timeline> {
        let mut t = Timeline::new(total_steps);
        match self {
            Policy::None => {}
            Policy::Fixed { k, from } => {
                check::int_in("policy.fixed.k", *k as i64, 0, layers as i64)?;
                t.grow(*from, *k);
            }
            Policy::FreezeOut { schedule, t0 } => {
                for i in 0..layers.saturating_sub(1) {
                    let x = t0 + (1.0 - t0) * i as f64 / (layers - 1) as f64;
                    let ti = match schedule {
                        Scale::Linear => x,
                        Scale::Squared => x * x,
                        Scale::Cubic => x * x * x,
                    };
                    // FreezeOut deactivates a layer once the iteration counter exceeds t_i · T.
                    let step = (ti * total_steps as f64).floor() as u64 + 1;
                    t.grow(step, i + 1);
                }
            }
            Policy::AutoFreeze {
                interval,
                percentile,
            } => {
                let g = grads.ok_or_else(|| {
                    Error::range(
                        "--grad-norms",
                        "missing",
                        "a gradient-norm trace (or the synthetic generator) for autofreeze",
                    )
                })?;
                if g.by_layer.len() != layers {
                    return Err(Error::range(
                        "grad_norms.layers",
                        g.by_layer.len(),
                        format!("{layers} (the model's layers)"),
                    ));
                }
                let interval = interval.unwrap_or((total_steps / 10).max(1));
                autofreeze(&mut t, layers, interval, *percentile, g);
            }
        }
        Ok(t)
    }
}

/// The `p`-th percentile (0–100) of `xs` by linear interpolation between order statistics
/// (rank `p/100 · (n − 1)`, as numpy's default). `xs` must be non-empty and NaN-free.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let r = p / 100.0 * (v.len() - 1) as f64;
    let lo = r.floor() as usize;
    let hi = r.ceil() as usize;
    if lo == hi {
        // Exactly an order statistic (also keeps +∞ rates from turning into ∞ − ∞ = NaN).
        return v[lo];
    }
    v[lo] + (v[hi] - v[lo]) * (r - lo as f64)
}

/// AutoFreeze's change rate `|g_prev − g_now| / g_prev` (0 when both are 0, +∞ when only
/// `g_prev` is 0).
pub fn change_rate(g_prev: f64, g_now: f64) -> f64 {
    if g_prev == 0.0 {
        if g_now == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (g_prev - g_now).abs() / g_prev
    }
}

/// Replays AutoFreeze over the trace: decisions at steps `interval, 2·interval, … < T`, each
/// comparing the norms last observed at or before `t − interval` and `t`. A decision is skipped
/// when some unfrozen layer has no record at or before `t − interval`.
fn autofreeze(t: &mut Timeline, layers: usize, interval: u64, p: f64, g: &GradNorms) {
    let mut frozen = 0usize;
    let mut step = interval;
    while step < t.total_steps && frozen + 1 < layers {
        let rates: Option<Vec<f64>> = (frozen..layers)
            .map(|l| Some(change_rate(g.at(l, step - interval)?, g.at(l, step)?)))
            .collect();
        if let Some(rates) = rates {
            let thr = percentile(&rates, p);
            if let Some(first) = rates.iter().position(|r| *r >= thr) {
                if first > 0 {
                    frozen += first;
                    t.grow(step, frozen);
                }
            }
        }
        step = match step.checked_add(interval) {
            Some(s) => s,
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freeze::profile::Profile;
    use std::path::Path;

    #[test]
    fn parse_and_label_round_trip() {
        for s in [
            "none",
            "fixed:k=6",
            "fixed:k=3,from=100",
            "autofreeze:percentile=50",
            "autofreeze:interval=7,percentile=25",
            "freezeout:schedule=linear,t0=0.5",
            "freezeout:schedule=cubic,t0=0.8",
        ] {
            let p = Policy::parse(s).unwrap();
            assert_eq!(p.label(), s);
            assert_eq!(Policy::parse(&p.label()).unwrap(), p);
        }
        assert_eq!(
            Policy::parse("freezeout").unwrap(),
            Policy::FreezeOut {
                schedule: Scale::Cubic,
                t0: 0.8
            }
        );
        assert_eq!(
            Policy::parse("autofreeze").unwrap(),
            Policy::AutoFreeze {
                interval: None,
                percentile: 50.0
            }
        );
    }

    #[test]
    fn bad_policies_are_one_line() {
        for (s, needle) in [
            (
                "autofreeze:percentile=101",
                "policy.autofreeze.percentile = 101: must be in [0, 100]",
            ),
            ("autofreeze:percentile=-1", "percentile = -1"),
            ("autofreeze:interval=0", "policy.autofreeze.interval = 0"),
            ("fixed", "policy.fixed.k = missing"),
            ("fixed:k=-2", "policy.fixed.k = -2"),
            ("fixed:k=2,k=3", "given once"),
            ("fixed:j=2", "policy.fixed.j"),
            ("freezeout:schedule=cube", "one of linear, squared, cubic"),
            ("freezeout:t0=2", "policy.freezeout.t0 = 2"),
            ("autofrieze", "did you mean 'autofreeze'"),
        ] {
            let e = Policy::parse(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
        let e = Policy::parse("fixed:k=13")
            .unwrap()
            .timeline(12, 10, None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "policy.fixed.k = 13: must be an integer in [0, 12]");
        assert!(Policy::parse("autofreeze")
            .unwrap()
            .timeline(12, 10, None)
            .unwrap_err()
            .to_string()
            .contains("--grad-norms"));
    }

    #[test]
    fn percentile_hand_values() {
        // Tolerance 1e-12 (exact arithmetic on small decimals).
        assert!((percentile(&[3.0, 1.0, 2.0, 4.0], 50.0) - 2.5).abs() < 1e-12);
        assert!((percentile(&[3.0, 1.0, 2.0], 50.0) - 2.0).abs() < 1e-12);
        assert_eq!(percentile(&[5.0, 1.0], 0.0), 1.0);
        assert_eq!(percentile(&[5.0, 1.0], 100.0), 5.0);
        assert!((percentile(&[0.0, 10.0], 25.0) - 2.5).abs() < 1e-12);
        assert_eq!(
            percentile(&[f64::INFINITY, 1.0, f64::INFINITY], 50.0),
            f64::INFINITY
        );
    }

    #[test]
    fn freezeout_linear_hand_timeline() {
        // L = 5, T = 100, t0 = 0.5 linear: t_i = 0.5, 0.625, 0.75, 0.875 (layer 4 never):
        // frozen from steps 51, 63, 76, 88.
        let t = Policy::parse("freezeout:schedule=linear,t0=0.5")
            .unwrap()
            .timeline(5, 100, None)
            .unwrap();
        let got: Vec<(u64, usize)> = t
            .changes
            .iter()
            .map(|c| (c.step, c.frozen_layers))
            .collect();
        assert_eq!(got, vec![(0, 0), (51, 1), (63, 2), (76, 3), (88, 4)]);
        // Cubic t0 = 0.8 on 2 layers: layer 0 at 0.512·1000 → step 513.
        let t = Policy::parse("freezeout")
            .unwrap()
            .timeline(2, 1000, None)
            .unwrap();
        assert_eq!(
            t.changes[1],
            super::super::schedule::Change {
                step: 513,
                frozen_layers: 1
            }
        );
    }

    /// The hand-made trace of `tests/it/freeze.rs`'s CLI test too: 4 layers, interval 10, run 40.
    pub(crate) const HAND_TRACE: &str = "step,layer,grad_norm
0,0,1.0
0,1,1.0
0,2,1.0
0,3,1.0
10,0,0.95
10,1,0.5
10,2,0.5
10,3,0.5
20,0,0.94
20,1,0.49
20,2,0.25
20,3,0.25
30,0,0.93
30,1,0.485
30,2,0.245
30,3,0.1
";

    #[test]
    fn autofreeze_hand_worked_timeline() {
        // Step 10: rates 0.05, 0.5, 0.5, 0.5; median 0.5; first ≥ 0.5 is layer 1 → freeze 1.
        // Step 20: layers 1..3 rates 0.02, 0.5, 0.5; median 0.5; first ≥ is layer 2 → freeze 2.
        // Step 30: layers 2, 3 rates 0.02, 0.6; median 0.31; first ≥ is layer 3 → freeze 3.
        let prof = Profile::uniform(4, 1).unwrap();
        let g = GradNorms::parse(HAND_TRACE, Path::new("hand.csv"), &prof).unwrap();
        let t = Policy::parse("autofreeze:interval=10")
            .unwrap()
            .timeline(4, 40, Some(&g))
            .unwrap();
        let got: Vec<(u64, usize)> = t
            .changes
            .iter()
            .map(|c| (c.step, c.frozen_layers))
            .collect();
        assert_eq!(got, vec![(0, 0), (10, 1), (20, 2), (30, 3)]);
        // Percentile 100: the threshold is the largest rate. Step 10: first at max (0.5) is layer
        // 1 → 1. Step 20: layers 1..3 rates 0.02, 0.5, 0.5 → layer 2 → 2. Step 30: 0.02, 0.6 → 3.
        // Percentile 0: the threshold is the smallest rate, reached by the first unfrozen layer
        // itself, so nothing ever freezes.
        let t0 = Policy::parse("autofreeze:interval=10,percentile=0")
            .unwrap()
            .timeline(4, 40, Some(&g))
            .unwrap();
        assert_eq!(t0.final_frozen(), 0);
        // Default interval = a tenth of the run (40 → 4): decisions at 4, 8, ... compare records
        // at or before t − 4 and t; at step 4 all are the step-0 records → rates 0, threshold 0,
        // first layer at it = the first unfrozen → no freeze until new records appear (step 12
        // sees step-10 vs step-8 = step-0 records).
        let td = Policy::parse("autofreeze")
            .unwrap()
            .timeline(4, 40, Some(&g))
            .unwrap();
        assert_eq!(td.frozen_at(11), 0);
        assert_eq!(td.frozen_at(12), 1);
    }
}
