//! Correctness of every codec before anything is timed (DESIGN.md §7), each check against a
//! host (CPU, f64 where it matters) reference. The same functions run in the CPU unit tests at
//! tiny sizes ([`Sizes::tiny`]) and in `perfcast-gpu gradcomp codec-check` on the device at
//! real sizes ([`Sizes::device`]); every tolerance is stated where it is used.
//!
//! 1. fp16 / bf16: per-element round-trip error within the cast's unit roundoff (2⁻¹¹ / 2⁻⁸
//!    relative; fp16 subnormals within 2⁻²⁵ absolute).
//! 2. PowerSGD: on a rank-t matrix the one-round reconstruction error falls with R and is ~0 for
//!    R ≥ t; with noise added it still falls monotonically and sits near the noise level at R = t.
//! 3. Top-k: exactly the first k of a stable sort by decreasing |g| (a tie-heavy gradient), with
//!    values and decode exact.
//! 4. signSGD: packed bytes equal a host packing bit for bit, decode gives the signs exactly,
//!    a three-rank vote equals the host majority.
//! 5. QSGD: every decoded element within ‖g‖/s of g; unbiased: over S seeded rounds each
//!    element's count of up-roundings is within a 10⁻¹² Chernoff bound of Binomial(S, f), and the
//!    aggregate mean is within 6 standard errors.
//! 6. Error feedback (Top-k, Random-k, PowerSGD): the running sum of (decoded − true) stops
//!    growing (its largest norm over the second half of the run is within 1.3× the first half's),
//!    while the same codec without error feedback (a fresh codec per step) keeps growing (≥ 1.6×):
//!    the control proves the criterion can fail.
//! 7. PowerSGD's orthogonalization kernel: the device's result equals the CPU reference's
//!    passes within 2·10⁻⁵ per element on Gaussian windows (only the dot products' summation
//!    order differs), every window's rows are orthonormal within 10⁻⁴, a zero window stays zero.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::powersgd::PowerSgd;
use super::qsgd::Qsgd;
use super::signsgd::SignSgd;
use super::sparse::{k_of, RandomK, TopK};
use super::{
    cast::Cast16, host, normal, synthetic_gradient, two_stage_round, Codec, LocalComm, TwoStage,
};

/// One check's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// What was checked (method and size).
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// The measured figures next to their bounds.
    pub detail: String,
}

impl Outcome {
    fn new(name: String, pass: bool, detail: String) -> Outcome {
        Outcome { name, pass, detail }
    }
}

/// Problem sizes of one run of the checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes {
    /// Elements of the cast round trip.
    pub cast_n: usize,
    /// PowerSGD matrix (rows, cols), its true rank and the ranks tried (increasing).
    pub psgd: (usize, usize, usize, Vec<usize>),
    /// Top-k bucket elements and densities.
    pub topk: (usize, Vec<f64>),
    /// signSGD bucket elements.
    pub sign_n: usize,
    /// QSGD bucket elements, widths and seeded rounds.
    pub qsgd: (usize, Vec<u32>, usize),
    /// Error feedback: flat elements (sparse codecs), PowerSGD matrix and rank, steps.
    pub ef: (usize, (usize, usize, usize), usize),
    /// Orthogonalization: row lengths of the Gaussian windows of one launch, and the ranks.
    pub orth: (Vec<usize>, Vec<usize>),
    /// PowerSGD's fused stages: a bucket's shapes and vector tail (checked at the ranks of
    /// `orth`).
    pub psgd_bucket: (Vec<(usize, usize)>, usize),
}

impl Sizes {
    /// CI sizes (CPU, debug build: a few seconds).
    pub fn tiny() -> Sizes {
        Sizes {
            cast_n: 5000,
            psgd: (48, 40, 4, vec![1, 2, 3, 4, 6, 8]),
            topk: (3000, vec![0.001, 0.01, 0.1]),
            sign_n: 1001,
            qsgd: (2000, vec![2, 4, 8], 64),
            ef: (2048, (32, 24, 2), 60),
            orth: (vec![40, 96, 7], vec![1, 4]),
            psgd_bucket: (vec![(40, 24), (40, 1), (3, 5), (70, 9), (150, 66)], 13),
        }
    }

