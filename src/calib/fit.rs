//! Least-squares calibration of the roofline latency model ([`crate::specdec::latency`]) from
//! forward-latency measurements.
//!
//! The model of one forward is, summed over its layers and LM head,
//!
//! ```text
//! t = Σ_terms max(F / P, B / BW) + layers · layer_overhead_s + step_overhead_s
//! ```
//!
//! Let θ = (1/P, 1/BW, layer_overhead_s, step_overhead_s). Once each roofline term is assigned a
//! regime (compute-bound: contributes F·θ₁; memory-bound: B·θ₂), t is linear in θ. The fit
//! alternates: assign every term's regime from the current θ, solve the weighted linear least
//! squares problem min Σ ((row·θ − m)/m)² (weights 1/measured, i.e. relative error) with the
//! bounds P ≤ peak, BW ≤ peak, overheads ≥ 0, and repeat until the regimes no longer change (a
//! fixed point, where the linear model equals the max-model exactly). Several starting points are
//! tried and the θ with the smallest exact relative error wins.
//!
//! Each bounded solve is exact: every subset of the parameters is tried at its bound with the
//! others solved by SVD (columns scaled to unit norm), and the best feasible solution is kept
//! (2⁴ solves). A parameter whose column is zero in the final regimes (e.g. the FLOP rate when no
//! measured term is compute-bound) is not identified by the data: it keeps its prior value and is
//! reported as such.
//!
//! The function takes `&[ForwardPoint]` only, which can be built from `forward` rows only
//! ([`super::measure::ForwardPoint::from_row`]): end-to-end measurements cannot enter the fit.

use super::measure::{ForwardPoint, Origin};
use super::metrics::{rel_err, ErrorStats};
use crate::catalog::{Catalog, Gpu, LatencyDefaults};
use crate::error::{Error, Result};
use crate::specdec::latency::Work;
use crate::specdec::{ForwardModel, HwRates};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Number of fitted parameters.
pub const K: usize = 9;
/// Names of θ's components.
pub const PARAM_NAMES: [&str; K] = [
    "1/flops_per_s",
    "1/bw_bytes_per_s",
    "layer_overhead_s",
    "step_overhead_s",
    "host_layer_s",
    "score_elem_s",
    "1/attn_bw_bytes_per_s",
    "multi_token_layer_s",
    "multi_row_layer_s",
];

/// One point's residual after the fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Residual {
    /// Results file.
    pub file: String,
    /// Line in that file.
    pub line: u64,
    /// Measurement set.
    pub set: String,
    /// Model (with `@layers=A-B` for partial forwards).
    pub model: String,
    /// Sequences.
    pub batch: f64,
    /// New tokens per sequence.
    pub new_tokens: f64,
    /// Tokens in the KV cache.
    pub context_tokens: f64,
    /// Measured median, seconds.
    pub measured_s: f64,
    /// Fitted model, seconds.
    pub predicted_s: f64,
    /// (predicted − measured)/measured.
    pub rel_err: f64,
    /// Regimes: `linear/attention/head`, each `C` (compute-bound) or `M` (memory-bound); `H/head`
    /// when the layers are host-bound (`host_layer_s` exceeds their GPU time).
    pub regimes: String,
    /// Bytes the forward must stream at least once (weights of its layers and head + KV cache).
    pub bytes: f64,
    /// Bandwidth floor: `bytes` over the catalog's peak HBM bandwidth, seconds.
    pub bw_floor_s: f64,
    /// `bytes / measured_s`: the bandwidth the measured forward achieved, bytes/s.
    pub achieved_bw_bytes_per_s: f64,
}

