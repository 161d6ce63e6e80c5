//! How many drafted tokens the target accepts.
//!
//! Three equivalent descriptions are supported:
//! - i.i.d. acceptance α per drafted token (Leviathan et al. 2023, "Fast Inference from
//!   Transformers via Speculative Decoding", §3.1): P(token i accepted | 1..i−1 accepted) = α;
//! - a survival curve S(i) = P(at least i drafted tokens accepted), S(0) = 1, non-increasing;
//! - conditional per-position rates r(i) = S(i)/S(i−1).
//!
//! The expected number of tokens a speculation step emits is E = 1 + Σ_{i=1..γ} S(i), which for
//! i.i.d. α is (1 − α^(γ+1))/(1 − α).
//!
//! **An engine's acceptance rate is not α.** vLLM and similar engines report the *marginal*
//! rate ρ = accepted / drafted = (E − 1)/γ at the γ they ran with. For i.i.d. α,
//! ρ = α(1 − α^γ)/((1 − α)γ) < α. Use [`alpha_from_acceptance_rate`] to convert.

use crate::check;
use crate::error::{Error, Result};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// An acceptance model (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acceptance {
    /// Each drafted token is accepted with probability α, independently.
    Iid(f64),
    /// S(1), S(2), ...: probability that at least i drafted tokens are accepted.
    Survival(Vec<f64>),
    /// r(1), r(2), ...: probability token i is accepted given 1..i−1 were.
    Conditional(Vec<f64>),
}

impl Acceptance {
    /// i.i.d. acceptance α.
    ///
    /// # Errors
    /// `alpha` outside [0, 1] or NaN.
    pub fn iid(alpha: f64) -> Result<Self> {
        check::in_closed("alpha", alpha, 0.0, 1.0)?;
        Ok(Acceptance::Iid(alpha))
    }

    /// A survival curve S(1..=n).
    ///
    /// # Errors
    /// Empty, a value outside [0, 1], or an increase (S must be non-increasing).
    pub fn survival(s: Vec<f64>) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::range(
                "survival",
                "[]",
                "a non-empty list of probabilities",
            ));
        }
        let mut prev = 1.0;
        for (i, &v) in s.iter().enumerate() {
            check::in_closed(&format!("survival[{}]", i + 1), v, 0.0, 1.0)?;
            if v > prev + 1e-12 {
                return Err(Error::range(
                    format!("survival[{}]", i + 1),
                    v,
                    format!(
                        "<= survival[{}] = {prev} (a survival curve never increases)",
                        i
                    ),
                ));
            }
            prev = v;
        }
        Ok(Acceptance::Survival(s))
    }

    /// Conditional per-position rates r(1..=n).
    ///
    /// # Errors
    /// Empty or a value outside [0, 1].
    pub fn conditional(r: Vec<f64>) -> Result<Self> {
        if r.is_empty() {
            return Err(Error::range(
                "conditional",
                "[]",
                "a non-empty list of probabilities",
            ));
        }
        for (i, &v) in r.iter().enumerate() {
            check::in_closed(&format!("conditional[{}]", i + 1), v, 0.0, 1.0)?;
        }
        Ok(Acceptance::Conditional(r))
    }

    /// Largest γ this model describes (`u32::MAX` for i.i.d.).
    pub fn max_gamma(&self) -> u32 {
        match self {
            Acceptance::Iid(_) => u32::MAX,
            Acceptance::Survival(s) => s.len() as u32,
            Acceptance::Conditional(r) => r.len() as u32,
        }
    }

    /// Checks that `gamma` is within what the model describes.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] on `gamma`.
    pub fn check_gamma(&self, gamma: u32) -> Result<()> {
        if gamma > self.max_gamma() {
            return Err(Error::range(
                "gamma",
                gamma,
                format!(
                    "<= {} (the length of the acceptance curve)",
                    self.max_gamma()
                ),
            ));
        }
        Ok(())
    }

    /// S(i): probability that at least `i` drafted tokens are accepted (S(0) = 1).
    pub fn survival_at(&self, i: u32) -> f64 {
        if i == 0 {
            return 1.0;
        }
        match self {
            Acceptance::Iid(a) => a.powi(i as i32),
            Acceptance::Survival(s) => s.get(i as usize - 1).copied().unwrap_or(0.0),
            Acceptance::Conditional(r) => {
                r.iter().take(i as usize).product::<f64>()
                    * f64::from(u8::from(i as usize <= r.len()))
            }
        }
    }

    /// r(i): probability drafted token `i` (1-based) is accepted given all before it were.
    pub fn conditional_at(&self, i: u32) -> f64 {
        match self {
            Acceptance::Iid(a) => *a,
            Acceptance::Conditional(r) => r.get(i as usize - 1).copied().unwrap_or(0.0),
            Acceptance::Survival(_) => {
                let prev = self.survival_at(i - 1);
                if prev <= 0.0 {
                    0.0
                } else {
                    self.survival_at(i) / prev
                }
            }
        }
    }

    /// Expected tokens emitted per speculation step with lookahead γ: E = 1 + Σ_{i≤γ} S(i).
    pub fn expected_tokens(&self, gamma: u32) -> f64 {
        match self {
            Acceptance::Iid(a) if *a < 1.0 => (1.0 - a.powi(gamma as i32 + 1)) / (1.0 - a),
            Acceptance::Iid(_) => f64::from(gamma) + 1.0,
            _ => 1.0 + (1..=gamma).map(|i| self.survival_at(i)).sum::<f64>(),
        }
    }

    /// The marginal acceptance rate an engine would report at lookahead γ: (E − 1)/γ.
    pub fn marginal_rate(&self, gamma: u32) -> f64 {
        (self.expected_tokens(gamma) - 1.0) / f64::from(gamma)
    }

    /// The i.i.d. α, if this is an i.i.d. model.
    pub fn alpha(&self) -> Option<f64> {
        match self {
            Acceptance::Iid(a) => Some(*a),
            _ => None,
        }
    }

    /// Draws how many of `gamma` drafted tokens are accepted (0..=γ), one Bernoulli per position
    /// until the first rejection.
    pub fn sample_accepted<R: rand::Rng + ?Sized>(&self, rng: &mut R, gamma: u32) -> u32 {
        let mut k = 0;
        while k < gamma {
            let p = self.conditional_at(k + 1);
            if rng.random::<f64>() < p {
                k += 1;
            } else {
                break;
            }
        }
        k
    }
}

