//! Prediction-error metrics. Errors are signed fractions `(predicted − measured)/measured`
//! (0.05 means the prediction is 5% high); summaries use their absolute values.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::Statistics;

/// The median of `v` (the mean of the middle two for an even count); `None` when empty. Shared
/// by the calibrations that describe several machines or repeats by their middle value (freeze's
/// newest hosts, gradcomp's DDP rank coupling).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// Signed relative error `(predicted − measured)/measured`.
pub fn rel_err(predicted: f64, measured: f64) -> f64 {
    (predicted - measured) / measured
}

/// Summary of the relative errors of a set of points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    /// Points summarised.
    pub points: usize,
    /// Mean absolute percentage error, as a fraction.
    pub mape: f64,
    /// Largest |relative error|, as a fraction.
    pub max_abs_pct_err: f64,
    /// Mean signed relative error (bias), as a fraction.
    pub mean_pct_err: f64,
    /// Root-mean-square relative error, as a fraction.
    pub rms_pct_err: f64,
    /// Half-width of the 95% Student-t confidence interval of the mean signed error (0 with one
    /// point).
    pub bias_ci95: f64,
}

impl ErrorStats {
    /// Summarises signed relative errors; None when `errs` is empty.
    pub fn from_rel_errs(errs: &[f64]) -> Option<Self> {
        if errs.is_empty() {
            return None;
        }
        let n = errs.len();
        let abs = errs.iter().map(|e| e.abs());
        let mape = abs.clone().mean();
        let max = abs.fold(0.0, f64::max);
        let mean = errs.iter().mean();
        let rms = errs.iter().map(|e| e * e).mean().sqrt();
        let ci = if n >= 2 {
            let sd = errs.iter().std_dev();
            StudentsT::new(0.0, 1.0, (n - 1) as f64)
                .map(|t| t.inverse_cdf(0.975) * sd / (n as f64).sqrt())
                .unwrap_or(f64::NAN)
        } else {
            0.0
        };
        Some(ErrorStats {
            points: n,
            mape,
            max_abs_pct_err: max,
            mean_pct_err: mean,
            rms_pct_err: rms,
            bias_ci95: ci,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 10.0]), Some(3.0));
    }

    #[test]
    fn hand_worked_summary() {
        // errors +0.1, −0.2, +0.3: MAPE 0.2, max 0.3, bias 0.0667, RMS sqrt(0.14/3) = 0.21602;
        // sd = sqrt(((0.0333)² + (0.2667)² + (0.2333)²)/2) = 0.25166, t(0.975, 2) = 4.3027,
        // half-width 4.3027·0.25166/√3 = 0.62516. Tolerance 1e-4.
        let s = ErrorStats::from_rel_errs(&[0.1, -0.2, 0.3]).unwrap();
        assert_eq!(s.points, 3);
        assert!((s.mape - 0.2).abs() < 1e-12);
        assert!((s.max_abs_pct_err - 0.3).abs() < 1e-12);
        assert!((s.mean_pct_err - 0.2 / 3.0).abs() < 1e-12);
        assert!((s.rms_pct_err - (0.14f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.bias_ci95 - 0.62516).abs() < 1e-4, "{}", s.bias_ci95);
        assert!(ErrorStats::from_rel_errs(&[]).is_none());
        assert_eq!(rel_err(110.0, 100.0), 0.1);
    }
}
