//! Freezing policies, mirroring the library's definitions (`src/freeze/policy.rs`,
//! `src/freeze/schedule.rs`) line for line so a real run's timeline can be compared with the
//! prediction: same syntax (`none`, `fixed:k=K[,from=S]`, `autofreeze[:interval=I,percentile=P]`,
//! `freezeout[:schedule=linear|squared|cubic,t0=T]`), same FreezeOut steps, and AutoFreeze's
//! rule (change rate `|g(t−I) − g(t)| / g(t−I)` of each unfrozen unit, the P-th percentile by
//! linear interpolation, the prefix grows to just below the first unit at or above it, never to
//! the last unit), evaluated online on the real accumulated gradient norms.

use std::collections::BTreeMap;

/// A policy (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Nothing frozen.
    None,
    /// The first `k` units frozen from iteration `from` on.
    Fixed {
        /// Frozen prefix.
        k: usize,
        /// First frozen iteration.
        from: u64,
    },
    /// AutoFreeze, online.
    AutoFreeze {
        /// Evaluation interval (None: a tenth of the run, at least 1).
        interval: Option<u64>,
        /// Percentile in [0, 100].
        percentile: f64,
    },
    /// FreezeOut schedule.
    FreezeOut {
        /// 1 linear, 2 squared, 3 cubic.
        power: i32,
        /// First unit's freeze point before scaling.
        t0: f64,
    },
}

fn kv(s: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("policy {part}: expected key=value"))?;
        if !allowed.contains(&k.trim()) {
            return Err(format!(
                "policy key {}: expected one of {}",
                k.trim(),
                allowed.join(", ")
            ));
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("policy {key} = {v}: expected a number"))
}

impl Policy {
    /// Parses the library's policy syntax.
    ///
    /// # Errors
    /// One line naming the policy key and value.
    pub fn parse(s: &str) -> Result<Policy, String> {
        let (name, rest) = s.trim().split_once(':').unwrap_or((s.trim(), ""));
        match name {
            "none" => Ok(Policy::None),
            "fixed" => {
                let m = kv(rest, &["k", "from"])?;
                let k = num("fixed.k", m.get("k").ok_or("policy fixed: needs k=K")?)?;
                let from = m.get("from").map(|v| num("fixed.from", v)).transpose()?;
                Ok(Policy::Fixed {
                    k,
                    from: from.unwrap_or(0),
                })
            }
            "autofreeze" => {
                let m = kv(rest, &["interval", "percentile"])?;
                let interval: Option<u64> = m
                    .get("interval")
                    .map(|v| num("autofreeze.interval", v))
                    .transpose()?;
                if interval == Some(0) {
                    return Err("policy autofreeze.interval = 0: expected >= 1".into());
                }
                let percentile: f64 = m
                    .get("percentile")
                    .map(|v| num("autofreeze.percentile", v))
                    .transpose()?
                    .unwrap_or(50.0);
                if !(0.0..=100.0).contains(&percentile) {
                    return Err(format!(
                        "policy autofreeze.percentile = {percentile}: expected [0, 100]"
                    ));
                }
                Ok(Policy::AutoFreeze {
                    interval,
                    percentile,
                })
            }
            "freezeout" => {
                let m = kv(rest, &["schedule", "t0"])?;
                let power = match m.get("schedule").map(String::as_str) {
                    None | Some("cubic") => 3,
                    Some("squared") => 2,
                    Some("linear") => 1,
                    Some(o) => {
                        return Err(format!(
                            "policy freezeout.schedule = {o}: expected linear, squared or cubic"
                        ))
                    }
                };
                let t0: f64 = m
                    .get("t0")
                    .map(|v| num("freezeout.t0", v))
                    .transpose()?
                    .unwrap_or(if power == 3 { 0.8 } else { 0.5 });
                if !(0.0..=1.0).contains(&t0) {
                    return Err(format!("policy freezeout.t0 = {t0}: expected [0, 1]"));
                }
                Ok(Policy::FreezeOut { power, t0 })
            }
            o => Err(format!(
                "policy {o}: expected none, fixed:k=K, autofreeze[:interval=I,percentile=P] or freezeout[:schedule=S,t0=T]"
            )),
        }
    }

