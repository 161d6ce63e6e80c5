//! Layer freezing for fine-tuning: what freezing a growing prefix of layers, and caching that
//! prefix's output, saves on a given job.
//!
//! AutoFreeze (Liu, Agarwal, Venkataraman 2021) speeds up BERT fine-tuning by freezing the front
//! layers whose gradient norms have stopped changing and caching their output; FreezeOut (Brock
//! et al. 2017) freezes layers on a fixed schedule. This module predicts a run's time under such
//! a policy from per-layer costs:
//!
//! - [`profile`]: per-layer forward, input-gradient, weight-gradient and optimizer time,
//!   parameters and output activation bytes per sample (`uniform:layers=L`, a measured file, or a
//!   catalog architecture on a catalog GPU).
//! - [`cost`]: the cost semantics (weight gradient and optimizer iff trainable; input gradient
//!   iff some layer below is trainable) and the run simulation with a cache tier (GPU memory,
//!   host RAM, local disk) and AutoFreeze's optional one-epoch lag.
//! - [`policy`]: `none`, `fixed`, `autofreeze` (replaying a gradient-norm trace), `freezeout`;
//!   [`schedule`]: the resulting frozen-prefix timeline.
//! - [`gradnorm`]: the `step,layer,grad_norm` trace reader and the seeded synthetic generator.
//! - [`study`]: the scenario study (policies × caching × dataset sizes).
//! - [`calib`]: the fit of the cost model from the GPU harness's micro-measurements and the
//!   predictor of its end-to-end runs; [`calib::whatif`]: the what-if's use of the committed
//!   `<gpu>-freeze.toml` for catalog models (exact at a calibrated shape, scaled elsewhere; the
//!   output's `costs` says which, or `roofline (uncalibrated)`).
//!
//! [`evaluate`] turns validated [`Params`] into [`Metrics`]; `speedup = baseline_s / total_s`
//! where the baseline trains every layer without a cache.

pub mod calib;
pub mod cost;
pub mod gradnorm;
pub mod policy;
pub mod profile;
pub mod schedule;
pub mod solve;
pub mod spec;
pub mod study;

pub use calib::whatif::CostSource;
pub use cost::{Cache, IterCosts, RunCost, RunShape, Tier};
pub use gradnorm::{GradNorms, Synthetic};
pub use policy::Policy;
pub use profile::{Dtype, LayerCost, ModelSpec, Profile};
pub use schedule::{Change, Timeline};
pub use spec::Spec;

use crate::error::Result;
use crate::report::{LinePlot, Series};
use serde::Serialize;

/// A validated what-if: one model profile, one run shape, one policy, one cache.
#[derive(Debug, Clone)]
pub struct Params {
    /// Per-layer costs at `shape.batch`.
    pub profile: Profile,
    /// GPU label (for output).
    pub gpu: String,
    /// Epochs, samples, batch.
    pub shape: RunShape,
    /// Freezing policy.
    pub policy: Policy,
    /// Cache tier and bandwidths.
    pub cache: Cache,
    /// Gradient norms (required by `autofreeze`).
    pub grads: Option<GradNorms>,
    /// Seed of the synthetic gradient-norm generator, when the norms are synthetic.
    pub seed: Option<u64>,
    /// One baseline iteration (every layer trainable, no cache) when it is not the profile's
    /// unfrozen iteration: a calibrated AutoFreeze profile pays each trainable unit's gradient
    /// norm, which the baseline does not compute. Seconds.
    pub baseline_iter_s: Option<f64>,
    /// Training precision of a catalog model (None for uniform and file profiles).
    pub dtype: Option<Dtype>,
    /// Which costs the profile holds: `calibrated (…)`, `calibrated scaling (…)`,
    /// `roofline (uncalibrated)…` or `given profile (…)` (see [`calib::whatif`]).
    pub costs: String,
}

