//! Validation: predicts every end-to-end point and compares with what was measured.
//!
//! For a speculative point the prediction is the analytic specdec model
//! ([`crate::specdec::analytic::at_gamma`], the same code `perfcast specdec` runs) with
//! - step costs from the latency model at the GPU's calibrated parameters
//!   ([`crate::Catalog::latency`]; a calibration fitted from `forward` rows only), and
//! - acceptance = the survival curve measured in the same run (`acceptance` rows), so the
//!   expected tokens per step is E = 1 + Σ S(i).
//!
//! An autoregressive point (draft `none`) is predicted as b / t_target(b, 1, c). The measured
//! tokens/s of a point is read only to compute its error, after the prediction.
//!
//! **Static batches.** The harness decodes a fixed batch of b sequences until *every* sequence
//! has `new_tokens` = n tokens (finished sequences keep their slot), whereas the specdec model
//! describes steady-state continuous batching (b·E tokens per step). The rounds a static batch
//! needs are R_max = max over its b sequences of R_s = min{r : X_1 + … + X_r ≥ n}, where X (tokens
//! per round) has P(X = k + 1) = S(k) − S(k + 1) from the same measured survival curve. So the
//! prediction is b·n / (E\[R_max\] · step_s), with E\[R_max\] = Σ_r (1 − P(R ≤ r)^b) computed exactly
//! by dynamic programming ([`expected_rounds_static_batch`]); `batch_tail_factor` in the output
//! is (n/E)/E\[R_max\], the throughput lost to waiting for the batch's slowest sequence.

use super::measure::{Dataset, E2ePoint};
use crate::catalog::{Catalog, LlmArch};
use crate::error::{Error, Result};
use crate::specdec::{
    analytic, Acceptance, CostModel, ForwardModel, Gamma, HwRates, Params, Shape,
};
use crate::validate::metrics::{rel_err, ErrorStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a validation takes its forward latencies from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Costs {
    /// The calibrated roofline latency model (what `specdec --gpu <calibrated gpu>` uses, and
    /// the only source for models that were never measured).
    #[default]
    Roofline,
    /// The calibrated roofline with the pooled fit for every architecture (per-architecture
    /// refits ignored). The pooled fit includes each architecture's own points, so this is not
    /// the error of an unmeasured architecture (that is `HeldOut`).
    Pooled,
    /// The calibrated roofline with each architecture at a fit that excluded its own
    /// measurements (leave-one-architecture-out, `held_out_latency` in the calibration file;
    /// an architecture without one is an error): the error of a prediction for an architecture
    /// never measured on this GPU. A draft and target are each left out on their own, not
    /// together, so a pair of two unmeasured architectures may see more error.
    #[serde(rename = "heldout")]
    HeldOut,
    /// The measured forward latencies of the same results (`forward` rows, interpolated
    /// bilinearly in new tokens and context, linearly between measured batches): isolates the speculative
    /// decoding model (acceptance → rounds → round time) from the latency model's fit error, as
    /// profile-driven simulators (Vidur) do. Calibration input only: no e2e number enters.
    Profile,
}

impl Costs {
    /// Lower-case name (`roofline`, `profile`).
    pub fn as_str(self) -> &'static str {
        match self {
            Costs::Roofline => "roofline",
            Costs::Pooled => "pooled",
            Costs::HeldOut => "heldout",
            Costs::Profile => "profile",
        }
    }
}

impl std::str::FromStr for Costs {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "roofline" => Ok(Costs::Roofline),
            "pooled" => Ok(Costs::Pooled),
            "heldout" => Ok(Costs::HeldOut),
            "profile" => Ok(Costs::Profile),
            _ => Err(Error::range(
                "--costs",
                s,
                "roofline, pooled, heldout or profile",
            )),
        }
    }
}

/// (new tokens, context tokens, seconds) of one measured forward.
type Timed = (f64, f64, f64);

/// Measured forward latencies by (model, batch bits): every full forward (`forward_s` rows
/// without a layer range).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    by: BTreeMap<(String, u64), Vec<Timed>>,
}

