//! Per-layer gradient-norm traces (what AutoFreeze decides from): a CSV reader and a seeded
//! synthetic generator for what-ifs.
//!
//! **Trace format** (CSV, header optional, `#` comments and blank lines ignored):
//! ```text
//! step,layer,grad_norm
//! 0,0,1.52
//! 0,layer1,1.31
//! ```
//! `step` is the number of iterations completed when the norm was observed (so a record at step
//! `s` is available to a freeze decision taken before iteration `s` runs); `layer` is a 0-based
//! index or a layer name of the profile; `grad_norm` is the L2 norm of the layer's weight
//! gradient (finite, ≥ 0). Lines must be sorted by step (non-decreasing); a `(step, layer)` pair
//! may appear once; every layer must appear at least once.
//!
//! **Synthetic generator** ([`Synthetic`]): layer `l` of `L` has norm
//! `g_l(t) = floor + (g0 − floor) · exp(−t / τ_l) · e^{σ z}` with
//! `τ_l = T · (τ_min + (τ_max − τ_min) · l / (L − 1))`, `T` the run's iterations and `z` a standard
//! normal draw per record (Xoshiro256++ seeded with `seed`). Lower layers converge sooner
//! (smaller τ), the pattern AutoFreeze exploits (Liu, Agarwal, Venkataraman 2021, Fig. 2: gradient
//! norm change of lower BERT layers stabilises first); σ adds measurement noise. It is a what-if
//! device, not a measurement.

use super::profile::Profile;
use crate::check;
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fmt::Write as _;
use std::path::Path;

/// Measured traces embedded in the binary (path relative to the repository root, text), so the
/// default scenario replays them from any directory.
pub const EMBEDDED_TRACES: &[(&str, &str)] = &[(
    "traces/freeze-bert-base-h200-gradnorms.csv",
    include_str!("../../traces/freeze-bert-base-h200-gradnorms.csv"),
)];

/// Gradient norms per layer, each a list of `(step, norm)` sorted by step.
#[derive(Debug, Clone, PartialEq)]
pub struct GradNorms {
    /// `by_layer[l]` = records of layer `l`, sorted by step, unique steps.
    pub by_layer: Vec<Vec<(u64, f64)>>,
    /// Where the norms came from (file path, or the generator and its seed).
    pub source: String,
}

impl GradNorms {
    /// The norm of `layer` observed last at or before `step`, if any.
    pub fn at(&self, layer: usize, step: u64) -> Option<f64> {
        let r = self.by_layer.get(layer)?;
        let i = r.partition_point(|(s, _)| *s <= step);
        (i > 0).then(|| r[i - 1].1)
    }

    /// Parses CSV text (see the module docs); `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Parse`] naming `path:line` for a malformed line, a bad number, a step smaller
    /// than the previous line's, a repeated `(step, layer)`, an unknown layer; or a layer with no
    /// records at all.
    pub fn parse(text: &str, path: &Path, profile: &Profile) -> Result<Self> {
        let mut by_layer: Vec<Vec<(u64, f64)>> = vec![Vec::new(); profile.len()];
        let mut last_step: Option<u64> = None;
        let mut header_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i as u64 + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let perr = |m: String| Error::parse(path, Some(lineno), m);
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if !header_seen
                && last_step.is_none()
                && cols.first().is_some_and(|c| c.eq_ignore_ascii_case("step"))
            {
                if cols != ["step", "layer", "grad_norm"] {
                    return Err(perr(format!(
                        "header '{line}': must be step,layer,grad_norm"
                    )));
                }
                header_seen = true;
                continue;
            }
            if cols.len() != 3 {
                return Err(perr(format!(
                    "{} columns in '{line}': must be 3 (step,layer,grad_norm)",
                    cols.len()
                )));
            }
            let step: u64 = cols[0]
                .parse()
                .map_err(|_| perr(format!("step = {}: must be an integer >= 0", cols[0])))?;
            if let Some(p) = last_step {
                if step < p {
                    return Err(perr(format!(
                        "step = {step} after step {p}: must be sorted by step (non-decreasing)"
                    )));
                }
            }
            last_step = Some(step);
            let layer = profile
                .layer_index(cols[1])
                .map_err(|e| perr(e.to_string()))?;
            let g: f64 = cols[2].parse().map_err(|_| {
                perr(format!(
                    "grad_norm = {}: must be a finite number >= 0",
                    cols[2]
                ))
            })?;
            check::non_negative("grad_norm", g).map_err(|e| perr(e.to_string()))?;
            let recs = &mut by_layer[layer];
            if recs.last().is_some_and(|(s, _)| *s == step) {
                return Err(perr(format!(
                    "layer {} at step {step} repeated: one record per (step, layer)",
                    cols[1]
                )));
            }
            recs.push((step, g));
        }
        if let Some(l) = by_layer.iter().position(Vec::is_empty) {
            return Err(Error::parse(
                path,
                None,
                format!(
                    "no records for layer {l} ('{}'): the trace must cover all {} layers of {}",
                    profile.layers[l].name,
                    profile.len(),
                    profile.model
                ),
            ));
        }
        Ok(GradNorms {
            by_layer,
            source: path.display().to_string(),
        })
    }

    /// Reads a trace file. A path of [`EMBEDDED_TRACES`] that is not on disk (the binary run
    /// outside the repository) reads the embedded copy; its source then says so.
    ///
    /// # Errors
    /// [`Error::Io`], or as [`GradNorms::parse`].
    pub fn read(path: &Path, profile: &Profile) -> Result<Self> {
        if !path.exists() {
            let rel = path.to_string_lossy();
            let rel = rel.trim_start_matches("./");
            if let Some((_, text)) = EMBEDDED_TRACES.iter().find(|(n, _)| *n == rel) {
                let mut g = Self::parse(text, path, profile)?;
                g.source = format!("{rel} (embedded copy)");
                return Ok(g);
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path, profile)
    }

    /// The trace as CSV (`step,layer,grad_norm`, layers by index, sorted by step then layer).
    pub fn to_csv(&self) -> String {
        let mut all: Vec<(u64, usize, f64)> = self
            .by_layer
            .iter()
            .enumerate()
            .flat_map(|(l, r)| r.iter().map(move |(s, g)| (*s, l, *g)))
            .collect();
        all.sort_by_key(|a| (a.0, a.1));
        let mut s = String::from("step,layer,grad_norm\n");
        for (st, l, g) in all {
            let _ = writeln!(s, "{st},{l},{g:.6}");
        }
        s
    }
}