/// Converts an engine's marginal acceptance rate ρ = accepted/drafted, measured at lookahead
/// `gamma`, into the i.i.d. α that yields it: solves ρ = α(1 − α^γ)/((1 − α)γ) by bisection
/// (the right side increases monotonically in α from 0 to 1).
///
/// # Errors
/// `rate` outside [0, 1] or `gamma` outside [1, 64].
pub fn alpha_from_acceptance_rate(rate: f64, gamma: u32) -> Result<f64> {
    check::in_closed("acceptance_rate", rate, 0.0, 1.0)?;
    check::int_in("gamma", i64::from(gamma), 1, 64)?;
    if rate >= 1.0 {
        return Ok(1.0);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if Acceptance::Iid(mid).marginal_rate(gamma) < rate {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leviathan_closed_form() {
        // α = 0.7, γ = 3: (1 − 0.7⁴)/(1 − 0.7) = 0.7599/0.3 = 2.533 (tolerance 1e-12).
        let e = Acceptance::Iid(0.7).expected_tokens(3);
        assert!((e - 2.533).abs() < 1e-12, "{e}");
        // and equals the survival-curve sum 1 + 0.7 + 0.49 + 0.343
        let s = Acceptance::survival(vec![0.7, 0.49, 0.343]).unwrap();
        assert!((s.expected_tokens(3) - e).abs() < 1e-12);
        let c = Acceptance::conditional(vec![0.7, 0.7, 0.7]).unwrap();
        assert!((c.expected_tokens(3) - e).abs() < 1e-12);
    }

    #[test]
    fn alpha_one_emits_gamma_plus_one() {
        assert_eq!(Acceptance::Iid(1.0).expected_tokens(5), 6.0);
        assert_eq!(Acceptance::Iid(0.0).expected_tokens(5), 1.0);
    }

    #[test]
    fn marginal_rate_is_not_alpha_and_round_trips() {
        // α = 0.8, γ = 4: E = (1 − 0.8⁵)/0.2 = 3.3616, ρ = 2.3616/4 = 0.5904.
        let rho = Acceptance::Iid(0.8).marginal_rate(4);
        assert!((rho - 0.5904).abs() < 1e-12, "{rho}");
        let a = alpha_from_acceptance_rate(rho, 4).unwrap();
        assert!((a - 0.8).abs() < 1e-9, "{a}");
    }

    #[test]
    fn bad_curves_are_rejected() {
        assert!(Acceptance::survival(vec![0.5, 0.6]).is_err());
        assert!(Acceptance::survival(vec![]).is_err());
        assert!(Acceptance::iid(1.5).is_err());
        assert!(Acceptance::iid(f64::NAN).is_err());
        assert!(Acceptance::conditional(vec![0.5, -0.1]).is_err());
        let s = Acceptance::survival(vec![0.5, 0.25]).unwrap();
        assert!(s.check_gamma(3).is_err());
        assert!(s.check_gamma(2).is_ok());
    }

    #[test]
    fn sampling_matches_expectation() {
        use rand::SeedableRng;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let acc = Acceptance::survival(vec![0.9, 0.7, 0.4, 0.2]).unwrap();
        let n = 200_000;
        let mean = (0..n)
            .map(|_| f64::from(acc.sample_accepted(&mut rng, 4) + 1))
            .sum::<f64>()
            / n as f64;
        // E = 1 + 0.9 + 0.7 + 0.4 + 0.2 = 3.2; std of the mean ≈ 0.0027; tolerance 0.015.
        assert!((mean - 3.2).abs() < 0.015, "{mean}");
    }
}