impl Profile {
    /// The table of `points` (partial forwards are skipped).
    pub fn from_forward(points: &[super::measure::ForwardPoint]) -> Profile {
        let mut by: BTreeMap<(String, u64), Vec<Timed>> = BTreeMap::new();
        for p in points.iter().filter(|p| p.layers.is_none()) {
            by.entry((p.model.clone(), p.shape.batch.to_bits()))
                .or_default()
                .push((p.shape.new_tokens, p.shape.context_tokens, p.measured_s));
        }
        Profile { by }
    }

    /// Forward seconds of `model` at `batch`, `new_tokens` and `context`: bilinear in new tokens
    /// and context between the bracketing measured values (linear extrapolation in context from
    /// the two nearest when outside), then linear in batch between the two measured batches
    /// around it (a measured batch is used as is). None when the grid does not cover the point
    /// (new tokens or batch outside the measured range).
    pub fn forward_s(&self, model: &str, batch: f64, new_tokens: f64, context: f64) -> Option<f64> {
        if self.by.contains_key(&(model.to_string(), batch.to_bits())) {
            return self.at_batch(model, batch, new_tokens, context);
        }
        let batches: Vec<f64> = self
            .by
            .keys()
            .filter(|(m, _)| m == model)
            .map(|(_, b)| f64::from_bits(*b))
            .collect();
        let lo = batches
            .iter()
            .copied()
            .filter(|&b| b < batch)
            .fold(f64::NAN, f64::max);
        let hi = batches
            .iter()
            .copied()
            .filter(|&b| b > batch)
            .fold(f64::NAN, f64::min);
        if lo.is_nan() || hi.is_nan() {
            return None;
        }
        let (y0, y1) = (
            self.at_batch(model, lo, new_tokens, context)?,
            self.at_batch(model, hi, new_tokens, context)?,
        );
        Some(y0 + (y1 - y0) * (batch - lo) / (hi - lo))
    }