/// What a freezing what-if predicts. Times in seconds, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Model label.
    pub model: String,
    /// GPU label.
    pub gpu: String,
    /// Policy (canonical text).
    pub policy: String,
    /// Cache tier.
    pub cache: Tier,
    /// Whether cache writes waited one epoch after a freeze (AutoFreeze's lag).
    pub cache_lag: bool,
    /// Layers of the model.
    pub layers: usize,
    /// Epochs.
    pub epochs: u32,
    /// Samples per epoch.
    pub samples: u64,
    /// Samples per iteration.
    pub batch: u32,
    /// Training precision of a catalog model (null for uniform and file profiles).
    pub dtype: Option<Dtype>,
    /// Which per-layer costs: `calibrated (<gpu>-freeze, measured MAPE X%, max Y%)` at a calibrated shape,
    /// `calibrated scaling (…)` elsewhere for a catalog transformer in a calibrated dtype,
    /// `roofline (uncalibrated)` otherwise, `given profile (…)` for uniform and file profiles.
    pub costs: String,
    /// Iterations per epoch.
    pub iters_per_epoch: u64,
    /// One iteration with every layer trainable, seconds.
    pub iter_unfrozen_s: f64,
    /// One iteration with the final frozen prefix and no cache, seconds.
    pub iter_final_s: f64,
    /// The run with the policy and cache, seconds.
    pub total_s: f64,
    /// The run with nothing frozen and no cache, seconds.
    pub baseline_s: f64,
    /// `baseline_s / total_s`.
    pub speedup: f64,
    /// `baseline_s − total_s`, seconds.
    pub saved_s: f64,
    /// Frozen prefix length at the end of the run.
    pub frozen_layers_final: usize,
    /// Fraction of the parameters frozen at the end (null when the profile has no parameters).
    pub frozen_param_fraction_final: Option<f64>,
    /// The same policy without a cache, seconds.
    pub total_nocache_s: f64,
    /// `total_nocache_s − total_s`: what the cache saved (negative when it costs), seconds.
    pub cache_saving_s: f64,
    /// Largest cache size reached, bytes.
    pub cache_bytes: f64,
    /// Capacity of the tier, bytes (null without a cache).
    pub cache_capacity_bytes: Option<f64>,
    /// Whether `cache_bytes` fits the tier's capacity (null without a cache).
    pub cache_fits: Option<bool>,
    /// Bytes written to the cache over the run.
    pub cache_written_bytes: f64,
    /// Bytes read from the cache over the run.
    pub cache_read_bytes: f64,
    /// Distinct prefix boundaries written (more than 1: prefix growth forced rewrites).
    pub cache_boundaries: usize,
    /// Read bandwidth of the tier, bytes/s (null without a cache).
    pub cache_read_bw_bytes_per_s: Option<f64>,
    /// Read bandwidth above which reading the final prefix's output beats recomputing it,
    /// bytes/s: `N · act / (iters · Σ_{i<k} fwd_i)` (null when nothing is frozen or the prefix
    /// has no forward time).
    pub break_even_read_bw_bytes_per_s: Option<f64>,
    /// Epochs of reading the final prefix's cache needed to repay one epoch of writing it:
    /// `write_epoch_s / (fwd_prefix_epoch_s − read_epoch_s)` (null without a cache, with nothing
    /// frozen, or when reading never beats recomputing).
    pub break_even_epochs: Option<f64>,
    /// Where the per-layer costs came from.
    pub profile_source: String,
    /// Where the gradient norms came from (null when the policy needs none).
    pub grad_norms: Option<String>,
    /// Seed of the synthetic gradient norms (null when none were generated).
    pub seed: Option<u64>,
    /// Time of each epoch, seconds.
    pub epoch_s: Vec<f64>,
    /// Time of one baseline epoch, seconds.
    pub baseline_epoch_s: f64,
    /// Frozen-prefix changes (`step`, `frozen_layers`), the first at step 0.
    pub timeline: Vec<Change>,
}