/// The result of [`fit_latency`].
#[derive(Debug, Clone)]
pub struct Fit {
    /// Fitted parameters relative to the GPU's peaks (the calibration file's `[latency]`).
    pub latency: LatencyDefaults,
    /// Effective matmul rate, FLOP/s.
    pub flops_per_s: f64,
    /// Effective bandwidth, bytes/s.
    pub bw_bytes_per_s: f64,
    /// Per-point residuals, in input order.
    pub residuals: Vec<Residual>,
    /// Relative-error summary over all points.
    pub stats: ErrorStats,
    /// Whether each parameter is determined by the data (its column is non-zero in the final
    /// regimes); an undetermined one keeps its prior value.
    pub identified: [bool; K],
    /// Whether each parameter ended at its bound (efficiency 1 or overhead 0).
    pub at_bound: [bool; K],
    /// Half-width of the 95% confidence interval of each parameter relative to its value
    /// (Student-t, from the weighted least-squares covariance at the final regimes); None when
    /// not identified, at a bound, or with too few points.
    pub ci95_rel: [Option<f64>; K],
    /// Regime-assignment iterations of the winning start.
    pub iterations: usize,
    /// Starting points tried.
    pub starts: usize,
    /// Points given less than full weight by the robust refinement (0 without it).
    pub downweighted: usize,
}

struct Prepared<'a> {
    point: &'a ForwardPoint,
    model: ForwardModel,
    from: u32,
    to: u32,
    head: bool,
}

fn hw_of(theta: &[f64; K]) -> HwRates {
    HwRates {
        flops_per_s: 1.0 / theta[0],
        bw_bytes_per_s: 1.0 / theta[1],
        layer_overhead_s: theta[2],
        step_overhead_s: theta[3],
        host_layer_s: theta[4],
        score_elem_s: theta[5],
        attn_bw_bytes_per_s: 1.0 / theta[6],
        multi_token_layer_s: theta[7],
        multi_row_layer_s: theta[8],
        dtype_bytes: 2.0,
    }
}

impl Prepared<'_> {
    /// Linear coefficients of θ at the regimes `hw` implies, and the regime string.
    fn row(&self, hw: &HwRates) -> ([f64; K], String) {
        let mut r = [0.0; K];
        let mut regimes = Vec::new();
        let nl = f64::from(self.to - self.from);
        let lw = self.model.layer_work(self.point.shape, None);
        // `bw` is θ's index of the bandwidth the term streams at (1: weights, 6: attention).
        let pick = |w: Work, count: f64, bw: usize, r: &mut [f64; K], regimes: &mut Vec<&str>| {
            let compute = if bw == 6 {
                w.attn_compute_bound(hw)
            } else {
                w.compute_bound(hw)
            };
            if compute {
                r[0] += count * w.flops;
                regimes.push("C");
            } else {
                r[bw] += count * w.bytes;
                regimes.push("M");
            }
        };
        // A layer costs max(host_layer_s, roofline + layer_overhead_s).
        let gpu_layer = lw.lin.time_s(hw)
            + lw.attn.attn_time_s(hw)
            + lw.score_elems * hw.score_elem_s
            + hw.layer_overhead_s
            + hw.shape_layer_overhead_s(self.point.shape);
        if gpu_layer >= hw.host_layer_s {
            pick(lw.lin, nl, 1, &mut r, &mut regimes);
            pick(lw.attn, nl, 6, &mut r, &mut regimes);
            r[2] = nl;
            r[5] = nl * lw.score_elems;
            if self.point.shape.multi_token() {
                r[7] = nl;
            }
            if self.point.shape.multi_row() {
                r[8] = nl;
            }
        } else {
            r[4] = nl;
            regimes.push("H");
        }
        if self.head {
            pick(
                self.model.head_work(self.point.shape),
                1.0,
                1,
                &mut r,
                &mut regimes,
            );
        }
        r[3] = 1.0;
        (r, regimes.join("/"))
    }

    /// Bytes streamed at least once: weights of the layers run (and the head) plus their KV cache.
    fn bytes(&self) -> f64 {
        let lw = self.model.layer_work(self.point.shape, None);
        let head = if self.head {
            self.model.head_work(self.point.shape).bytes
        } else {
            0.0
        };
        f64::from(self.to - self.from) * (lw.lin.bytes + lw.attn.bytes) + head
    }

    /// The latency model's own prediction at `hw` (what `specdec` computes).
    fn predict(&self, hw: &HwRates) -> f64 {
        let Ok(m) = ForwardModel::new(self.model.arch.clone(), *hw, None) else {
            return f64::INFINITY;
        };
        if self.head {
            m.forward_s(self.point.shape)
        } else {
            m.layers_s(self.point.shape, self.from, self.to) + hw.step_overhead_s
        }
    }
}