    /// Device sizes: BERT-base's shapes and buckets (6.5·10⁶-element cast, 768×3072 PowerSGD up
    /// to rank 32, Top-k over 4·10⁶ elements).
    pub fn device() -> Sizes {
        Sizes {
            cast_n: 6_500_000,
            psgd: (768, 3072, 8, vec![1, 2, 4, 8, 16, 32]),
            topk: ((1 << 22) + 12_345, vec![0.001, 0.01, 0.1]),
            sign_n: (1 << 20) + 3,
            qsgd: (1 << 20, vec![2, 4, 8], 64),
            ef: (1 << 18, (256, 128, 4), 60),
            orth: (vec![768, 3072, 30522], vec![1, 4, 32]),
            psgd_bucket: (
                vec![
                    (768, 3072),
                    (768, 1),
                    (3, 5),
                    (147, 64),
                    (2304, 768),
                    (30522, 768),
                ],
                1000,
            ),
        }
    }
}

/// Runs every check at `sizes` on `dev` (seeded by `seed`).
///
/// # Errors
/// Device errors (a failed check is an [`Outcome`] with `pass: false`, not an error).
pub fn run_all(dev: &Device, sizes: &Sizes, seed: u64) -> Result<Vec<Outcome>> {
    let mut out = vec![
        cast(dev, sizes.cast_n, false, seed)?,
        cast(dev, sizes.cast_n, true, seed)?,
    ];
    let (m, c, t, ranks) = &sizes.psgd;
    out.push(powersgd(dev, (*m, *c), *t, ranks, 0.0, seed)?);
    out.push(powersgd(dev, (*m, *c), *t, ranks, 0.01, seed)?);
    for &d in &sizes.topk.1 {
        out.push(topk(dev, sizes.topk.0, d, seed)?);
    }
    out.push(sign(dev, sizes.sign_n, seed)?);
    for &b in &sizes.qsgd.1 {
        out.push(qsgd(dev, sizes.qsgd.0, b, sizes.qsgd.2, seed)?);
    }
    let (n, (m, c, r), steps) = sizes.ef;
    for kind in [Ef::TopK, Ef::RandomK, Ef::PowerSgd] {
        out.push(error_feedback(dev, kind, n, (m, c, r), steps, seed)?);
    }
    for &r in &sizes.orth.1 {
        out.push(orthogonalize(dev, &sizes.orth.0, r, seed)?);
    }
    for &r in &sizes.orth.1 {
        out.push(psgd_stages(dev, &sizes.psgd_bucket, r, seed)?);
    }
    if dev.is_cuda() {
        let (m, c, _, _) = &sizes.psgd;
        for method in [
            "fp16",
            "powersgd:rank=4",
            "topk:density=0.01",
            "randomk:density=0.01",
            "signsgd",
            "qsgd:bits=4",
        ] {
            let shape = if method.starts_with("powersgd") {
                (*m, *c)
            } else {
                (1, sizes.topk.0)
            };
            out.push(graph_replay(dev, method, shape, seed)?);
        }
    }
    Ok(out)
}

/// 8. (CUDA only) A round captured as a CUDA graph ([`super::graph::capture`], what
///    `codec-micro --codec-exec graph` times) replays to what the eager round returns: codec A runs
///    rounds 1 and 2 eagerly; codec B (same seed) runs round 1 as the capture's warm-up, round 2
///    is captured and launched once. The two round-2 averages agree within 10⁻⁶ of the largest
///    |value| (the same kernels on the same state; cuBLAS may pick another algorithm inside a
///    capture), every element finite.
///
/// # Errors
/// Device errors; the capture's.
pub fn graph_replay(
    dev: &Device,
    method: &str,
    (rows, cols): (usize, usize),
    seed: u64,
) -> Result<Outcome> {
    let n = rows * cols;
    let g = synthetic_gradient(dev, n, seed)?;
    let shapes = [(rows, cols)];
    let mut a = super::AnyCodec::parse(method, seed)?;
    a.round(0, &g, &shapes, &mut LocalComm { world: 1 })?;
    let want = host(&a.round(0, &g, &shapes, &mut LocalComm { world: 1 })?)?;
    a.verify()?;
    let mut b = super::AnyCodec::parse(method, seed)?;
    let cap = super::graph::capture(
        dev,
        &mut b,
        |b| b.state(),
        |b| b.round(0, &g, &shapes, &mut LocalComm { world: 1 }),
    )?;
    cap.launch()?;
    dev.synchronize()?;
    let got = host(&cap.out)?;
    drop(cap);
    b.verify()?;
    let scale = want.iter().fold(0f64, |a, &x| a.max((x as f64).abs()));
    let diff = want
        .iter()
        .zip(&got)
        .fold(0f64, |a, (&x, &y)| a.max((x as f64 - y as f64).abs()));
    let finite = got.iter().all(|x| x.is_finite());
    Ok(Outcome::new(
        format!("{method} graph replay {rows}x{cols}"),
        finite && got.len() == want.len() && diff <= 1e-6 * scale,
        format!(
            "max |replay − eager| {diff:.3e} (bound {:.3e}), {} elements",
            1e-6 * scale,
            got.len()
        ),
    ))
}