/// Predicts the run.
///
/// # Errors
/// Policy errors ([`Policy::timeline`]: `k` larger than the layer count, missing gradient norms).
pub fn evaluate(p: &Params) -> Result<Metrics> {
    let l = p.profile.len();
    let total_steps = p.shape.total_steps();
    let timeline = p.policy.timeline(l, total_steps, p.grads.as_ref())?;
    let ic = IterCosts::new(&p.profile);
    let run = cost::simulate(&ic, &timeline, &p.shape, &p.cache);
    let nocache = if p.cache.tier == Tier::None {
        run.clone()
    } else {
        cost::simulate(&ic, &timeline, &p.shape, &Cache::none())
    };
    let ipe = p.shape.iters_per_epoch();
    let baseline_epoch_s = p.baseline_iter_s.unwrap_or(ic.base[0]) * ipe as f64;
    let baseline_s = baseline_epoch_s * f64::from(p.shape.epochs);
    let kf = timeline.final_frozen();
    let caching = p.cache.tier != Tier::None;
    let bytes_epoch = p.shape.samples as f64 * ic.act[kf];
    let fwd_epoch = ipe as f64 * ic.fwd_prefix[kf];
    let break_even_read_bw =
        (caching && kf > 0 && fwd_epoch > 0.0).then(|| bytes_epoch / fwd_epoch);
    let break_even_epochs = if caching && kf > 0 {
        let gain = fwd_epoch - bytes_epoch / p.cache.read_bw_bytes_per_s;
        (gain > 0.0).then(|| bytes_epoch / p.cache.write_bw_bytes_per_s / gain)
    } else {
        None
    };
    let params = p.profile.params();
    let frozen_params: u64 = p.profile.layers[..kf].iter().map(|x| x.params).sum();
    Ok(Metrics {
        model: p.profile.model.clone(),
        gpu: p.gpu.clone(),
        policy: p.policy.label(),
        cache: p.cache.tier,
        cache_lag: p.cache.lag,
        layers: l,
        epochs: p.shape.epochs,
        samples: p.shape.samples,
        batch: p.shape.batch,
        dtype: p.dtype,
        costs: p.costs.clone(),
        iters_per_epoch: ipe,
        iter_unfrozen_s: ic.base[0],
        iter_final_s: ic.base[kf],
        total_s: run.total_s,
        baseline_s,
        speedup: baseline_s / run.total_s,
        saved_s: baseline_s - run.total_s,
        frozen_layers_final: kf,
        frozen_param_fraction_final: (params > 0).then(|| frozen_params as f64 / params as f64),
        total_nocache_s: nocache.total_s,
        cache_saving_s: nocache.total_s - run.total_s,
        cache_bytes: run.cache_bytes,
        cache_capacity_bytes: caching.then_some(p.cache.capacity_bytes),
        cache_fits: caching.then_some(run.cache_bytes <= p.cache.capacity_bytes),
        cache_written_bytes: run.cache_written_bytes,
        cache_read_bytes: run.cache_read_bytes,
        cache_boundaries: run.cache_boundaries,
        cache_read_bw_bytes_per_s: caching.then_some(p.cache.read_bw_bytes_per_s),
        break_even_read_bw_bytes_per_s: break_even_read_bw,
        break_even_epochs,
        profile_source: p.profile.source.clone(),
        grad_norms: if p.policy.needs_grad_norms() {
            p.grads.as_ref().map(|g| g.source.clone())
        } else {
            None
        },
        seed: if p.policy.needs_grad_norms() {
            p.seed
        } else {
            None
        },
        epoch_s: run.epoch_s,
        baseline_epoch_s,
        timeline: timeline.changes,
    })
}

/// The freeze timeline (frozen layers vs step) of several results as one plot.
pub fn timeline_plot(stem: &str, title: &str, results: &[(String, &Metrics)]) -> LinePlot {
    LinePlot {
        stem: stem.to_string(),
        title: title.to_string(),
        x_label: "training step (iterations)".into(),
        y_label: "frozen layers (count, front prefix)".into(),
        log_x: false,
        log_y: false,
        series: results
            .iter()
            .map(|(name, m)| {
                let t = Timeline {
                    total_steps: m.iters_per_epoch * u64::from(m.epochs),
                    changes: m.timeline.clone(),
                };
                Series {
                    name: name.clone(),
                    points: t.plot_points(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(policy: &str, layers: usize) -> Params {
        Params {
            profile: Profile::uniform(layers, 32).unwrap(),
            gpu: "h200".into(),
            shape: RunShape::new(3, 3200, 32).unwrap(),
            policy: Policy::parse(policy).unwrap(),
            cache: Cache::none(),
            grads: None,
            seed: None,
            baseline_iter_s: None,
            dtype: None,
            costs: "given profile (uniform)".into(),
        }
    }

    #[test]
    fn worked_example_speedup() {
        let m = evaluate(&params("fixed:k=6", 12)).unwrap();
        // 300 iterations × 23 ms vs × 35 ms; tolerance 1e-9 relative (float sums).
        assert!((m.total_s - 300.0 * 0.023).abs() < 1e-9);
        assert!((m.baseline_s - 300.0 * 0.035).abs() < 1e-9);
        assert!((m.speedup - 35.0 / 23.0).abs() < 1e-12);
        assert_eq!(m.frozen_layers_final, 6);
        assert_eq!(m.epoch_s.len(), 3);
        let n = evaluate(&params("none", 12)).unwrap();
        assert!((n.speedup - 1.0).abs() < 1e-12);
    }
}