    /// [`Profile::forward_s`] at a measured batch only.
    fn at_batch(&self, model: &str, batch: f64, new_tokens: f64, context: f64) -> Option<f64> {
        let pts = self.by.get(&(model.to_string(), batch.to_bits()))?;
        let axis = |f: fn(&Timed) -> f64| {
            let mut v: Vec<f64> = pts.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        };
        let (ts, cs) = (axis(|p| p.0), axis(|p| p.1));
        let bracket = |v: &[f64], x: f64, extrapolate: bool| -> Option<(f64, f64)> {
            if let Some(&e) = v.iter().find(|&&a| a == x) {
                return Some((e, e));
            }
            if v.len() < 2 {
                return None;
            }
            match v.iter().position(|&a| a > x) {
                Some(0) if extrapolate => Some((v[0], v[1])),
                Some(0) => None,
                Some(i) => Some((v[i - 1], v[i])),
                None if extrapolate => Some((v[v.len() - 2], v[v.len() - 1])),
                None => None,
            }
        };
        let (t0, t1) = bracket(&ts, new_tokens, false)?;
        let (c0, c1) = bracket(&cs, context, true)?;
        // Repeated measurements of one shape (several files) are averaged.
        let at = |t: f64, c: f64| {
            let v: Vec<f64> = pts
                .iter()
                .filter(|p| p.0 == t && p.1 == c)
                .map(|p| p.2)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let lerp = |x0: f64, x1: f64, y0: f64, y1: f64, x: f64| {
            if x1 == x0 {
                y0
            } else {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        };
        let row = |t: f64| Some(lerp(c0, c1, at(t, c0)?, at(t, c1)?, context));
        let v = lerp(t0, t1, row(t0)?, row(t1)?, new_tokens);
        (v.is_finite() && v > 0.0).then_some(v)
    }
}

pub use crate::validate::Tolerance;

/// One end-to-end point: its prediction and error.
#[derive(Debug, Clone, Serialize)]
pub struct PointResult {
    /// Measurement set.
    pub set: String,
    /// Where the forward latencies came from.
    pub costs: Costs,
    /// Results file.
    pub file: String,
    /// Line in that file.
    pub line: u64,
    /// Target model.
    pub model: String,
    /// Draft as measured (`none`, a model, `layerskip:E=n`, `synthetic`).
    pub draft: String,
    /// The drafter whose cost was modelled (the model actually run for `synthetic`).
    pub draft_cost_model: String,
    /// Lookahead (0 = autoregressive).
    pub gamma: u32,
    /// Sequences per batch.
    pub batch: u32,
    /// Mean context tokens.
    pub context_tokens: f64,
    /// Tokens generated per sequence.
    pub new_tokens: u32,
    /// E = 1 + Σ S(i) from the measured survival curve (1 for autoregressive).
    pub expected_tokens_per_step: f64,
    /// Predicted draft forward, seconds (0 for autoregressive).
    pub draft_step_s: f64,
    /// Predicted verification (or autoregressive) forward, seconds.
    pub verify_step_s: f64,
    /// Predicted step: γ · draft + verify, seconds.
    pub step_s: f64,
    /// Rounds until every sequence of the static batch has `new_tokens` tokens: measured or
    /// expected (see `rounds_source`).
    pub expected_rounds: f64,
    /// `measured` (the run's recorded round count), `expected` (E\[R_max\] from the pooled
    /// survival curve) or `autoregressive` (n).
    pub rounds_source: String,
    /// (n/E)/expected_rounds: steady-state rounds over static-batch rounds (1 = no tail loss).
    pub batch_tail_factor: f64,
    /// Predicted tokens/s (whole batch).
    pub predicted_tokens_per_s: f64,
    /// Measured tokens/s (whole batch).
    pub measured_tokens_per_s: f64,
    /// (predicted − measured)/measured.
    pub rel_err: f64,
    /// Measured spread (p90 − p10)/median.
    pub measured_spread: Option<f64>,
    /// Timed repeats.
    pub repeats: u64,
}

/// One set's error (the JSON contract of `perfcast validate`, DESIGN.md §5).
#[derive(Debug, Clone, Serialize)]
pub struct SetResult {
    /// Technique (`specdec`).
    pub technique: String,
    /// Set name.
    pub set: String,
    /// Where the forward latencies came from (`roofline`, `profile`).
    pub costs: Costs,
    /// End-to-end points in the set.
    pub points: usize,
    /// Mean absolute relative error of tokens/s, fraction.
    pub mape: f64,
    /// Largest |relative error|, fraction.
    pub max_abs_pct_err: f64,
    /// Mean signed relative error (bias), fraction.
    pub mean_pct_err: f64,
    /// 95% confidence half-width of the bias, fraction.
    pub bias_ci95: f64,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// Whether mape ≤ tolerance.mape and max_abs_pct_err ≤ tolerance.max_abs_pct_err.
    pub pass: bool,
    /// Catalog GPU.
    pub gpu: String,
    /// Whether the GPU's latency model is calibrated (else catalog defaults were used).
    pub calibrated: bool,
}

/// Everything `validate` computes.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Per point, in input order.
    pub points: Vec<PointResult>,
    /// Per set, sorted by name.
    pub sets: Vec<SetResult>,
    /// Whether they came from a calibration file.
    pub calibrated: bool,
}

impl Validation {
    /// Whether every set passed.
    pub fn pass(&self) -> bool {
        self.sets.iter().all(|s| s.pass)
    }
}

/// The drafter whose cost a point pays.
#[derive(Debug, Clone, PartialEq)]
enum Drafter {
    None,
    Model(String),
    LayerSkip(u32),
}

fn drafter(e: &E2ePoint) -> Result<Drafter> {
    let parse = |d: &str| -> Result<Drafter> {
        if d == "none" {
            Ok(Drafter::None)
        } else if let Some(n) = d.strip_prefix("layerskip:E=") {
            n.parse::<u32>().map(Drafter::LayerSkip).map_err(|_| {
                e.origin
                    .err(format!("draft = '{d}': expected layerskip:E=<integer>"))
            })
        } else {
            Ok(Drafter::Model(d.to_string()))
        }
    };
    match e.draft_run.as_str() {
        "synthetic" | "none" if e.draft != "none" => Err(e.origin.err(
            "draft = 'synthetic': the command column does not name the draft model that was run",
        )),
        d => parse(d),
    }
}

/// Predicts one point from the latency parameters `hw` and the acceptance curve `acc` (None for
/// autoregressive points). Returns (E, draft_step_s, verify_step_s, step_s, tokens/s, cost label).
fn predict(
    cat: &Catalog,
    rates: &dyn Fn(&LlmArch) -> HwRates,
    e: &E2ePoint,
    acc: Option<Acceptance>,
) -> Result<(f64, f64, f64, f64, f64, String)> {
    let model = |name: &str| -> Result<ForwardModel> {
        let arch = cat
            .llm(name)
            .map_err(|err| e.origin.err(err.to_string()))?
            .clone();
        let hw = rates(&arch);
        ForwardModel::new(arch, hw, None).map_err(|err| e.origin.err(err.to_string()))
    };
    let target = model(&e.model)?;
    let b = f64::from(e.batch);
    let d = drafter(e)?;
    if d == Drafter::None {
        let t = target.forward_s(Shape {
            batch: b,
            new_tokens: 1.0,
            context_tokens: e.context_tokens,
        });
        return Ok((1.0, 0.0, t, t, b / t, "none".into()));
    }
    let acc = acc.ok_or_else(|| e.origin.err("speculative point without a survival curve"))?;
    let (cost, label) = match &d {
        Drafter::Model(m) => (
            CostModel::DraftModel {
                target,
                draft: model(m)?,
            },
            m.clone(),
        ),
        Drafter::LayerSkip(n) => (
            CostModel::early_exit(target, *n).map_err(|err| e.origin.err(err.to_string()))?,
            format!("layerskip:E={n}"),
        ),
        Drafter::None => unreachable!("handled above"),
    };
    let p = Params {
        draft_name: label.clone(),
        target_name: e.model.clone(),
        acceptance: acc,
        gamma: Gamma::Fixed(e.gamma),
        batch: e.batch,
        context_tokens: e.context_tokens,
        cost,
        gpu_memory_bytes: None,
        platform: crate::specdec::Platform::default(),
    };
    p.validate().map_err(|err| e.origin.err(err.to_string()))?;
    let m = analytic::at_gamma(&p, e.gamma);
    Ok((
        m.expected_tokens_per_step,
        m.draft_step_s,
        m.verify_step_s,
        m.step_s,
        m.tokens_per_s,
        label,
    ))
}

/// Step costs of one point from measured forward latencies (see [`Costs::Profile`]): returns
/// (draft_step_s, verify_step_s, round_s, cost label). A separate draft's round is
/// `(γ − 1)·t_d(b, 1) + t_d^sync(b, 2) + t_v(b, γ + 1)`: its first forward carries two tokens and
/// follows the round's host synchronization, so it is timed as `forward_sync_s` (one forward
/// between two synchronizations: the launch the pipelined `forward_s` hides); when the results
/// hold no `forward_sync_s` row for it, `forward_s` is used. A LayerSkip draft or verification,
/// partial forwards the grid does not time, is the measured full forward of the same shape scaled
/// by the roofline model's partial/full ratio (the first draft step likewise from `forward_sync_s`).
fn predict_profile(
    cat: &Catalog,
    rates: &dyn Fn(&LlmArch) -> HwRates,
    prof: &Profile,
    prof_sync: &Profile,
    e: &E2ePoint,
) -> Result<(f64, f64, f64, String)> {
    let b = f64::from(e.batch);
    let c = e.context_tokens;
    let g = f64::from(e.gamma);
    let look = |m: &str, t: f64| -> Result<f64> {
        prof.forward_s(m, b, t, c).ok_or_else(|| {
            e.origin.err(format!(
                "--costs profile: no forward measurement of {m} around batch {} covers {t} new tokens at context {c} (the forward grid must bracket every e2e batch and shape)",
                e.batch
            ))
        })
    };
    match drafter(e)? {
        Drafter::None => {
            let t = look(&e.model, 1.0)?;
            Ok((0.0, t, t, "none".into()))
        }
        Drafter::Model(m) => {
            let (d1, v) = (look(&m, 1.0)?, look(&e.model, g + 1.0)?);
            let d2 = match prof_sync.forward_s(&m, b, 2.0, c) {
                Some(t) => t,
                None => look(&m, 2.0)?,
            };
            Ok((d1, v, (g - 1.0) * d1 + d2 + v, m))
        }
        Drafter::LayerSkip(n) => {
            let arch = cat
                .llm(&e.model)
                .map_err(|err| e.origin.err(err.to_string()))?
                .clone();
            let hw = rates(&arch);
            let target =
                ForwardModel::new(arch, hw, None).map_err(|err| e.origin.err(err.to_string()))?;
            let shape = |t: f64| Shape {
                batch: b,
                new_tokens: t,
                context_tokens: c,
            };
            let (f1, fv) = (
                target.forward_s(shape(1.0)),
                target.forward_s(shape(g + 1.0)),
            );
            let rf = CostModel::early_exit(target, n)
                .map_err(|err| e.origin.err(err.to_string()))?
                .step_times(b, e.gamma, c);
            let t1 = look(&e.model, 1.0)?;
            let d = t1 * rf.draft_step_s / f1;
            let d_first =
                prof_sync.forward_s(&e.model, b, 1.0, c).unwrap_or(t1) * rf.draft_step_s / f1;
            let v = look(&e.model, g + 1.0)? * rf.verify_step_s / fv;
            Ok((
                d,
                v,
                (g - 1.0) * d + d_first + v,
                format!("layerskip:E={n}"),
            ))
        }
    }
}

/// Expected number of speculation rounds until all `batch` sequences have emitted at least `n`
/// tokens, when each sequence independently emits X tokens per round with
/// P(X = k + 1) = S(k) − S(k + 1) (S from `acc`, S(0) = 1, S(γ + 1) = 0): E[max_s R_s] =
/// Σ_{r ≥ 0} (1 − F(r)^batch), F(r) = P(X_1 + … + X_r ≥ n), by dynamic programming over the
/// tokens emitted so far (O(n·γ) per round, at most n rounds).
pub fn expected_rounds_static_batch(acc: &Acceptance, gamma: u32, n: u32, batch: u32) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let g = gamma as usize;
    let pmf: Vec<f64> = (0..=g)
        .map(|k| {
            acc.survival_at(k as u32)
                - if k == g {
                    0.0
                } else {
                    acc.survival_at(k as u32 + 1)
                }
        })
        .collect();
    let n = n as usize;
    // dist[t] = P(t tokens so far and not yet done), t < n.
    let mut dist = vec![0.0; n];
    dist[0] = 1.0;
    let mut done = 0.0_f64;
    let mut expected = 1.0; // r = 0: F(0) = 0, so 1 − 0^b = 1.
    for _round in 1..=n {
        let mut next = vec![0.0; n];
        for (t, &p) in dist.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            for (k, &q) in pmf.iter().enumerate() {
                let t2 = t + k + 1;
                if t2 >= n {
                    done += p * q;
                } else {
                    next[t2] += p * q;
                }
            }
        }
        dist = next;
        let f = done.min(1.0);
        let tail = 1.0 - f.powi(batch as i32);
        if tail < 1e-15 {
            break;
        }
        expected += tail;
    }
    expected
}