/// Σ w_i · relative error², `sw` = √w (robust weights; 1 for plain least squares).
fn objective(prep: &[Prepared], theta: &[f64; K], sw: &[f64]) -> f64 {
    let hw = hw_of(theta);
    prep.iter()
        .zip(sw)
        .map(|(p, w)| (w * rel_err(p.predict(&hw), p.point.measured_s)).powi(2))
        .sum()
}

/// Weighted least squares with lower bounds: min Σ ((row·θ − m)/m)² over θ ≥ lower, with
/// `fixed` components held at `theta`'s values. Exact by enumeration of the active set.
fn bounded_wls(
    rows: &[[f64; K]],
    meas: &[f64],
    sw: &[f64],
    lower: &[f64; K],
    fixed: &[bool; K],
    theta: &[f64; K],
) -> [f64; K] {
    let n = rows.len();
    let free: Vec<usize> = (0..K).filter(|&j| !fixed[j]).collect();
    let mut best: Option<(f64, [f64; K])> = None;
    for mask in 0u32..(1 << free.len()) {
        let mut t = *theta;
        let mut solve_cols = Vec::new();
        for (bit, &j) in free.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                t[j] = lower[j];
            } else {
                solve_cols.push(j);
            }
        }
        if !solve_cols.is_empty() {
            let mut a = DMatrix::<f64>::zeros(n, solve_cols.len());
            let mut b = DVector::<f64>::zeros(n);
            for i in 0..n {
                let known: f64 = (0..K)
                    .filter(|j| !solve_cols.contains(j))
                    .map(|j| rows[i][j] * t[j])
                    .sum();
                b[i] = sw[i] * (1.0 - known / meas[i]);
                for (c, &j) in solve_cols.iter().enumerate() {
                    a[(i, c)] = sw[i] * rows[i][j] / meas[i];
                }
            }
            let scale: Vec<f64> = (0..solve_cols.len()).map(|c| a.column(c).norm()).collect();
            if scale.iter().any(|s| *s == 0.0 || !s.is_finite()) {
                continue;
            }
            for (c, s) in scale.iter().enumerate() {
                a.column_mut(c).unscale_mut(*s);
            }
            let Ok(x) = a.svd(true, true).solve(&b, 1e-14) else {
                continue;
            };
            let mut ok = true;
            for (c, &j) in solve_cols.iter().enumerate() {
                t[j] = x[c] / scale[c];
                if t[j].is_nan() || t[j] < lower[j] || !t[j].is_finite() {
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
        }
        let obj: f64 = (0..n)
            .map(|i| {
                (sw[i] * ((0..K).map(|j| rows[i][j] * t[j]).sum::<f64>() / meas[i] - 1.0)).powi(2)
            })
            .sum();
        if mask == 0 {
            // The unconstrained minimiser is feasible: it is the constrained optimum too.
            return t;
        }
        if best.as_ref().is_none_or(|(o, _)| obj < *o) {
            best = Some((obj, t));
        }
    }
    best.map(|b| b.1).unwrap_or(*theta)
}