    /// Canonical text (the library's `Policy::label`).
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
            Policy::FreezeOut { power, t0 } => {
                let s = ["", "linear", "squared", "cubic"][*power as usize];
                format!("freezeout:schedule={s},t0={t0}")
            }
        }
    }

    /// The decision interval AutoFreeze uses on a run of `total` iterations.
    pub fn interval(&self, total: u64) -> Option<u64> {
        match self {
            Policy::AutoFreeze { interval, .. } => Some(interval.unwrap_or((total / 10).max(1))),
            _ => None,
        }
    }

    /// The timeline of the policies decided in advance (`none`, `fixed`, `freezeout`) for
    /// `units` units and `total` iterations; AutoFreeze starts empty and grows online.
    ///
    /// # Errors
    /// `fixed` with `k > units`.
    pub fn planned(&self, units: usize, total: u64) -> Result<Timeline, String> {
        let mut t = Timeline::new(total);
        match self {
            Policy::None | Policy::AutoFreeze { .. } => {}
            Policy::Fixed { k, from } => {
                // The head (last unit) always trains here: k = units would leave nothing to
                // train (the library allows it as a cost what-if).
                if *k >= units {
                    return Err(format!(
                        "policy fixed.k = {k}: expected [0, {}]",
                        units.saturating_sub(1)
                    ));
                }
                t.grow(*from, *k);
            }
            Policy::FreezeOut { power, t0 } => {
                for i in 0..units.saturating_sub(1) {
                    let x = t0 + (1.0 - t0) * i as f64 / (units - 1) as f64;
                    let ti = x.powi(*power);
                    let step = (ti * total as f64).floor() as u64 + 1;
                    t.grow(step, i + 1);
                }
            }
        }
        Ok(t)
    }
}

/// A non-decreasing frozen-prefix schedule (the library's `Timeline`): `(step, frozen)` changes,
/// the first at step 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// Iterations of the run.
    pub total_steps: u64,
    /// Changes `(first iteration, frozen units)`.
    pub changes: Vec<(u64, usize)>,
}

impl Timeline {
    /// Nothing frozen.
    pub fn new(total_steps: u64) -> Timeline {
        Timeline {
            total_steps,
            changes: vec![(0, 0)],
        }
    }

    /// Freezes `k` from `step` on; ignored unless it grows the prefix within the run.
    pub fn grow(&mut self, step: u64, k: usize) {
        if step >= self.total_steps {
            return;
        }
        let (ls, lk) = *self.changes.last().unwrap_or(&(0, 0));
        if k <= lk || step < ls {
            return;
        }
        if step == ls {
            if let Some(c) = self.changes.last_mut() {
                c.1 = k;
            }
        } else {
            self.changes.push((step, k));
        }
    }

    /// Frozen units during iteration `step`.
    pub fn frozen_at(&self, step: u64) -> usize {
        let i = self.changes.partition_point(|c| c.0 <= step);
        if i == 0 {
            0
        } else {
            self.changes[i - 1].1
        }
    }
}

/// The library's percentile: linear interpolation between order statistics.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let r = p / 100.0 * (v.len() - 1) as f64;
    let lo = r.floor() as usize;
    let hi = r.ceil() as usize;
    if lo == hi {
        return v[lo];
    }
    v[lo] + (v[hi] - v[lo]) * (r - lo as f64)
}

/// The library's change rate `|g_prev − g_now| / g_prev` (0 when both are 0, +∞ when only
/// `g_prev` is).
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

/// Recorded per-unit gradient norms: `by_unit[u]` = `(step, norm)` sorted by step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Norms {
    /// Records per unit.
    pub by_unit: Vec<Vec<(u64, f64)>>,
}

impl Norms {
    /// Empty records for `units` units.
    pub fn new(units: usize) -> Norms {
        Norms {
            by_unit: vec![Vec::new(); units],
        }
    }

    /// The last norm of `u` at or before `step` (the library's `GradNorms::at`).
    pub fn at(&self, u: usize, step: u64) -> Option<f64> {
        let r = self.by_unit.get(u)?;
        let i = r.partition_point(|(s, _)| *s <= step);
        (i > 0).then(|| r[i - 1].1)
    }

