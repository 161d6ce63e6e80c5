//! Non-negative least squares (Lawson & Hanson 1974), shared by every technique's calibration
//! (specdec's latency fit, gradcomp's collective and codec fits).

use nalgebra::{DMatrix, DVector};

/// Least squares on the columns `passive` of `a` (the others zero), by SVD.
pub fn ls_on(a: &DMatrix<f64>, b: &DVector<f64>, passive: &[bool]) -> DVector<f64> {
    let cols: Vec<usize> = (0..a.ncols()).filter(|&j| passive[j]).collect();
    let mut sub = DMatrix::<f64>::zeros(a.nrows(), cols.len());
    for (c, &j) in cols.iter().enumerate() {
        sub.set_column(c, &a.column(j));
    }
    let mut z = DVector::<f64>::zeros(a.ncols());
    if cols.is_empty() {
        return z;
    }
    if let Ok(s) = sub.svd(true, true).solve(b, 1e-14) {
        for (c, &j) in cols.iter().enumerate() {
            z[j] = s[c];
        }
    }
    z
}

/// Non-negative least squares, min ‖a·x − b‖ over x ≥ 0, by Lawson and Hanson's active-set
/// algorithm ("Solving Least Squares Problems", 1974, ch. 23): move the variable with the most
/// negative gradient into the passive set, solve the unconstrained problem on the passive set,
/// and step back to the feasible boundary whenever that solution leaves it. Finite; capped at
/// 3·columns outer iterations.
pub fn nnls(a: &DMatrix<f64>, b: &DVector<f64>) -> DVector<f64> {
    let n = a.ncols();
    let mut x = DVector::<f64>::zeros(n);
    let mut passive = vec![false; n];
    // Fast path: the unconstrained minimiser is feasible.
    let all = ls_on(a, b, &vec![true; n]);
    if all.iter().all(|v| *v >= 0.0 && v.is_finite()) {
        return all;
    }
    let tol = 1e-12 * b.norm().max(1.0);
    // Indices whose entry was undone at once (numerically degenerate: the passive solution gave
    // them no positive value); not tried again until x changes.
    let mut blocked = vec![false; n];
    for _ in 0..3 * n {
        let w = a.transpose() * (b - a * &x);
        let Some((t, wt)) = (0..n)
            .filter(|&j| !passive[j] && !blocked[j])
            .map(|j| (j, w[j]))
            .max_by(|p, q| p.1.total_cmp(&q.1))
        else {
            break;
        };
        if wt <= tol {
            break;
        }
        passive[t] = true;
        let before = x.clone();
        for _ in 0..3 * n {
            let z = ls_on(a, b, &passive);
            if (0..n).filter(|&j| passive[j]).all(|j| z[j] > 0.0) {
                x = z;
                break;
            }
            // Step from x towards z until the first passive variable reaches 0; that variable
            // (and any other at 0) leaves the passive set.
            let mut alpha = 1.0;
            let mut hit = None;
            for j in (0..n).filter(|&j| passive[j] && z[j] <= 0.0) {
                let d = x[j] - z[j];
                let aj = if d > 0.0 { x[j] / d } else { 0.0 };
                if aj < alpha || hit.is_none() {
                    alpha = aj.min(alpha);
                    hit = Some(j);
                }
            }
            x += (z - &x) * alpha;
            if let Some(j) = hit {
                x[j] = 0.0;
            }
            let scale = x.amax().max(1.0);
            for j in 0..n {
                if passive[j] && x[j] <= 1e-12 * scale {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
        if x == before {
            blocked[t] = true;
        } else {
            blocked.iter_mut().for_each(|v| *v = false);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nnls_matches_exhaustive_active_set_enumeration() {
        // Random 30×6 problems (seeded): Lawson–Hanson's solution must equal the best of the
        // 2⁶ active-set enumerations (objective within 1e-10 relative) and be feasible.
        use rand::SeedableRng;
        use rand_distr::{Distribution, Uniform};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let u = Uniform::new(-1.0, 1.0).unwrap();
        for _ in 0..50 {
            let a = DMatrix::<f64>::from_fn(30, 6, |_, _| u.sample(&mut rng));
            let b = DVector::<f64>::from_fn(30, |_, _| u.sample(&mut rng));
            let x = nnls(&a, &b);
            assert!(x.iter().all(|v| *v >= 0.0));
            let obj = |x: &DVector<f64>| (&a * x - &b).norm_squared();
            let mut best = f64::INFINITY;
            for mask in 0u32..64 {
                let passive: Vec<bool> = (0..6).map(|j| mask & (1 << j) != 0).collect();
                let z = ls_on(&a, &b, &passive);
                if z.iter().all(|v| *v >= -1e-12) {
                    best = best.min(obj(&z));
                }
            }
            assert!(
                obj(&x) <= best * (1.0 + 1e-10) + 1e-14,
                "{} vs {best}",
                obj(&x)
            );
        }
    }
}