/// Fits the latency model of `gpu` to `points` (see the module docs), starting from `prior`;
/// `robust` adds the Huber reweighting.
///
/// # Errors
/// Fewer than 4 points, a model unknown to the catalog (naming file and line), or a partial
/// forward's layer range beyond the model's depth.
pub fn fit_latency(
    points: &[ForwardPoint],
    cat: &Catalog,
    gpu: &Gpu,
    prior: &LatencyDefaults,
    robust: bool,
) -> Result<Fit> {
    if points.len() < K {
        return Err(Error::range("forward points", points.len(), format!(">= {K} (one per fitted parameter; the results files hold too few kind=forward rows)")));
    }
    let prior_hw = HwRates::bf16(gpu, prior);
    let mut prep = Vec::with_capacity(points.len());
    for p in points {
        let arch = cat
            .llm(&p.model)
            .map_err(|e| p.origin.err(e.to_string()))?
            .clone();
        let layers = arch.layers;
        let (from, to, head) = match p.layers {
            None => (0, layers, true),
            Some((a, b)) if b <= layers => (a, b, false),
            Some((_, b)) => {
                return Err(p.origin.err(format!(
                    "model = '{}@layers=..{b}': {} has {layers} layers",
                    p.model, p.model
                )))
            }
        };
        let model =
            ForwardModel::new(arch, prior_hw, None).map_err(|e| p.origin.err(e.to_string()))?;
        prep.push(Prepared {
            point: p,
            model,
            from,
            to,
            head,
        });
    }
    let meas: Vec<f64> = points.iter().map(|p| p.measured_s).collect();
    let lower = [
        1.0 / gpu.bf16_flops,
        1.0 / gpu.hbm_bw_bytes_per_s,
        0.0,
        0.0,
        0.0,
        0.0,
        1.0 / gpu.hbm_bw_bytes_per_s,
        0.0,
        0.0,
    ];
    let prior_theta = [
        1.0 / prior_hw.flops_per_s,
        1.0 / prior_hw.bw_bytes_per_s,
        prior.layer_overhead_s,
        prior.step_overhead_s,
        prior.host_layer_s,
        prior.score_elem_s,
        1.0 / prior_hw.attn_bw_bytes_per_s,
        prior.multi_token_layer_s,
        prior.multi_row_layer_s,
    ];
    // Host-bound starts: a layer's host time near the fastest measured time per layer.
    let mut per_layer: Vec<f64> = prep
        .iter()
        .map(|p| p.point.measured_s / f64::from((p.to - p.from).max(1)))
        .collect();
    per_layer.sort_by(f64::total_cmp);
    let host_guesses = [
        0.0,
        0.8 * per_layer[0],
        0.5 * per_layer[per_layer.len() / 2],
    ];
    let mut starts = vec![prior_theta];
    for host in host_guesses {
        for fe in [0.2, 0.5, 0.9] {
            for (be, ae) in [(0.5, 0.5), (0.95, 0.95), (0.95, 0.15)] {
                starts.push([
                    1.0 / (gpu.bf16_flops * fe),
                    1.0 / (gpu.hbm_bw_bytes_per_s * be),
                    prior.layer_overhead_s,
                    prior.step_overhead_s,
                    host,
                    prior.score_elem_s,
                    1.0 / (gpu.hbm_bw_bytes_per_s * ae),
                    prior.multi_token_layer_s,
                    prior.multi_row_layer_s,
                ]);
            }
        }
    }
    let n_starts = starts.len();
    // Regime iteration from `start` with robust weights `sw`: the best (objective, θ, iteration).
    let descend = |start: [f64; K], sw: &[f64]| -> (f64, [f64; K], usize) {
        let mut theta = start;
        let mut seen: Vec<Vec<[f64; K]>> = Vec::new();
        let mut local_best = (objective(&prep, &theta, sw), theta, 0);
        for it in 1..=60 {
            let hw = hw_of(&theta);
            let rows: Vec<[f64; K]> = prep.iter().map(|p| p.row(&hw).0).collect();
            if seen.contains(&rows) {
                break;
            }
            let mut fixed = [false; K];
            for (j, f) in fixed.iter_mut().enumerate() {
                *f = rows.iter().all(|r| r[j] == 0.0);
            }
            theta = bounded_wls(&rows, &meas, sw, &lower, &fixed, &theta);
            seen.push(rows);
            let obj = objective(&prep, &theta, sw);
            if obj < local_best.0 {
                local_best = (obj, theta, it);
            }
        }
        local_best
    };
    let ones = vec![1.0; prep.len()];
    let mut best: Option<(f64, [f64; K], usize)> = None;
    for start in starts {
        let local_best = descend(start, &ones);
        if best
            .as_ref()
            .is_none_or(|b| local_best.0 < b.0 * (1.0 - 1e-12))
        {
            best = Some(local_best);
        }
    }
    // Robust refinement (iteratively reweighted least squares with Huber weights, k = 1.345 on
    // the MAD scale of the relative residuals): bursts of host contention in a few
    // measurements then pull the parameters less than the bulk of the grid.
    let mut downweighted = 0;
    if robust {
        for _ in 0..10 {
            let Some((_, theta, _)) = best else { break };
            let hw = hw_of(&theta);
            let r: Vec<f64> = prep
                .iter()
                .map(|p| rel_err(p.predict(&hw), p.point.measured_s))
                .collect();
            let mut abs: Vec<f64> = r.iter().map(|x| x.abs()).collect();
            abs.sort_by(f64::total_cmp);
            let scale = 1.4826 * abs[abs.len() / 2];
            if scale.is_nan() || scale <= 0.0 {
                break;
            }
            let sw: Vec<f64> = r
                .iter()
                .map(|x| (1.345 * scale / x.abs()).min(1.0).sqrt())
                .collect();
            downweighted = sw.iter().filter(|w| **w < 1.0).count();
            let next = descend(theta, &sw);
            let moved = (0..K)
                .map(|j| ((next.1[j] - theta[j]) / theta[j].abs().max(1e-300)).abs())
                .fold(0.0, f64::max);
            best = Some(next);
            if moved < 1e-6 {
                break;
            }
        }
    }
    let (_, theta, iterations) = best.unwrap_or((0.0, prior_theta, 0));
    let hw = hw_of(&theta);
    let rows: Vec<([f64; K], String)> = prep.iter().map(|p| p.row(&hw)).collect();
    let mut identified = [false; K];
    for (j, id) in identified.iter_mut().enumerate() {
        *id = rows.iter().any(|r| r.0[j] != 0.0);
    }
    let mut at_bound = [false; K];
    for j in 0..K {
        at_bound[j] = identified[j] && theta[j] <= lower[j] * (1.0 + 1e-9);
    }
    let ci95_rel = confidence(&rows, &meas, &theta, &identified, &at_bound);
    let residuals: Vec<Residual> = prep
        .iter()
        .zip(&rows)
        .map(|(p, (_, regimes))| {
            let predicted_s = p.predict(&hw);
            let model = match p.point.layers {
                Some((a, b)) => format!("{}@layers={a}-{b}", p.point.model),
                None => p.point.model.clone(),
            };
            let Origin { file, line } = &p.point.origin;
            Residual {
                file: file.display().to_string(),
                line: *line,
                set: p.point.set.clone(),
                model,
                batch: p.point.shape.batch,
                new_tokens: p.point.shape.new_tokens,
                context_tokens: p.point.shape.context_tokens,
                measured_s: p.point.measured_s,
                predicted_s,
                rel_err: rel_err(predicted_s, p.point.measured_s),
                regimes: regimes.clone(),
                bytes: p.bytes(),
                bw_floor_s: p.bytes() / gpu.hbm_bw_bytes_per_s,
                achieved_bw_bytes_per_s: p.bytes() / p.point.measured_s,
            }
        })
        .collect();
    let errs: Vec<f64> = residuals.iter().map(|r| r.rel_err).collect();
    let stats = ErrorStats::from_rel_errs(&errs)
        .ok_or_else(|| Error::Unsupported("no forward points".into()))?;
    let latency = LatencyDefaults {
        flops_efficiency: (hw.flops_per_s / gpu.bf16_flops).min(1.0),
        bw_efficiency: (hw.bw_bytes_per_s / gpu.hbm_bw_bytes_per_s).min(1.0),
        layer_overhead_s: theta[2],
        step_overhead_s: theta[3],
        host_layer_s: theta[4],
        score_elem_s: theta[5],
        attn_bw_efficiency: identified[6]
            .then(|| (hw.attn_bw_bytes_per_s / gpu.hbm_bw_bytes_per_s).min(1.0)),
        multi_token_layer_s: theta[7],
        multi_row_layer_s: theta[8],
    };
    Ok(Fit {
        latency,
        flops_per_s: hw.flops_per_s,
        bw_bytes_per_s: hw.bw_bytes_per_s,
        residuals,
        stats,
        identified,
        at_bound,
        ci95_rel,
        iterations,
        starts: n_starts,
        downweighted,
    })
}

