//! Closed forms under Zipf popularity (independent reference model: every lookup of table `t`
//! picks rank `i` with `p_i = i^{-s} / H_{N_t,s}`; with `T` tables a lookup is in table `t` with
//! probability `1/T`).
//!
//! - **Static top-k** with a perfect profile caches the `C` globally most popular rows:
//!   hit rate `Σ_{i≤C} p_i` (one table: `H_{C,s}/H_{N,s}`).
//! - **LRU by Che's approximation** (Che, Tung & Wang 2002; Fricker, Robert & Roberts 2012): the
//!   characteristic time `T_C` solves `Σ_i (1 − e^{−p_i T_C}) = C`; hit rate
//!   `Σ_i p_i (1 − e^{−p_i T_C})`.
//!
//! Sums over large tables use exact terms for ranks ≤ 4096 and the midpoint integral
//! `∫_{K+½}^{N+½} f(x) dx` (Simpson in `ln x`) beyond, accurate to ~1e-9 relative for these
//! smooth, slowly varying terms.

use crate::error::{Error, Result};

const EXACT: u64 = 4096;
const SIMPSON: usize = 1024;

/// `Σ_{i=1}^{n} f(i)` for smooth decreasing `f` (exact up to 4096, integral beyond).
fn sum_smooth(n: u64, f: impl Fn(f64) -> f64) -> f64 {
    let k = n.min(EXACT);
    let mut s: f64 = (1..=k).map(|i| f(i as f64)).sum();
    if n > k {
        let (a, b) = (((k as f64) + 0.5).ln(), ((n as f64) + 0.5).ln());
        let h = (b - a) / SIMPSON as f64;
        let g = |u: f64| {
            let x = u.exp();
            f(x) * x
        };
        let mut acc = g(a) + g(b);
        for j in 1..SIMPSON {
            acc += g(a + j as f64 * h) * if j % 2 == 1 { 4.0 } else { 2.0 };
        }
        s += acc * h / 3.0;
    }
    s
}

/// Generalized harmonic number `H_{n,s} = Σ_{i=1}^{n} i^{-s}`.
pub fn harmonic(n: u64, s: f64) -> f64 {
    sum_smooth(n, |x| x.powf(-s))
}

fn check(tables: &[u64], s: f64) -> Result<()> {
    if !(s.is_finite() && s >= 0.0) {
        return Err(Error::range("zipf", s, "a finite exponent ≥ 0"));
    }
    if tables.is_empty() || tables.contains(&0) {
        return Err(Error::range("rows", "0", "≥ 1 row in every table"));
    }
    Ok(())
}