    /// The trace as `step,layer,grad_norm` CSV (what `perfcast freeze --grad-norms` reads), rows
    /// sorted by step then unit, layers named by `names`.
    pub fn to_csv(&self, names: &[String]) -> String {
        let mut rows: Vec<(u64, usize, f64)> = self
            .by_unit
            .iter()
            .enumerate()
            .flat_map(|(u, r)| r.iter().map(move |(s, g)| (*s, u, *g)))
            .collect();
        rows.sort_by_key(|r| (r.0, r.1));
        let mut out = String::from("step,layer,grad_norm\n");
        for (s, u, g) in rows {
            out.push_str(&format!("{s},{},{g:e}\n", names[u]));
        }
        out
    }
}

/// One AutoFreeze decision at step `step` (a multiple of `interval`, `step < total`) with
/// `frozen` units frozen: the new prefix length (unchanged when a unit lacks a record at or
/// before `step − interval`, or the first unit at or above the threshold is the first unfrozen).
pub fn autofreeze_decision(
    norms: &Norms,
    units: usize,
    frozen: usize,
    step: u64,
    interval: u64,
    p: f64,
) -> usize {
    if frozen + 1 >= units {
        return frozen;
    }
    let rates: Option<Vec<f64>> = (frozen..units)
        .map(|l| {
            Some(change_rate(
                norms.at(l, step - interval)?,
                norms.at(l, step)?,
            ))
        })
        .collect();
    if let Some(rates) = rates {
        let thr = percentile(&rates, p);
        if let Some(first) = rates.iter().position(|r| *r >= thr) {
            return frozen + first;
        }
    }
    frozen
}

/// Replays AutoFreeze over recorded norms (the library's `autofreeze` replay): decisions at
/// `interval, 2·interval, … < total`.
pub fn replay_autofreeze(
    norms: &Norms,
    units: usize,
    total: u64,
    interval: u64,
    p: f64,
) -> Timeline {
    let mut t = Timeline::new(total);
    let mut frozen = 0;
    let mut step = interval;
    while step < total && frozen + 1 < units {
        let f = autofreeze_decision(norms, units, frozen, step, interval, p);
        if f > frozen {
            frozen = f;
            t.grow(step, frozen);
        }
        step += interval;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_hand_examples() {
        // src/freeze/policy.rs: L = 5, T = 100, linear t0 = 0.5 → 51, 63, 76, 88.
        let t = Policy::parse("freezeout:schedule=linear,t0=0.5")
            .unwrap()
            .planned(5, 100)
            .unwrap();
        assert_eq!(t.changes, vec![(0, 0), (51, 1), (63, 2), (76, 3), (88, 4)]);
        let t = Policy::parse("freezeout")
            .unwrap()
            .planned(2, 1000)
            .unwrap();
        assert_eq!(t.changes[1], (513, 1));
        // The library's HAND_TRACE: 4 layers, interval 10, run 40 → (10,1), (20,2), (30,3).
        let g = [
            [1.0, 1.0, 1.0, 1.0],
            [0.95, 0.5, 0.5, 0.5],
            [0.94, 0.49, 0.25, 0.25],
            [0.93, 0.485, 0.245, 0.1],
        ];
        let mut n = Norms::new(4);
        for (i, row) in g.iter().enumerate() {
            for (u, v) in row.iter().enumerate() {
                n.by_unit[u].push((10 * i as u64, *v));
            }
        }
        let t = replay_autofreeze(&n, 4, 40, 10, 50.0);
        assert_eq!(t.changes, vec![(0, 0), (10, 1), (20, 2), (30, 3)]);
        assert_eq!(replay_autofreeze(&n, 4, 40, 10, 0.0).changes, vec![(0, 0)]);
        for s in [
            "none",
            "fixed:k=6",
            "fixed:k=3,from=100",
            "autofreeze:interval=7,percentile=25",
            "freezeout:schedule=cubic,t0=0.8",
        ] {
            assert_eq!(Policy::parse(s).unwrap().label(), s);
        }
        assert!(Policy::parse("autofreeze:percentile=101").is_err());
        assert!(Policy::parse("fixed:k=14")
            .unwrap()
            .planned(14, 10)
            .unwrap_err()
            .contains("fixed.k = 14: expected [0, 13]"));
        assert!(n
            .to_csv(&["a".into(), "b".into(), "c".into(), "d".into()])
            .starts_with("step,layer,grad_norm\n0,a,1e0\n0,b,1e0\n"));
    }
}