/// 95% confidence half-widths (relative) of the free parameters from the weighted LS covariance.
fn confidence(
    rows: &[([f64; K], String)],
    meas: &[f64],
    theta: &[f64; K],
    identified: &[bool; K],
    at_bound: &[bool; K],
) -> [Option<f64>; K] {
    let cols: Vec<usize> = (0..K)
        .filter(|&j| identified[j] && !at_bound[j] && theta[j] > 0.0)
        .collect();
    let n = rows.len();
    let mut out = [None; K];
    if cols.is_empty() || n <= cols.len() {
        return out;
    }
    // Work in relative units: x_j = θ_j / θ̂_j, so the covariance is directly relative.
    let mut a = DMatrix::<f64>::zeros(n, cols.len());
    let mut rss = 0.0;
    for i in 0..n {
        for (c, &j) in cols.iter().enumerate() {
            a[(i, c)] = rows[i].0[j] * theta[j] / meas[i];
        }
        let pred: f64 = (0..K).map(|j| rows[i].0[j] * theta[j]).sum();
        rss += (pred / meas[i] - 1.0).powi(2);
    }
    let dof = (n - cols.len()) as f64;
    let Some(inv) = (a.transpose() * &a).try_inverse() else {
        return out;
    };
    let Ok(t) = StudentsT::new(0.0, 1.0, dof) else {
        return out;
    };
    let q = t.inverse_cdf(0.975);
    for (c, &j) in cols.iter().enumerate() {
        let var = inv[(c, c)] * rss / dof;
        if var.is_finite() && var >= 0.0 {
            out[j] = Some(q * var.sqrt());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_row_reproduces_the_latency_model_exactly() {
        // For any θ, row(θ)·θ must equal forward_s at θ: the fit optimises the same function
        // that `specdec` evaluates. Tolerance 1e-12 relative.
        let cat = Catalog::embedded().unwrap();
        let gpu = cat.gpu("h200").unwrap();
        let arch = cat.llm("llama-3.2-1b").unwrap().clone();
        let model = ForwardModel::new(arch, HwRates::bf16(gpu, &gpu.latency), None).unwrap();
        for (b, n, c) in [
            (1.0, 1.0, 0.0),
            (32.0, 9.0, 2048.0),
            (256.0, 64.0, 8000.0),
            (4.0, 3.0, 512.0),
        ] {
            let pt = crate::calib::measure::tests_support::forward_point(
                "llama-3.2-1b",
                None,
                b,
                n,
                c,
                1.0,
            );
            for theta in [
                [1e-15, 2e-13, 1e-5, 5e-5, 0.0, 0.0, 2e-13, 0.0, 0.0],
                [1e-14, 1e-12, 0.0, 0.0, 0.0, 1e-12, 5e-12, 1.2e-5, 4e-6],
                [5e-16, 4e-13, 3e-5, 0.0, 2e-4, 0.0, 4e-13, 1e-5, 0.0],
                [5e-16, 4e-13, 3e-5, 1e-4, 1e-3, 3e-13, 1e-12, 2e-5, 1e-5],
            ] {
                let hw = hw_of(&theta);
                let p = Prepared {
                    point: &pt,
                    model: model.clone(),
                    from: 0,
                    to: 16,
                    head: true,
                };
                let lin: f64 = p.row(&hw).0.iter().zip(&theta).map(|(r, t)| r * t).sum();
                let direct = p.predict(&hw);
                assert!((lin - direct).abs() <= 1e-12 * direct, "{lin} vs {direct}");
            }
        }
    }
}
