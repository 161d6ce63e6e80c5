//! The front door of freeze: [`Spec`] (the `perfcast freeze` flags as serde keys) →
//! [`Spec::resolve`] → [`Params`] → [`evaluate`](super::evaluate) →
//! [`Metrics`](super::Metrics) (with its timeline, break-even and cache figures). The CLI and the scenario study both go through it. freeze has one
//! predictor (the iteration-cost simulation), so [`evaluate`](super::evaluate) takes no method; its only random
//! draw (synthetic gradient norms) is seeded at [`Spec::resolve`].
//!
//! ```
//! use perfcast::freeze::{evaluate, Spec};
//! use perfcast::Catalog;
//!
//! // The worked example: 12 uniform layers, the first 6 frozen: 12 + 6 + 5 = 23 ms per
//! // iteration against 35 ms unfrozen.
//! let spec = Spec {
//!     policy: "fixed:k=6".parse()?,
//!     ..Spec::new("uniform:layers=12")
//! };
//! let m = evaluate(&spec.resolve(&Catalog::embedded()?)?)?;
//! assert!((m.speedup - 35.0 / 23.0).abs() < 1e-9);
//! # Ok::<(), perfcast::Error>(())
//! ```

use super::calib::whatif::{self, CostSource, Outcome};
use super::profile::{catalog_name, catalog_profile_dtype, catalog_seq};
use super::{
    Cache, Dtype, GradNorms, ModelSpec, Params, Policy, Profile, RunShape, Synthetic, Tier,
};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

fn default_gpu() -> String {
    "h200".into()
}
fn default_epochs() -> u32 {
    3
}
fn default_samples() -> u64 {
    10_000
}
fn default_batch() -> u32 {
    32
}
fn default_policy() -> Policy {
    Policy::None
}
fn default_tier() -> Tier {
    Tier::None
}

fn de_parse_opt<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = Error>,
{
    de_parse(d).map(Some)
}