/// 7. One launch of [`super::kernels::orthogonalize`] over Gaussian windows of rank `r` and
///    the given row lengths, plus a zero window of rank `r` × 5: the result against
///    [`super::kernels::orthogonalize_cpu`] on the same input (≤ 2·10⁻⁵ per element: f32 sums of
///    ≤ 3·10⁴ products in another order), rows orthonormal within 10⁻⁴ (f64 Gram matrix), the
///    zero window exactly zero.
///
/// # Errors
/// Device errors.
pub fn orthogonalize(dev: &Device, lens: &[usize], r: usize, seed: u64) -> Result<Outcome> {
    use super::kernels::{orthogonalize as orth, orthogonalize_cpu};
    use super::powersgd::NORM_FLOOR;
    let total: usize = lens.iter().map(|l| r * l).sum();
    let mut v = host(&normal(dev, total, seed ^ 0x0a7)?)?;
    let zero_at = v.len();
    v.extend(std::iter::repeat_n(0.0, 5 * r));
    let mut offs = vec![0u32];
    for l in lens.iter().chain(&[5]) {
        offs.push(offs.last().expect("starts at 0") + (r * l) as u32);
    }
    let p = Tensor::new(v.as_slice(), dev)?;
    let got = host(&orth(
        &p,
        &Tensor::new(offs.as_slice(), dev)?,
        &offs,
        r,
        NORM_FLOOR,
    )?)?;
    let want = orthogonalize_cpu(&v, &offs, r, NORM_FLOOR);
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mut gram = 0f64;
    for (w, &len) in offs.windows(2).zip(lens) {
        let m = &got[w[0] as usize..w[1] as usize];
        for i in 0..r {
            for j in 0..r {
                let d: f64 = (0..len)
                    .map(|e| m[i * len + e] as f64 * m[j * len + e] as f64)
                    .sum();
                gram = gram.max((d - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
    }
    let zero = got[zero_at..].iter().all(|&x| x == 0.0);
    Ok(Outcome::new(
        format!("powersgd orthogonalize rank {r} rows {lens:?}"),
        diff <= 2e-5 && gram <= 1e-4 && zero,
        format!(
            "max |device − reference| {diff:.2e} (bound 2e-5), max |PᵀP − I| {gram:.2e} (bound 1e-4), zero window {}",
            if zero { "zero" } else { "NOT zero" }
        ),
    ))
}

/// 7b. PowerSGD's fused stages ([`super::psgd`]) on `dev` against their CPU references on the
///    same inputs, for a bucket of `shapes` (compressed and not) plus `tail` vector elements at
///    rank `r`, with a non-zero error feedback: `M + E`, the gathered uncompressed elements,
///    the decoded uncompressed elements and the next Q bit for bit (one rounding each, the same
///    on both); P, Q, M̂ and E within 10⁻⁵ of the largest |reference| of each (f32 sums of up to
///    3·10⁴ products in another order; Q's chunks are added atomically in any order). On the CPU
///    the stages *are* the references, so there this check only exercises the plan and the
///    optional parts (a vector, an uncompressible matrix, the tail); its verdict matters on the
///    device (`codec-check` before every timed run).
///
/// # Errors
/// Device errors.
pub fn psgd_stages(
    dev: &Device,
    (shapes, tail): &(Vec<(usize, usize)>, usize),
    r: usize,
    seed: u64,
) -> Result<Outcome> {
    use super::psgd::{self, Plan};
    let n = shapes.iter().map(|&(m, c)| m * c).sum::<usize>() + tail;
    let plan = Plan::new(shapes, n, r)?;
    let g = synthetic_gradient(dev, n, seed)?;
    let e = normal(dev, plan.elems, seed ^ 0xef)?.affine(1e-3, 0.0)?;
    let q = normal(dev, plan.q_elems, seed ^ 0x9)?;
    let s = psgd::stage_p(&plan, &g, Some(&e), Some(&q))?;
    let (gv, ev, qv) = (host(&g)?, host(&e)?, host(&q)?);
    let (mef_c, p_c, rest_c) = psgd::p_cpu(&plan, &gv, Some(&ev), &qv);
    let some = |t: &Option<Tensor>| -> Result<Vec<f32>> {
        t.as_ref()
            .map(host)
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let (mef_d, p_d, rest_d) = (some(&s.mef)?, some(&s.p)?, some(&s.rest)?);
    // Stage q and decode take the same (device) P on both sides.
    let p_t = s.p.clone().expect("compressed matrices");
    let mef_t = s.mef.clone().expect("compressed matrices");
    let q_d = host(&psgd::stage_q(&plan, &mef_t, &p_t)?)?;
    let q_c = psgd::q_cpu(&plan, &mef_d, &p_d);
    let q_in = Tensor::new(q_c.as_slice(), dev)?;
    let d = psgd::stage_decode(
        &plan,
        Some(&mef_t),
        Some(&p_t),
        Some(&q_in),
        s.rest.as_ref(),
        0.5,
        dev,
    )?;
    let (out_c, ef_c, qt_c) = psgd::decode_cpu(&plan, &mef_d, &p_d, &q_c, &rest_d, 0.5);
    let (out_d, ef_d, qt_d) = (host(&d.out)?, some(&d.ef)?, some(&d.qt)?);
    let rel = |a: &[f32], b: &[f32]| -> f64 {
        let scale = b
            .iter()
            .fold(0f64, |m, &x| m.max((x as f64).abs()))
            .max(f64::MIN_POSITIVE);
        a.iter()
            .zip(b)
            .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()))
            / scale
    };
    let exact =
        mef_d == mef_c && rest_d == rest_c && qt_d == qt_c && a_eq_rest(&plan, &out_d, &out_c);
    let errs = [
        rel(&p_d, &p_c),
        rel(&q_d, &q_c),
        rel(&out_d, &out_c),
        rel(&ef_d, &ef_c),
    ];
    let worst = errs.iter().cloned().fold(0f64, f64::max);
    Ok(Outcome::new(
        format!("powersgd fused stages rank {r} bucket {shapes:?} + {tail}"),
        exact && worst <= 1e-5 && out_d.iter().all(|x| x.is_finite()),
        format!(
            "max |device − reference| / max |reference|: P {:.1e}, Q {:.1e}, M̂ {:.1e}, E {:.1e} (bound 1e-5); M + E, gathered and decoded uncompressed parts, next Q {}",
            errs[0],
            errs[1],
            errs[2],
            errs[3],
            if exact { "exact" } else { "NOT exact" }
        ),
    ))
}

/// Whether the uncompressed runs of two decoded outputs agree bit for bit.
fn a_eq_rest(plan: &super::psgd::Plan, a: &[f32], b: &[f32]) -> bool {
    plan.segs
        .iter()
        .all(|s| a[s.dst..s.dst + s.len] == b[s.dst..s.dst + s.len])
}

/// 1. fp16/bf16 round trip at world 1: |d − g| ≤ u·|g| with u = 2⁻¹¹ (fp16) or 2⁻⁸ (bf16) for
///    |g| at least the smallest normal (2⁻¹⁴ / 2⁻¹²⁶), else ≤ 2⁻²⁵ (fp16) / 2⁻¹³⁴ (bf16).
///
/// # Errors
/// Device errors.
pub fn cast(dev: &Device, n: usize, bf16: bool, seed: u64) -> Result<Outcome> {
    let g = synthetic_gradient(dev, n, seed)?;
    let mut c = Cast16::new(bf16);
    let d = two_stage_round(&mut c, 0, &g, &mut LocalComm { world: 1 })?;
    let (gv, dv) = (host(&g)?, host(&d)?);
    let (u, min_normal, abs) = if bf16 {
        (2f64.powi(-8), 2f64.powi(-126), 2f64.powi(-134))
    } else {
        (2f64.powi(-11), 2f64.powi(-14), 2f64.powi(-25))
    };
    let (mut bad, mut worst_rel) = (0usize, 0f64);
    for (&x, &y) in gv.iter().zip(&dv) {
        let (x, err) = (x as f64, (y as f64 - x as f64).abs());
        let bound = if x.abs() >= min_normal {
            u * x.abs()
        } else {
            abs
        };
        if err > bound {
            bad += 1;
        }
        if x.abs() >= min_normal {
            worst_rel = worst_rel.max(err / x.abs());
        }
    }
    Ok(Outcome::new(
        format!("{} round trip n={n}", c.name()),
        bad == 0,
        format!("max relative error {worst_rel:.3e} (bound {u:.3e}), {bad} elements over"),
    ))
}

/// Frobenius norm of a host vector, f64.
fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// 2. PowerSGD reconstruction error ‖M − M̂‖/‖M‖ after one round (world 1) of a rank-`t` matrix
///    `U·diag(1, 1/2, …)·Vᵀ` plus `noise`·‖M‖ relative Gaussian noise, at every rank of `ranks`.
///    Noise-free: error ≤ 10⁻³ for R ≥ t (f32 round-off of a projection). Always: non-increasing
///    in R (within 10⁻⁵ relative) and falling by ≥ 1% per step while R < t; with noise, at most
///    4× the noise level at R ≥ t (one power iteration from a random start tilts the subspace
///    by about the noise's singular values over σₜ: 2.4× measured at 48×40).
///
/// # Errors
/// Device errors.
pub fn powersgd(
    dev: &Device,
    (m, c): (usize, usize),
    t: usize,
    ranks: &[usize],
    noise: f64,
    seed: u64,
) -> Result<Outcome> {
    let u = normal(dev, m * t, seed ^ 0x11)?.reshape((m, t))?;
    let s: Vec<f32> = (0..t).map(|j| 1.0 / (j + 1) as f32).collect();
    let s = Tensor::from_vec(s, (1, t), dev)?;
    let v = normal(dev, c * t, seed ^ 0x12)?.reshape((c, t))?;
    let low = u.broadcast_mul(&s)?.matmul(&v.t()?)?;
    let low_norm = norm(&host(&low)?);
    let mtx = if noise > 0.0 {
        let z = normal(dev, m * c, seed ^ 0x13)?.reshape((m, c))?;
        (&low + z.affine(noise * low_norm / ((m * c) as f64).sqrt(), 0.0)?)?
    } else {
        low
    };
    let mv = host(&mtx)?;
    let m_norm = norm(&mv);
    let flat = mtx.flatten_all()?;
    let mut errs = Vec::with_capacity(ranks.len());
    for &r in ranks {
        let mut p = PowerSgd::new(r, seed);
        let d = p.round(0, &flat, &[(m, c)], &mut LocalComm { world: 1 })?;
        let dv = host(&d)?;
        let e: f64 = mv
            .iter()
            .zip(&dv)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        errs.push(e / m_norm);
    }
    let mut pass = true;
    for w in 0..ranks.len().saturating_sub(1) {
        let (e0, e1) = (errs[w], errs[w + 1]);
        pass &= e1 <= e0 * (1.0 + 1e-5) + 1e-7;
        if ranks[w] < t {
            pass &= e1 <= 0.99 * e0;
        }
    }
    for (&r, &e) in ranks.iter().zip(&errs) {
        if r >= t {
            pass &= if noise > 0.0 {
                e <= 4.0 * noise
            } else {
                e <= 1e-3
            };
        }
    }
    let list: Vec<String> = ranks
        .iter()
        .zip(&errs)
        .map(|(r, e)| format!("r{r}:{e:.2e}"))
        .collect();
    Ok(Outcome::new(
        format!("powersgd {m}x{c} true rank {t} noise {noise}"),
        pass,
        format!("relative error {}", list.join(" ")),
    ))
}

/// 3. Top-k selection against a host stable sort, on a tie-heavy gradient (values rounded to
///    multiples of 2⁻¹²): the index set, the values and the world-1 decode must match exactly.
///
/// # Errors
/// Device errors.
pub fn topk(dev: &Device, n: usize, density: f64, seed: u64) -> Result<Outcome> {
    let g = synthetic_gradient(dev, n, seed)?
        .affine(4096.0, 0.0)?
        .round()?
        .affine(1.0 / 4096.0, 0.0)?;
    let gv = host(&g)?;
    let k = k_of(density, n);
    let mut c = TopK::new(density)?;
    let sent = c.encode(0, &g, 1)?;
    c.verify()?;
    let (vals, idx) = (host(&sent[0])?, sent[1].to_vec1::<u32>()?);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&i, &j| {
        gv[j as usize]
            .abs()
            .total_cmp(&gv[i as usize].abs())
            .then(i.cmp(&j))
    });
    let mut want = order[..k].to_vec();
    want.sort_unstable();
    let kth = gv[order[k - 1] as usize].abs();
    let ties = gv.iter().filter(|x| x.abs() == kth).count();
    let same_set = idx == want;
    let same_vals = idx.len() == vals.len()
        && idx
            .iter()
            .zip(&vals)
            .all(|(&i, &v)| gv[i as usize].to_bits() == v.to_bits());
    let d = host(&c.decode(0, n, &sent, 1)?)?;
    let mut dense = vec![0f32; n];
    for &i in &want {
        dense[i as usize] = gv[i as usize];
    }
    let same_decode = d == dense;
    Ok(Outcome::new(
        format!("topk:density={density} n={n}"),
        same_set && same_vals && same_decode,
        format!(
            "k={k} (got {}), k-th |g|={kth:.3e} shared by {ties} elements; set {}, values {}, decode {}",
            idx.len(),
            ok(same_set),
            ok(same_vals),
            ok(same_decode)
        ),
    ))
}

fn ok(b: bool) -> &'static str {
    if b {
        "exact"
    } else {
        "WRONG"
    }
}

/// 4. signSGD: bytes equal the host packing (bit j of byte i = [g[8i + j] ≥ 0]); world-1 decode
///    equals ±1 exactly; a vote of three different ranks equals the host majority.
///
/// # Errors
/// Device errors.
pub fn sign(dev: &Device, n: usize, seed: u64) -> Result<Outcome> {
    let gs: Vec<Tensor> = (0..3)
        .map(|r| synthetic_gradient(dev, n, seed + r))
        .collect::<Result<_>>()?;
    let mut c = SignSgd::new();
    let mut bytes = Vec::new();
    let mut exact_pack = true;
    let mut signs = Vec::new();
    for g in &gs {
        let b = c.encode(0, g, 3)?.remove(0);
        let gv = host(g)?;
        let mut want = vec![0u8; n.div_ceil(8)];
        for (i, &x) in gv.iter().enumerate() {
            if x >= 0.0 {
                want[i / 8] |= 1 << (i % 8);
            }
        }
        exact_pack &= b.to_vec1::<u8>()? == want;
        signs.push(
            gv.iter()
                .map(|&x| if x >= 0.0 { 1f32 } else { -1.0 })
                .collect::<Vec<_>>(),
        );
        bytes.push(b);
    }
    let one = host(&c.decode(0, n, &bytes[..1], 1)?)?;
    let exact_one = one == signs[0];
    let all = Tensor::cat(&bytes, 0)?;
    let vote = host(&c.decode(0, n, &[all], 3)?)?;
    let want: Vec<f32> = (0..n)
        .map(|i| (signs[0][i] + signs[1][i] + signs[2][i]).signum())
        .collect();
    let exact_vote = vote == want;
    Ok(Outcome::new(
        format!("signsgd n={n}"),
        exact_pack && exact_one && exact_vote,
        format!(
            "{} bytes; packing {}, decode {}, 3-rank vote {}",
            n.div_ceil(8),
            ok(exact_pack),
            ok(exact_one),
            ok(exact_vote)
        ),
    ))
}

/// 5. QSGD at B bits over `rounds` seeded rounds (world 1): every decoded element within
///    ‖g‖/s (1 + 10⁻⁵) of g; unbiased per element: with y = |g|/(‖g‖/s), f = y − ⌊y⌋, the
///    number k of rounds that rounded up is Binomial(S, f) under the codec's claim, and no
///    element's k lies beyond the Chernoff bound P ≤ exp(−S·KL(k/S ‖ f)) ≤ 10⁻¹² (elements
///    within 10⁻⁶ of a level are skipped: there the host's and the device's f32 ⌊y⌋ may differ);
///    the aggregate z-score of Σ(mean − g) within ±6.
///
/// Run 17 used a normal approximation per element (|mean − g| ≤ 6.5σ/√S), which is wrong for a
/// Bernoulli with small f over 64 rounds: at 2²⁰ elements of a real-shaped gradient, thousands
/// of elements have f < 4·10⁻⁴, and one up-rounding among 64 then sits beyond 6.5σ although it
/// happens with probability ≈ 64f. The codec was fine; the test was not.
///
/// # Errors
/// Device errors.
pub fn qsgd(dev: &Device, n: usize, bits: u32, rounds: usize, seed: u64) -> Result<Outcome> {
    let g = synthetic_gradient(dev, n, seed)?;
    let gv = host(&g)?;
    let mut c = Qsgd::new(bits, seed)?;
    let s = c.levels() as f64;
    let gnorm = norm(&gv);
    let step = gnorm / s;
    let mut sum = vec![0f64; n];
    let mut levels = vec![0u64; n];
    let mut worst = 0f64;
    for _ in 0..rounds {
        let d = host(&two_stage_round(
            &mut c,
            0,
            &g,
            &mut LocalComm { world: 1 },
        )?)?;
        for (((a, l), &x), &y) in sum.iter_mut().zip(&mut levels).zip(&gv).zip(&d) {
            *a += y as f64;
            *l += ((y as f64).abs() / step).round() as u64;
            worst = worst.max((y as f64 - x as f64).abs());
        }
    }
    let sr = rounds as f64;
    let (bad, skipped) = qsgd_biased(&gv, step, &levels, rounds);
    let (mut dev_sum, mut var_sum) = (0f64, 0f64);
    for (a, &x) in sum.iter().zip(&gv) {
        let y = (x as f64).abs() / step;
        let f = y - y.floor();
        let sigma = step * (f * (1.0 - f)).sqrt();
        dev_sum += a / sr - x as f64;
        var_sum += sigma * sigma / sr;
    }
    let z = if var_sum > 0.0 {
        dev_sum / var_sum.sqrt()
    } else {
        0.0
    };
    let within = worst <= step * (1.0 + 1e-5);
    Ok(Outcome::new(
        format!("{} n={n} rounds={rounds}", c.name()),
        within && bad == 0 && z.abs() <= 6.0,
        format!(
            "max |d − g| {:.3} of ‖g‖/s (bound 1); {bad} elements' up-roundings beyond the 1e-12 Chernoff bound ({skipped} within 1e-6 of a level skipped); aggregate z {z:.2}",
            worst / step
        ),
    ))
}

/// QSGD's per-element bias test: `levels[i]` is the sum over `rounds` rounds of element i's
/// decoded level |dᵢ|/step; the up-roundings k = levels − S·⌊y⌋ must be a plausible draw of
/// Binomial(S, f). Chernoff: P ≤ exp(−S·KL(k/S ‖ f)). An element fails outright beyond
/// p = 10⁻¹²; elements beyond p = 10⁻³ may number at most T·10⁻³ + 7·√(T·10⁻³) + 3 of the T
/// tested (a biased rounding rule moves most elements past 10⁻³, which one element's 64 rounds
/// cannot show at 10⁻¹²). Elements within 10⁻⁶ of a level are skipped (there the host's and the
/// device's f32 ⌊y⌋ may differ). Returns (failing elements or, if the 10⁻³ count is too high,
/// that count; skipped elements).
pub fn qsgd_biased(g: &[f32], step: f64, levels: &[u64], rounds: usize) -> (usize, usize) {
    let sr = rounds as f64;
    // KL(q ‖ f) of two Bernoullis, nats.
    let kl = |q: f64, f: f64| {
        let t = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
        t(q, f) + t(1.0 - q, 1.0 - f)
    };
    let (strict, loose) = ((1e12f64).ln(), (1e3f64).ln());
    let (mut bad, mut beyond, mut tested, mut skipped) = (0, 0usize, 0usize, 0);
    for (&l, &x) in levels.iter().zip(g) {
        let y = (x as f64).abs() / step;
        let f = y - y.floor();
        if !(1e-6..=1.0 - 1e-6).contains(&f) {
            skipped += 1;
            continue;
        }
        tested += 1;
        let ups = l as f64 - sr * y.floor();
        let stat = if (0.0..=sr).contains(&ups) {
            sr * kl(ups / sr, f)
        } else {
            f64::INFINITY
        };
        if stat > strict {
            bad += 1;
        }
        if stat > loose {
            beyond += 1;
        }
    }
    let allowed = tested as f64 * 1e-3 + 7.0 * (tested as f64 * 1e-3).sqrt() + 3.0;
    if beyond as f64 > allowed {
        bad = bad.max(beyond);
    }
    (bad, skipped)
}

/// Which codec an error-feedback check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ef {
    /// `topk:density=0.1`.
    TopK,
    /// `randomk:density=0.1`.
    RandomK,
    /// `powersgd:rank=r` on an m×c matrix.
    PowerSgd,
}