/// Static top-k hit rate with `c` rows over tables of `tables` rows, Zipf(`s`) each.
///
/// # Errors
/// Invalid `s` or table sizes.
pub fn topk_hit_rate(tables: &[u64], s: f64, c: u64) -> Result<f64> {
    check(tables, s)?;
    let total: u64 = tables.iter().sum();
    if c >= total {
        return Ok(1.0);
    }
    let h: Vec<f64> = tables.iter().map(|&n| harmonic(n, s)).collect();
    let nt = tables.len() as f64;
    if tables.len() == 1 {
        return Ok(harmonic(c, s) / h[0]);
    }
    // Threshold λ on p_{t,i}/T: table t contributes its ranks with i^{-s}/(H_t T) ≥ λ.
    let count = |lam: f64| -> Vec<u64> {
        tables
            .iter()
            .zip(&h)
            .map(|(&n, &ht)| {
                let x = if s == 0.0 {
                    if 1.0 / (ht * nt) >= lam {
                        n as f64
                    } else {
                        0.0
                    }
                } else {
                    (lam * ht * nt).powf(-1.0 / s)
                };
                (x.floor().max(0.0) as u64).min(n)
            })
            .collect()
    };
    let (mut lo, mut hi) = (1e-300f64, 1.0f64);
    for _ in 0..200 {
        let mid = (lo.ln() * 0.5 + hi.ln() * 0.5).exp();
        if count(mid).iter().sum::<u64>() >= c {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut ks = count(hi);
    let mut have: u64 = ks.iter().sum();
    // Fill the remaining slots with the next most popular rows (ties at the threshold).
    while have < c {
        let best = (0..tables.len())
            .filter(|&t| ks[t] < tables[t])
            .max_by(|&a, &b| {
                let pa = ((ks[a] + 1) as f64).powf(-s) / h[a];
                let pb = ((ks[b] + 1) as f64).powf(-s) / h[b];
                pa.total_cmp(&pb)
            });
        match best {
            Some(t) => {
                ks[t] += 1;
                have += 1;
            }
            None => break,
        }
    }
    Ok(ks
        .iter()
        .zip(&h)
        .map(|(&k, &ht)| harmonic(k, s) / ht)
        .sum::<f64>()
        / nt)
}

/// LRU hit rate by Che's approximation with `c` rows over tables of `tables` rows, Zipf(`s`).
/// Returns `(hit_rate, characteristic_time)` (the time in lookups).
///
/// # Errors
/// Invalid `s` or table sizes.
pub fn che_lru_hit_rate(tables: &[u64], s: f64, c: u64) -> Result<(f64, f64)> {
    check(tables, s)?;
    let total: u64 = tables.iter().sum();
    if c >= total {
        return Ok((1.0, f64::INFINITY));
    }
    let nt = tables.len() as f64;
    let norm: Vec<f64> = tables
        .iter()
        .map(|&n| 1.0 / (harmonic(n, s) * nt))
        .collect();
    let occupancy = |tc: f64| -> f64 {
        tables
            .iter()
            .zip(&norm)
            .map(|(&n, &a)| sum_smooth(n, |x| -(-a * x.powf(-s) * tc).exp_m1()))
            .sum()
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while occupancy(hi) < c as f64 {
        lo = hi;
        hi *= 4.0;
        if hi > 1e30 {
            break;
        }
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if occupancy(mid) < c as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    let tc = 0.5 * (lo + hi);
    let hit: f64 = tables
        .iter()
        .zip(&norm)
        .map(|(&n, &a)| sum_smooth(n, |x| a * x.powf(-s) * -(-a * x.powf(-s) * tc).exp_m1()))
        .sum();
    Ok((hit, tc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmonic_hand_values_and_tail() {
        assert!((harmonic(3, 1.0) - (1.0 + 0.5 + 1.0 / 3.0)).abs() < 1e-15);
        // H_{n,1} = ln n + γ + 1/(2n) − …: n = 10^7.
        let e = (1e7f64).ln() + 0.577_215_664_901_532_9 + 0.5e-7;
        assert!(
            (harmonic(10_000_000, 1.0) - e).abs() < 1e-8,
            "{}",
            harmonic(10_000_000, 1.0)
        );
        // ζ(2) tail: H_{10^8,2} = π²/6 − 1/10^8 (1e-9 tolerance).
        assert!(
            (harmonic(100_000_000, 2.0) - (std::f64::consts::PI.powi(2) / 6.0 - 1e-8)).abs() < 1e-9
        );
    }

    #[test]
    fn closed_form_limits() {
        // Uniform popularity: top-k = Che = C/N.
        assert!((topk_hit_rate(&[1000], 0.0, 100).unwrap() - 0.1).abs() < 1e-12);
        let (h, _) = che_lru_hit_rate(&[1000], 0.0, 100).unwrap();
        assert!((h - 0.1).abs() < 1e-9, "{h}");
        // Two identical tables and 2C rows = one table with C rows.
        let one = topk_hit_rate(&[500], 0.9, 50).unwrap();
        let two = topk_hit_rate(&[500, 500], 0.9, 100).unwrap();
        assert!((one - two).abs() < 1e-12, "{one} {two}");
        let (c1, _) = che_lru_hit_rate(&[500], 0.9, 50).unwrap();
        let (c2, _) = che_lru_hit_rate(&[500, 500], 0.9, 100).unwrap();
        assert!((c1 - c2).abs() < 1e-9);
        // LRU never beats the static optimum under IRM.
        assert!(c1 < one);
        assert_eq!(topk_hit_rate(&[10], 1.0, 10).unwrap(), 1.0);
    }
}