fn de_parse<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = Error>,
{
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

/// Resolved per-layer costs shared by the points of a study (see [`Spec::to_params_memo`]).
#[derive(Debug, Default)]
pub struct ProfileMemo(std::sync::Mutex<std::collections::HashMap<String, MemoEntry>>);

type MemoEntry = (Profile, String, Option<f64>);

/// Seed of the synthetic gradient norms when a spec names none (the CLI's `--seed` default).
pub const DEFAULT_SEED: u64 = 0x5eed;

/// One freeze what-if, keyed like the `perfcast freeze` flags (`--cache-read-bw` =
/// `cache_read_bw`; the older `*_bytes_per_s` / `*_bytes` keys are accepted). Defaults are the
/// CLI's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `uniform:layers=L`, `file:PATH`, or a catalog architecture.
    pub model: String,
    /// Catalog GPU.
    #[serde(default = "default_gpu")]
    pub gpu: String,
    /// Epochs.
    #[serde(default = "default_epochs")]
    pub epochs: u32,
    /// Training samples per epoch.
    #[serde(default = "default_samples")]
    pub samples: u64,
    /// Samples per iteration.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Tokens per sample of a catalog transformer (None: the catalog's `seq_len`).
    #[serde(default)]
    pub seq: Option<u32>,
    /// Training precision of a catalog model: `bf16` (mixed precision, the default) or `f32`.
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub dtype: Option<Dtype>,
    /// Per-layer costs of a catalog model: `auto` (the GPU's freeze calibration where it
    /// applies, else the roofline), `roofline`, or `calibrated` (an error where none applies).
    #[serde(default, deserialize_with = "de_parse")]
    pub costs: CostSource,
    /// Freezing policy (text form: see [`Policy::parse`]).
    #[serde(default = "default_policy", deserialize_with = "de_parse")]
    pub policy: Policy,
    /// Cache tier: none, gpu, ram, disk.
    #[serde(default = "default_tier", deserialize_with = "de_parse")]
    pub cache: Tier,
    /// AutoFreeze's one-epoch lag before cache writes.
    #[serde(default)]
    pub cache_lag: bool,
    /// Cache read bandwidth override, bytes/s.
    #[serde(default, alias = "cache_read_bw_bytes_per_s")]
    pub cache_read_bw: Option<f64>,
    /// Cache write bandwidth override, bytes/s.
    #[serde(default, alias = "cache_write_bw_bytes_per_s")]
    pub cache_write_bw: Option<f64>,
    /// Cache capacity override, bytes.
    #[serde(default, alias = "cache_capacity_bytes")]
    pub cache_capacity: Option<f64>,
    /// Gradient-norm trace (CSV) for autofreeze.
    pub grad_norms: Option<PathBuf>,
    /// Synthetic generator overrides `key=value,...` (used when `grad_norms` is absent).
    pub synthetic: Option<String>,
    /// Seed of the synthetic gradient norms (default: the CLI's 0x5eed; in a scenario, the
    /// scenario seed).
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Spec {
    /// A spec with defaults for `model` (h200, 3 epochs, 10 000 samples, batch 32, no freezing,
    /// no cache).
    pub fn new(model: impl Into<String>) -> Self {
        Spec {
            model: model.into(),
            gpu: default_gpu(),
            epochs: default_epochs(),
            samples: default_samples(),
            batch: default_batch(),
            seq: None,
            dtype: None,
            costs: CostSource::Auto,
            policy: default_policy(),
            cache: default_tier(),
            cache_lag: false,
            cache_read_bw: None,
            cache_write_bw: None,
            cache_capacity: None,
            grad_norms: None,
            synthetic: None,
            seed: None,
        }
    }

    /// Validates the spec against `cat` and builds what [`evaluate`](super::evaluate) needs, seeding synthetic
    /// gradient norms with the spec's `seed` (default [`DEFAULT_SEED`]).
    ///
    /// # Errors
    /// See [`Spec::to_params`].
    pub fn resolve(&self, cat: &Catalog) -> Result<Params> {
        self.to_params(cat, self.seed.unwrap_or(DEFAULT_SEED))
    }

    /// Builds validated [`Params`]; `seed` seeds the synthetic gradient norms when the policy
    /// needs norms and no trace file is given.
    ///
    /// # Errors
    /// Unknown model, GPU, policy or tier; out-of-range numbers; unreadable or malformed traces
    /// and profiles; `fixed` k larger than the layer count.
    pub fn to_params(&self, cat: &Catalog, seed: u64) -> Result<Params> {
        self.to_params_memo(cat, seed, &ProfileMemo::default())
    }

    /// [`Spec::to_params`], taking the per-layer costs from `memo` when a spec with the same
    /// model, GPU, batch, seq, dtype, costs and gradient-norm need resolved them before (a study
    /// resolves each profile once, not once per point).
    ///
    /// # Errors
    /// As [`Spec::to_params`].
    pub fn to_params_memo(&self, cat: &Catalog, seed: u64, memo: &ProfileMemo) -> Result<Params> {
        let shape = RunShape::new(self.epochs, self.samples, self.batch)?;
        let gpu = cat.gpu(&self.gpu)?;
        let policy = self.policy.clone();
        let key = format!(
            "{}|{}|{}|{:?}|{:?}|{:?}|{}",
            self.model,
            gpu.name,
            self.batch,
            self.seq,
            self.dtype,
            self.costs,
            policy.needs_grad_norms()
        );
        let cached = memo.0.lock().ok().and_then(|m| m.get(&key).cloned());
        let (profile, costs, baseline_iter_s) = match cached {
            Some(c) => c,
            None => {
                let c = self.profile(cat, &gpu.name, policy.needs_grad_norms())?;
                if let Ok(mut m) = memo.0.lock() {
                    m.insert(key, c.clone());
                }
                c
            }
        };
        let tier = self.cache;
        let mut cache = Cache::new(
            tier,
            gpu,
            self.cache_lag,
            self.cache_read_bw,
            self.cache_write_bw,
            self.cache_capacity,
        )?;
        if tier == Tier::Gpu && self.cache_capacity.is_none() {
            // The cache shares device memory with the training state: fp32 weights and gradients
            // and Adam's two moments, 16 bytes per parameter (activations not counted).
            cache.capacity_bytes = (cache.capacity_bytes - 16.0 * profile.params() as f64).max(0.0);
        }
        let (grads, used_seed) = if policy.needs_grad_norms() {
            match &self.grad_norms {
                Some(p) => {
                    if self.synthetic.is_some() {
                        return Err(Error::range(
                            "synthetic",
                            "given",
                            "absent when a gradient-norm trace file is given",
                        ));
                    }
                    (Some(GradNorms::read(p, &profile)?), None)
                }
                None => {
                    let s = Synthetic::parse(self.synthetic.as_deref().unwrap_or(""), seed)?;
                    (
                        Some(s.generate(profile.len(), shape.total_steps())),
                        Some(s.seed),
                    )
                }
            }
        } else {
            (None, None)
        };
        let p = Params {
            profile,
            gpu: gpu.name.clone(),
            shape,
            policy,
            cache,
            grads,
            seed: used_seed,
            baseline_iter_s,
            dtype: self.dtype.or_else(|| {
                matches!(ModelSpec::parse(&self.model), Ok(ModelSpec::Catalog(_)))
                    .then_some(Dtype::Bf16)
            }),
            costs,
        };
        // Policy checks that need the layer count (k ≤ L) happen here, before anything runs.
        p.policy.timeline(p.profile.len(), 0, p.grads.as_ref())?;
        Ok(p)
    }
}

impl Spec {
    /// The per-layer costs and their label (see [`whatif`]): for a catalog model the GPU's
    /// calibration where it applies (unless `costs = roofline`), else the roofline; uniform and
    /// file profiles as given. `grad_norms`: AutoFreeze pays each trainable unit's norm (where
    /// the costs include one: calibrated); then the third value is the baseline iteration without
    /// it, seconds.
    fn profile(
        &self,
        cat: &Catalog,
        gpu: &str,
        grad_norms: bool,
    ) -> Result<(Profile, String, Option<f64>)> {
        let model = ModelSpec::parse(&self.model)?;
        let ModelSpec::Catalog(name) = &model else {
            if let Some(d) = self.dtype {
                return Err(Error::range(
                    "dtype",
                    d.name(),
                    "given only with a catalog model (uniform and file profiles carry their own costs)",
                ));
            }
            if self.costs == CostSource::Calibrated {
                return Err(Error::range(
                    "costs",
                    "calibrated",
                    "auto or roofline with a uniform or file profile (their costs are given)",
                ));
            }
            let p = model.resolve_seq(cat, gpu, self.batch, self.seq)?;
            let label = match model {
                ModelSpec::Uniform { .. } => "given profile (uniform unit model)".to_string(),
                _ => format!("given profile ({})", p.source),
            };
            return Ok((p, label, None));
        };
        let dtype = self.dtype.unwrap_or_default();
        // The roofline first: it validates the name, batch and seq for both paths.
        let roof = catalog_profile_dtype(cat, name, gpu, self.batch, self.seq, dtype)?;
        let name = catalog_name(cat, name)?;
        let why = if self.costs == CostSource::Roofline {
            None
        } else {
            match whatif::load(cat, gpu)? {
                Some(w) => {
                    let seq = catalog_seq(cat, &name, self.seq);
                    let r =
                        |norms| whatif::resolve(&w, cat, gpu, &name, self.batch, seq, dtype, norms);
                    match r(grad_norms)? {
                        Outcome::Calibrated { profile, costs } => {
                            let base = match (grad_norms, r(false)?) {
                                (true, Outcome::Calibrated { profile: p, .. }) => {
                                    Some(super::IterCosts::new(&p).base[0])
                                }
                                _ => None,
                            };
                            return Ok((profile, costs, base));
                        }
                        Outcome::NotApplicable(why) => Some(why),
                    }
                }
                None => Some(format!("no freeze calibration for {gpu}")),
            }
        };
        if self.costs == CostSource::Calibrated {
            return Err(Error::range(
                "costs",
                "calibrated",
                format!(
                    "auto or roofline here: {}",
                    why.as_deref().unwrap_or("no calibration applies")
                ),
            ));
        }
        let label = match why {
            Some(w) => format!("{}; {w}", whatif::ROOFLINE),
            None => whatif::ROOFLINE.to_string(),
        };
        Ok((roof, label, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are the CLI flags; the older scenario keys are aliases of the same fields.
    #[test]
    fn keys_follow_the_flags_and_old_keys_still_parse() {
        let new: Spec = toml::from_str(
            "model = 'bert-base'\npolicy = 'fixed:k=6'\ncache = 'ram'\ncache_read_bw = 1e9\ncache_write_bw = 2e9\ncache_capacity = 3e9\n",
        )
        .unwrap();
        let old: Spec = toml::from_str(
            "model = 'bert-base'\npolicy = 'fixed:k=6'\ncache = 'ram'\ncache_read_bw_bytes_per_s = 1e9\ncache_write_bw_bytes_per_s = 2e9\ncache_capacity_bytes = 3e9\n",
        )
        .unwrap();
        assert_eq!(new, old);
        assert_eq!(new.policy, Policy::Fixed { k: 6, from: 0 });
        assert_eq!(new.cache, Tier::Ram);
        let e = toml::from_str::<Spec>("model = 'bert-base'\npolicy = 'fixd'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean 'fixed'"), "{e}");
    }
}