/// 6. Error feedback keeps Σₜ (decodedₜ − gₜ) bounded: gradients gₜ = ḡ + ½·noiseₜ (ḡ with
///    magnitudes in [½, 1] and random signs, so every coordinate is eventually sent), `steps`
///    rounds at world 1. Passes when the largest ‖Σ‖ over the second half is ≤ 1.3× the first
///    half's, and the control (a fresh codec every step: no memory) grows by ≥ 1.6× (it grows
///    linearly, 2×), proving the criterion can fail.
///
/// # Errors
/// Device errors.
pub fn error_feedback(
    dev: &Device,
    kind: Ef,
    n_flat: usize,
    (m, c, r): (usize, usize, usize),
    steps: usize,
    seed: u64,
) -> Result<Outcome> {
    let n = if kind == Ef::PowerSgd { m * c } else { n_flat };
    let shapes = if kind == Ef::PowerSgd {
        vec![(m, c)]
    } else {
        vec![]
    };
    let make = |kind: Ef| -> Result<Box<dyn Codec>> {
        Ok(match kind {
            Ef::TopK => Box::new(super::Staged(TopK::new(0.1)?)),
            Ef::RandomK => Box::new(super::Staged(RandomK::new(0.1, seed)?)),
            Ef::PowerSgd => Box::new(PowerSgd::new(r, seed)),
        })
    };
    let u = super::kernels::uniform(&Tensor::zeros(1, DType::F32, dev)?, seed ^ 0xef, n)?;
    let sgn = normal(dev, n, seed ^ 0xee)?
        .ge(0f32)?
        .to_dtype(DType::F32)?
        .affine(2.0, -1.0)?;
    let gbar = (u.affine(0.5, 0.5)? * sgn)?;
    let mut growth = [0f64; 2];
    let mut name = String::new();
    for (ci, control) in [false, true].into_iter().enumerate() {
        let mut codec = make(kind)?;
        name = codec.name();
        let mut sum = Tensor::zeros(n, DType::F32, dev)?;
        let (mut first, mut second) = (0f64, 0f64);
        for t in 0..steps {
            if control {
                codec = make(kind)?;
            }
            let noise = normal(dev, n, seed ^ (0x1000 + t as u64))?;
            let g = (&gbar + noise.affine(0.5, 0.0)?)?;
            let d = codec.round(0, &g, &shapes, &mut LocalComm { world: 1 })?;
            sum = (sum + (d - &g)?)?;
            let s = sum.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
            if t < steps / 2 {
                first = first.max(s);
            } else {
                second = second.max(s);
            }
        }
        growth[ci] = second / first;
    }
    Ok(Outcome::new(
        format!("{name} error feedback n={n} steps={steps}"),
        growth[0] <= 1.3 && growth[1] >= 1.6,
        format!(
            "max ‖Σ(d − g)‖ second half / first half: {:.3} with error feedback (bound 1.3), {:.3} without (must be ≥ 1.6)",
            growth[0], growth[1]
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_pass(o: Outcome) {
        assert!(o.pass, "{}: {}", o.name, o.detail);
    }

    #[test]
    fn cast_round_trips_within_unit_roundoff() {
        assert_pass(cast(&Device::Cpu, 5000, false, 1).unwrap());
        assert_pass(cast(&Device::Cpu, 5000, true, 1).unwrap());
    }

    #[test]
    fn orthogonalize_check_passes_on_the_cpu_reference() {
        for r in [1, 4] {
            assert_pass(orthogonalize(&Device::Cpu, &[40, 96, 7], r, 3).unwrap());
        }
    }

    #[test]
    fn powersgd_error_falls_with_rank_and_vanishes_at_true_rank() {
        let s = Sizes::tiny();
        let (m, c, t, ranks) = &s.psgd;
        for noise in [0.0, 0.01] {
            assert_pass(powersgd(&Device::Cpu, (*m, *c), *t, ranks, noise, 2).unwrap());
        }
    }

    #[test]
    fn topk_matches_a_stable_sort() {
        for d in [0.001, 0.01, 0.1] {
            assert_pass(topk(&Device::Cpu, 3000, d, 3).unwrap());
        }
    }

    #[test]
    fn sign_bits_pack_and_vote_exactly() {
        assert_pass(sign(&Device::Cpu, 1001, 4).unwrap());
    }

    #[test]
    fn qsgd_is_unbiased_and_within_one_level() {
        for b in [2, 4, 8] {
            assert_pass(qsgd(&Device::Cpu, 2000, b, 64, 5).unwrap());
        }
        // The device's size, where most fractional levels are tiny (run 17's false alarm).
        assert_pass(qsgd(&Device::Cpu, 1 << 18, 2, 64, 5).unwrap());
    }

    /// The bias test flags deterministic rounding and a shifted probability, and accepts the
    /// expected count, including a single up-rounding at f = 10⁻⁴ (which a 6.5σ normal test
    /// would flag).
    #[test]
    fn qsgd_bias_test_catches_biased_rounding() {
        let step = 1.0;
        let s = 64;
        // f = 1e-4: one up of 64 is plausible (p ≈ 0.6%), ten are not (one element fails).
        assert_eq!(qsgd_biased(&[1e-4], step, &[1], s).0, 0);
        assert_eq!(qsgd_biased(&[1e-4], step, &[10], s).0, 1);
        // 200 elements, y from 2.2 to 2.8: always rounding down (64·2) or up (64·3) fails in
        // aggregate; the expected count of ups passes.
        let g: Vec<f32> = (0..200).map(|i| 2.2 + 0.6 * i as f32 / 199.0).collect();
        let down = vec![128u64; 200];
        let up = vec![192u64; 200];
        let fair: Vec<u64> = g
            .iter()
            .map(|&y| 128 + (64.0 * (y as f64 - 2.0)).round() as u64)
            .collect();
        assert!(qsgd_biased(&g, step, &down, s).0 > 100);
        assert!(qsgd_biased(&g, step, &up, s).0 > 100);
        assert_eq!(qsgd_biased(&g, step, &fair, s).0, 0);
        // On a level: skipped.
        assert_eq!(qsgd_biased(&[3.0], step, &[192], s), (0, 1));
    }

    #[test]
    fn error_feedback_keeps_the_sum_bounded() {
        let s = Sizes::tiny();
        let (n, mcr, steps) = s.ef;
        for kind in [Ef::TopK, Ef::RandomK, Ef::PowerSgd] {
            assert_pass(error_feedback(&Device::Cpu, kind, n, mcr, steps, 6).unwrap());
        }
    }
}