/// Predicts every end-to-end point of `ds` on catalog GPU `gpu` and summarises the error per set.
///
/// # Errors
/// No end-to-end points, unknown GPU or model names (naming file and line), invalid curves, or a
/// tolerance that is not a finite fraction ≥ 0.
pub fn validate(
    ds: &Dataset,
    cat: &Catalog,
    gpu: &str,
    tol: Tolerance,
    costs: Costs,
) -> Result<Validation> {
    crate::check::non_negative("--max-mape", tol.mape)?;
    crate::check::non_negative("--max-err", tol.max_abs_pct_err)?;
    let g = cat.gpu(gpu)?;
    if ds.e2e.is_empty() {
        let files: Vec<&str> = ds.sources.iter().map(|s| s.path.as_str()).collect();
        return Err(Error::range(
            "measurement sets",
            format!("no e2e rows in [{}]", files.join(", ")),
            "at least one kind=e2e row to validate",
        ));
    }
    let latency = cat.latency(&g.name)?;
    let calibrated = cat.is_calibrated(&g.name);
    if costs == Costs::HeldOut {
        // Every architecture must have a fit that excluded it, or the figure would mix in
        // in-sample predictions.
        for e in &ds.e2e {
            let mut names = vec![e.model.clone()];
            if let Drafter::Model(m) = drafter(e)? {
                names.push(m);
            }
            for n in names {
                let arch = cat.llm(&n).map_err(|err| e.origin.err(err.to_string()))?;
                if !latency.has_held_out(arch) {
                    return Err(e.origin.err(format!(
                        "--costs heldout: the {} calibration has no held-out fit of {} (architectures with >= {} forward points get one; rerun `perfcast calibrate`)",
                        g.name,
                        arch.name,
                        super::fit::MIN_POINTS_PER_MODEL
                    )));
                }
            }
        }
    }
    // Each architecture at its refit, except with --costs pooled / heldout.
    let rates = |a: &LlmArch| {
        HwRates::bf16(
            g,
            match costs {
                Costs::Pooled => &latency.pooled,
                Costs::HeldOut => latency.held_out_for(a),
                Costs::Roofline | Costs::Profile => latency.for_model(a),
            },
        )
    };
    // Measured-forward tables (pipelined and synchronized), only when they are the cost source.
    let profiles = (costs == Costs::Profile).then(|| {
        (
            Profile::from_forward(&ds.forward),
            Profile::from_forward(&ds.forward_sync),
        )
    });
    let mut points = Vec::with_capacity(ds.e2e.len());
    for e in &ds.e2e {
        let acc = if e.gamma > 0 {
            let c = ds
                .curve_for(e)
                .ok_or_else(|| e.origin.err("no matching acceptance rows"))?;
            Some(c.acceptance()?)
        } else {
            None
        };
        // Rounds the static batch ran: measured when the run recorded them (an acceptance
        // outcome: it waits for its slowest sequence, whose acceptance may differ from the
        // pooled curve), else expected from the pooled survival curve.
        let (rounds, rounds_source) = match (&acc, ds.rounds.get(&e.run_key())) {
            (Some(_), Some(&r)) => (r, "measured"),
            (Some(a), None) => (
                expected_rounds_static_batch(a, e.gamma, e.new_tokens, e.batch),
                "expected",
            ),
            (None, _) => (f64::from(e.new_tokens), "autoregressive"),
        };
        let (et, ds_, vs, ss, label) = match &profiles {
            None => {
                let (et, d, v, s, _steady_tps, label) = predict(cat, &rates, e, acc)?;
                (et, d, v, s, label)
            }
            Some((prof, prof_sync)) => {
                let et = acc.as_ref().map_or(1.0, |a| a.expected_tokens(e.gamma));
                let (d, v, s, label) = predict_profile(cat, &rates, prof, prof_sync, e)?;
                (et, d, v, s, label)
            }
        };
        let n = f64::from(e.new_tokens);
        let tps = f64::from(e.batch) * n / (rounds * ss);
        points.push(PointResult {
            set: e.set.clone(),
            costs,
            file: e.origin.file.display().to_string(),
            line: e.origin.line,
            model: e.model.clone(),
            draft: e.draft.clone(),
            draft_cost_model: label,
            gamma: e.gamma,
            batch: e.batch,
            context_tokens: e.context_tokens,
            new_tokens: e.new_tokens,
            expected_tokens_per_step: et,
            draft_step_s: ds_,
            verify_step_s: vs,
            step_s: ss,
            expected_rounds: rounds,
            rounds_source: rounds_source.into(),
            batch_tail_factor: (n / et) / rounds,
            predicted_tokens_per_s: tps,
            measured_tokens_per_s: e.measured_tokens_per_s,
            rel_err: rel_err(tps, e.measured_tokens_per_s),
            measured_spread: e.spread,
            repeats: e.repeats,
        });
    }
    let mut by_set: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for p in &points {
        by_set.entry(p.set.as_str()).or_default().push(p.rel_err);
    }
    let sets = by_set
        .into_iter()
        .filter_map(|(set, errs)| {
            let s = ErrorStats::from_rel_errs(&errs)?;
            Some(SetResult {
                technique: "specdec".into(),
                costs,
                set: set.to_string(),
                points: s.points,
                mape: s.mape,
                max_abs_pct_err: s.max_abs_pct_err,
                mean_pct_err: s.mean_pct_err,
                bias_ci95: s.bias_ci95,
                tolerance: tol,
                pass: s.mape <= tol.mape && s.max_abs_pct_err <= tol.max_abs_pct_err,
                gpu: g.name.clone(),
                calibrated,
            })
        })
        .collect();
    Ok(Validation {
        points,
        sets,
        calibrated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_interpolates_bilinearly_and_refuses_what_it_does_not_cover() {
        use crate::specdec::calib::dataset::tests_support::forward_point;
        // t = 1 ms + 0.1 ms per new token + 1 µs per context token, at batch 4 (exactly
        // bilinear, so interpolation must reproduce it), and 0.2 ms more at batch 8 (so batch 6
        // is the mean of the two); one partial forward that must be ignored.
        let t = |n: f64, c: f64| 1e-3 + 1e-4 * n + 1e-6 * c;
        let mut pts = Vec::new();
        for n in [1.0, 3.0, 5.0] {
            for c in [100.0, 300.0] {
                pts.push(forward_point("m", None, 4.0, n, c, t(n, c)));
                pts.push(forward_point("m", None, 8.0, n, c, t(n, c) + 2e-4));
            }
        }
        pts.push(forward_point("m", Some((0, 2)), 4.0, 4.0, 200.0, 1.0));
        let p = Profile::from_forward(&pts);
        for (n, c) in [(1.0, 100.0), (4.0, 200.0), (2.0, 150.0), (5.0, 300.0)] {
            let got = p.forward_s("m", 4.0, n, c).unwrap();
            assert!((got - t(n, c)).abs() < 1e-15, "{n} {c}: {got}");
        }
        // Context is extrapolated linearly (4.0, 500) = 1.9 ms; new tokens are not.
        assert!((p.forward_s("m", 4.0, 4.0, 500.0).unwrap() - t(4.0, 500.0)).abs() < 1e-15);
        assert_eq!(p.forward_s("m", 4.0, 6.0, 200.0), None);
        let b6 = p.forward_s("m", 6.0, 2.0, 150.0).unwrap();
        assert!((b6 - (t(2.0, 150.0) + 1e-4)).abs() < 1e-15, "{b6}");
        assert_eq!(
            p.forward_s("m", 16.0, 1.0, 100.0),
            None,
            "batch is not extrapolated"
        );
        assert_eq!(p.forward_s("m", 2.0, 1.0, 100.0), None);
        assert_eq!(p.forward_s("other", 4.0, 1.0, 100.0), None);
    }

    #[test]
    fn static_batch_rounds_limits_and_monte_carlo() {
        // α = 1: every round emits γ + 1 tokens: ⌈n/(γ+1)⌉ rounds exactly.
        let all = Acceptance::survival(vec![1.0; 4]).unwrap();
        assert!((expected_rounds_static_batch(&all, 4, 256, 32) - 52.0).abs() < 1e-9);
        // α = 0: one token per round: n rounds.
        let none = Acceptance::survival(vec![0.0; 3]).unwrap();
        assert!((expected_rounds_static_batch(&none, 3, 100, 8) - 100.0).abs() < 1e-9);
        // Monte-Carlo with the same curve: 20 000 batches of 8 sequences, n = 64; the exact
        // expectation must lie within 4 standard errors of the sample mean.
        use rand::SeedableRng;
        let acc = Acceptance::survival(vec![0.8, 0.55, 0.3, 0.12]).unwrap();
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(17);
        let trials = 20_000;
        let mut v = Vec::with_capacity(trials);
        for _ in 0..trials {
            let mut worst = 0u32;
            for _ in 0..8 {
                let (mut t, mut r) = (0u32, 0u32);
                while t < 64 {
                    t += acc.sample_accepted(&mut rng, 4) + 1;
                    r += 1;
                }
                worst = worst.max(r);
            }
            v.push(f64::from(worst));
        }
        let mean = v.iter().sum::<f64>() / trials as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (trials as f64 - 1.0)).sqrt();
        let exact = expected_rounds_static_batch(&acc, 4, 64, 8);
        assert!(
            (exact - mean).abs() < 4.0 * sd / (trials as f64).sqrt(),
            "exact {exact} vs MC {mean} ± {}",
            sd / (trials as f64).sqrt()
        );
        // A batch waits for its slowest sequence: more rounds than one sequence needs, which needs
        // at least n/E (renewal theory: n/E + O(1)).
        let one = expected_rounds_static_batch(&acc, 4, 64, 1);
        assert!(exact > one && one >= 64.0 / acc.expected_tokens(4));
    }
}