/// Parameters of the synthetic gradient-norm generator (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// Generator seed (reported in the output).
    pub seed: u64,
    /// Initial norm g0 of every layer.
    pub g0: f64,
    /// Norm every layer converges to.
    pub floor: f64,
    /// Bottom layer's decay constant as a fraction of the run.
    pub tau_min: f64,
    /// Top layer's decay constant as a fraction of the run.
    pub tau_max: f64,
    /// Log-normal noise σ per record.
    pub noise: f64,
    /// Record every this many iterations (None: a hundredth of the run, at least 1).
    pub every: Option<u64>,
}

impl Synthetic {
    /// Defaults: g0 = 1, floor = 0.2, τ from 0.05 to 1.0 of the run, σ = 0.02.
    pub fn new(seed: u64) -> Self {
        Synthetic {
            seed,
            g0: 1.0,
            floor: 0.2,
            tau_min: 0.05,
            tau_max: 1.0,
            noise: 0.02,
            every: None,
        }
    }

    /// Parses `key=value,...` overrides (keys g0, floor, tau_min, tau_max, noise, every, seed).
    ///
    /// # Errors
    /// Unknown keys or out-of-range values, naming `synthetic.<key>`.
    pub fn parse(s: &str, seed: u64) -> Result<Self> {
        let mut out = Synthetic::new(seed);
        let kv = crate::check::parse_kv(
            "synthetic",
            s,
            &[
                "g0", "floor", "tau_min", "tau_max", "noise", "every", "seed",
            ],
        )?;
        for (k, v) in &kv {
            let field = format!("synthetic.{k}");
            match k.as_str() {
                "every" => {
                    out.every = Some(crate::check::parse_int(&field, v, 1, i64::MAX)? as u64)
                }
                "seed" => {
                    out.seed = v
                        .parse()
                        .map_err(|_| Error::range(&field, v, "an integer in [0, 2^64)"))?
                }
                _ => {
                    let x: f64 = v.parse().map_err(|_| Error::range(&field, v, "a number"))?;
                    match k.as_str() {
                        "g0" => out.g0 = x,
                        "floor" => out.floor = x,
                        "tau_min" => out.tau_min = x,
                        "tau_max" => out.tau_max = x,
                        _ => out.noise = x,
                    }
                }
            }
        }
        out.validate()?;
        Ok(out)
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// `g0 > 0`, `0 ≤ floor ≤ g0`, `0 < tau_min ≤ tau_max`, `0 ≤ noise ≤ 1`.
    pub fn validate(&self) -> Result<()> {
        check::positive("synthetic.g0", self.g0)?;
        check::in_closed("synthetic.floor", self.floor, 0.0, self.g0)?;
        check::positive("synthetic.tau_min", self.tau_min)?;
        check::in_closed("synthetic.tau_max", self.tau_max, self.tau_min, 1e6)?;
        check::in_closed("synthetic.noise", self.noise, 0.0, 1.0)?;
        Ok(())
    }

    /// A label with every parameter and the seed, for the output.
    pub fn label(&self) -> String {
        format!(
            "synthetic:seed={},g0={},floor={},tau_min={},tau_max={},noise={}{}",
            self.seed,
            self.g0,
            self.floor,
            self.tau_min,
            self.tau_max,
            self.noise,
            self.every
                .map(|e| format!(",every={e}"))
                .unwrap_or_default()
        )
    }

    /// Generates records at steps `0, every, 2·every, …, ≤ total_steps` for `layers` layers.
    pub fn generate(&self, layers: usize, total_steps: u64) -> GradNorms {
        let every = self.every.unwrap_or((total_steps / 100).max(1)).max(1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let t_run = total_steps.max(1) as f64;
        let taus: Vec<f64> = (0..layers)
            .map(|l| {
                let f = if layers > 1 {
                    l as f64 / (layers - 1) as f64
                } else {
                    0.0
                };
                t_run * (self.tau_min + (self.tau_max - self.tau_min) * f)
            })
            .collect();
        let mut by_layer = vec![Vec::new(); layers];
        let mut step = 0u64;
        loop {
            for (l, tau) in taus.iter().enumerate() {
                let z: f64 = StandardNormal.sample(&mut rng);
                let g = self.floor + (self.g0 - self.floor) * (-(step as f64) / tau).exp();
                by_layer[l].push((step, g * (self.noise * z).exp()));
            }
            match step.checked_add(every) {
                Some(s) if s <= total_steps => step = s,
                _ => break,
            }
        }
        GradNorms {
            by_layer,
            source: self.label(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prof(l: usize) -> Profile {
        Profile::uniform(l, 1).unwrap()
    }

    #[test]
    fn reads_names_and_indices_and_looks_up_last_record() {
        let g = GradNorms::parse(
            "step,layer,grad_norm\n0,0,1.0\n0,layer1,2.0\n# c\n\n10,0,0.5\n",
            Path::new("t.csv"),
            &prof(2),
        )
        .unwrap();
        assert_eq!(g.at(0, 9), Some(1.0));
        assert_eq!(g.at(0, 10), Some(0.5));
        assert_eq!(g.at(1, 100), Some(2.0));
        let g2 = GradNorms::parse(&g.to_csv(), Path::new("t2.csv"), &prof(2)).unwrap();
        assert_eq!(g2.by_layer, g.by_layer);
    }

    #[test]
    fn bad_traces_name_the_line() {
        for (text, needle) in [
            (
                "0,0,1\n0,1,1\n5,0,1\n3,1,1\n",
                "t.csv:4: step = 3 after step 5",
            ),
            ("0,0,1\n0,1\n", "t.csv:2: 2 columns"),
            (
                "0,0,1\n0,7,1\n",
                "t.csv:2: layer = 7: must be an integer in [0, 1]",
            ),
            ("0,0,1\n0,layr1,1\n", "t.csv:2: unknown layer 'layr1'"),
            ("0,0,x\n", "t.csv:1: grad_norm = x"),
            ("0,0,-1\n", "t.csv:1: grad_norm = -1"),
            ("0,0,NaN\n", "t.csv:1: grad_norm = NaN"),
            ("-1,0,1\n", "t.csv:1: step = -1"),
            (
                "0,0,1\n0,0,2\n0,1,1\n",
                "t.csv:2: layer 0 at step 0 repeated",
            ),
            ("0,0,1\n", "no records for layer 1"),
            ("step,layer,norm\n", "t.csv:1: header"),
        ] {
            let e = GradNorms::parse(text, Path::new("t.csv"), &prof(2))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn synthetic_is_seeded_and_decays() {
        let s = Synthetic::new(7);
        let a = s.generate(4, 1000);
        assert_eq!(a, s.generate(4, 1000));
        assert_ne!(a.by_layer, Synthetic::new(8).generate(4, 1000).by_layer);
        assert_eq!(a.by_layer[0].len(), 101);
        // Without noise the bottom layer is at its floor (within 1e-6) by the end, the top not.
        let q = Synthetic {
            noise: 0.0,
            ..Synthetic::new(1)
        }
        .generate(4, 1000);
        assert!((q.at(0, 1000).unwrap() - 0.2).abs() < 1e-6);
        assert!(q.at(3, 1000).unwrap() > 0.45);
        assert!(Synthetic::parse("noise=2", 0)
            .unwrap_err()
            .to_string()
            .contains("synthetic.noise = 2"));
        assert!(Synthetic::parse("bogus=1", 0)
            .unwrap_err()
            .to_string()
            .contains("synthetic.bogus"));
        assert!(a.source.contains("seed=7"));
    }
}
