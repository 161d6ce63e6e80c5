//! Codec micro-measurements, what `perfcast calibrate` fits perfcast's codec cost model from
//! (per-launch overhead + bytes / effective bandwidth + FLOPs / effective rate, per method).
//!
//! Every stage is timed on its own, the collective excluded, with the harness's one protocol
//! ([`crate::timing`]): `warmup` untimed repeats, then `repeats` timed ones, each `iters` calls
//! issued back to back between two device synchronizations ([`crate::timing::pipelined`]);
//! the row holds the median seconds per call and the p10–p90 spread. Stages:
//!
//! - PowerSGD: `p` (error-feedback add + P = M·Q), `q` (orthogonalize P + Q = Mᵀ·P), `decode`
//!   (M̂ = P·Qᵀ + error update), on the matrix shapes only (a flat bucket is not compressed);
//! - every other method: `encode` (everything before its collective) and `decode` (everything
//!   after, fed with the payload a one-rank collective delivers).
//!
//! The host's launch cost ([`host_launch`]): one candle op on a one-element tensor under the
//! same protocol, timed before the first method and after the last (rows of kind `host`).
//! Launch-bound stages run at the host CPU's dispatch rate, which differs between machines of
//! one GPU model (run 46's host ran PowerSGD's `q` 1.52× slower than run 44's). perfcast records
//! the probe next to each set; runs 49–53 showed it does not track the launch-bound calls'
//! host-to-host spread, so predictions are not scaled by it (`perfcast::gradcomp::calib::host`).
//!
//! Once per (method, shape) a `wire_bytes` row gives the exact payload bytes one rank sends.
//! Decode is measured at world 1 (one rank's payload); the gathered payload of P ranks is P times
//! larger, which perfcast's model scales.

use std::time::Instant;

use anyhow::Result;
use candle_core::Device;

use super::graph::{self, Exec};
use super::powersgd::powersgd_compresses;
use super::{synthetic_gradient, AnyCodec, Collective, Comm, LocalComm};
use crate::measure::Stats;
use crate::timing::{pipelined, Repeats};

/// What one micro run measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Method names (perfcast's syntax).
    pub methods: Vec<String>,
    /// Shapes (rows, cols); rows = 1 is a flat bucket of `cols` elements.
    pub shapes: Vec<(usize, usize)>,
    /// Untimed repeats.
    pub warmup: usize,
    /// Timed repeats.
    pub repeats: usize,
    /// Calls per timed repeat.
    pub iters: usize,
    /// Seed of the gradients and the codecs' draws.
    pub seed: u64,
    /// Eager calls or captured graphs ([`Exec`]).
    pub exec: Exec,
}

/// The methods measured: fp16, bf16, PowerSGD at ranks {1, 2, 4, 8, 32}, Top-k and Random-k at
/// densities {0.001, 0.01, 0.1}, signSGD, QSGD at {2, 4, 8} bits.
pub fn default_methods() -> Vec<String> {
    let mut m = vec!["fp16".to_string(), "bf16".to_string()];
    m.extend([1, 2, 4, 8, 32].map(|r| format!("powersgd:rank={r}")));
    for d in ["0.001", "0.01", "0.1"] {
        m.push(format!("topk:density={d}"));
    }
    for d in ["0.001", "0.01", "0.1"] {
        m.push(format!("randomk:density={d}"));
    }
    m.push("signsgd".into());
    m.extend([2, 4, 8].map(|b| format!("qsgd:bits={b}")));
    m
}

/// Largest `rows·cols` of a `--shapes` entry: 2³¹ elements (8 GiB of f32; the codecs index
/// elements with u32).
pub const MAX_SHAPE_ELEMS: usize = 1 << 31;

/// One `--shapes` entry, `RxC` (`1xN`: a flat bucket of N elements).
///
/// # Errors
/// Not two positive integers joined by `x`, or more than [`MAX_SHAPE_ELEMS`] elements: one line
/// naming the flag, the value and the allowed form.
pub fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        anyhow::anyhow!(
            "--shapes '{s}': expected RxC with integers R, C >= 1 and R*C <= {MAX_SHAPE_ELEMS} (1xN: a flat bucket of N elements)"
        )
    };
    let (r, c) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let (r, c): (usize, usize) = (
        r.trim().parse().map_err(|_| bad())?,
        c.trim().parse().map_err(|_| bad())?,
    );
    if r == 0 || c == 0 || r.checked_mul(c).is_none_or(|n| n > MAX_SHAPE_ELEMS) {
        return Err(bad());
    }
    Ok((r, c))
}

/// BERT-base's matrices (768×768, 768×3072, 3072×768, the 30522×768 embedding) and flat
/// buckets of 2¹⁸, 2²⁰, 2²² and 6.5·10⁶ elements; with `tiny`, the CI stand-ins (24×24, 24×96,
/// 96×24, 120×24; 256, 1024, 4096, 6500).
pub fn default_shapes(tiny: bool) -> Vec<(usize, usize)> {
    if tiny {
        vec![
            (24, 24),
            (24, 96),
            (96, 24),
            (120, 24),
            (1, 256),
            (1, 1024),
            (1, 4096),
            (1, 6500),
        ]
    } else {
        vec![
            (768, 768),
            (768, 3072),
            (3072, 768),
            (30522, 768),
            (1, 1 << 18),
            (1, 1 << 20),
            (1, 1 << 22),
            (1, 6_500_000),
        ]
    }
}

/// One measured figure.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    /// Seconds per call of one stage.
    Time(Stats),
    /// Payload bytes per rank per round.
    WireBytes(u64),
}

/// One row's content: method, stage (`p`, `q`, `encode`, `decode`, or `wire` for the bytes),
/// shape and figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// perfcast's method name.
    pub model: String,
    /// Stage.
    pub op: &'static str,
    /// Rows (1 for a flat bucket).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// The figure.
    pub figure: Figure,
}

/// Median-and-spread seconds per call of `f` under the protocol.
fn time(
    dev: &Device,
    reps: Repeats,
    iters: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Stats> {
    let xs = reps.run(|_| pipelined::<Device, anyhow::Error>(dev, iters, &mut f))?;
    Ok(Stats::of(&xs))
}

/// How every stage of a run is timed: the protocol (`reps`, `iters` calls per repeat) and the
/// execution mode.
struct Timer<'a> {
    dev: &'a Device,
    exec: Exec,
    reps: Repeats,
    iters: usize,
}

impl Timer<'_> {
    /// [`time`] of `f(c)` issued eagerly, or ([`Exec::Graph`]) captured once and replayed
    /// ([`graph::time`]; `hold` names the state the call replaces).
    fn time<C: ?Sized>(
        &self,
        c: &mut C,
        hold: impl Fn(&C) -> Vec<candle_core::Tensor>,
        mut f: impl FnMut(&mut C) -> Result<()>,
    ) -> Result<Stats> {
        match self.exec {
            Exec::Eager => time(self.dev, self.reps, self.iters, || f(c)),
            Exec::Graph => graph::time(self.dev, self.reps, self.iters, c, hold, f),
        }
    }
}

/// Keeps freed device memory in the device's default stream-ordered pool across
/// synchronizations (release threshold `u64::MAX`; the driver's default 0 returns it to the
/// system at every synchronization), for `codec-micro --keep-pool 1`. The hypothesis it tested:
/// the micro protocol synchronizes after every repeat, so the next repeat's first allocations
/// map memory again, a host-dependent cost (runs 49–50: launch-bound calls 1.1–1.6× run 48's
/// while calls with ≥ 100 µs of GPU work agreed within 2%). The A/B on runs 51, 52, 53 refuted
/// it: with the pool kept, calls under 20 µs took a median 1.22×, 1.03× and 0.91× as long, no
/// consistent effect and far from the spread between hosts, so the default protocol trims. Returns whether a pool was configured (`false` on the CPU).
///
/// # Errors
/// Driver errors.
pub fn keep_pool(dev: &Device) -> Result<bool> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = dev {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let stream = d.cuda_stream();
        let ctx = stream.context();
        ctx.bind_to_thread()?;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: `pool` receives the device's default pool handle (owned by the driver).
        unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) }.result()?;
        let mut threshold: u64 = u64::MAX;
        // SAFETY: the release threshold attribute takes a pointer to a u64.
        unsafe {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        }
        .result()?;
        return Ok(true);
    }
    let _ = dev;
    Ok(false)
}

/// Median-and-spread seconds per call of the smallest candle op (`affine` on a one-element f32
/// tensor: an output allocation and one kernel launch) under the protocol of `plan`, with three
/// times its repeats: what one launch costs this host.
///
/// # Errors
/// Device errors.
pub fn host_launch(dev: &Device, plan: &Plan) -> Result<Stats> {
    let x = candle_core::Tensor::zeros(1, candle_core::DType::F32, dev)?;
    time(
        dev,
        Repeats::new(plan.warmup, 3 * plan.repeats),
        plan.iters,
        || {
            x.affine(1.0, 1.0)?;
            Ok(())
        },
    )
}

/// Runs `plan` on `dev`, handing every point to `emit` as soon as it is measured. Returns the
/// wall-clock seconds the run took.
///
/// # Errors
/// A bad method name; device errors; the first error of `emit`.
pub fn run(dev: &Device, plan: &Plan, mut emit: impl FnMut(Point) -> Result<()>) -> Result<f64> {
    let t0 = Instant::now();
    let t = Timer {
        dev,
        exec: plan.exec,
        reps: Repeats::new(plan.warmup, plan.repeats),
        iters: plan.iters,
    };
    for method in &plan.methods {
        for &(rows, cols) in &plan.shapes {
            let n = rows * cols;
            let mut codec = AnyCodec::parse(method, plan.seed)?;
            let model = codec.name();
            let g = synthetic_gradient(dev, n, plan.seed)?;
            let mut point = |op, figure| {
                emit(Point {
                    model: model.clone(),
                    op,
                    rows,
                    cols,
                    figure,
                })
            };
            match &mut codec {
                AnyCodec::PowerSgd(p) => {
                    if rows == 1 || !powersgd_compresses(p.rank() as u64, rows as u64, cols as u64)
                    {
                        continue;
                    }
                    let shapes = [(rows, cols)];
                    let mut comm = LocalComm { world: 1 };
                    // One full round first: Q drawn, error feedback non-zero.
                    super::Codec::round(p, 0, &g, &shapes, &mut comm)?;
                    point("wire", Figure::WireBytes(p.wire_bytes(&shapes, 0)))?;
                    let st = t.time(
                        p,
                        |p| p.state_tensors(),
                        |p| {
                            p.stage_p(0, &g, &shapes)?;
                            Ok(())
                        },
                    )?;
                    point("p", Figure::Time(st))?;
                    let mut round = p.stage_p(0, &g, &shapes)?;
                    let p_flat = round.p_flat.clone().expect("a compressed matrix");
                    let p_sum = comm.all_reduce_sum(&p_flat)?;
                    let pp = &*p;
                    let st = t.time(
                        &mut round,
                        |r| r.tensors(),
                        |r| {
                            pp.stage_q(r, &p_sum)?;
                            Ok(())
                        },
                    )?;
                    point("q", Figure::Time(st))?;
                    let q = p.stage_q(&mut round, &p_sum)?;
                    let q_sum = match q {
                        Some(q) => Some(comm.all_reduce_sum(&q)?),
                        None => None,
                    };
                    let st = t.time(
                        p,
                        |p| p.state_tensors(),
                        |p| {
                            p.stage_decode(0, &round, q_sum.as_ref(), None, 1)?;
                            Ok(())
                        },
                    )?;
                    point("decode", Figure::Time(st))?;
                }
                AnyCodec::Two(c) => {
                    let mut comm = LocalComm { world: 1 };
                    super::two_stage_round(c.as_mut(), 0, &g, &mut comm)?;
                    point("wire", Figure::WireBytes(c.wire_bytes(n)))?;
                    let st = t.time(
                        c.as_mut(),
                        |c| c.state(),
                        |c| {
                            c.encode(0, &g, 1)?;
                            Ok(())
                        },
                    )?;
                    point("encode", Figure::Time(st))?;
                    let sent = c.encode(0, &g, 1)?;
                    c.verify()?;
                    let recv = sent
                        .iter()
                        .map(|t| match c.collective() {
                            Collective::AllReduce => comm.all_reduce_sum(t),
                            Collective::AllGather => comm.all_gather(t),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let st = t.time(
                        c.as_mut(),
                        |c| c.state(),
                        |c| {
                            c.decode(0, n, &recv, 1)?;
                            Ok(())
                        },
                    )?;
                    point("decode", Figure::Time(st))?;
                }
            }
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_or_name_the_value() {
        assert_eq!(parse_shape("64x576").unwrap(), (64, 576));
        assert_eq!(parse_shape(" 1X100000 ").unwrap(), (1, 100_000));
        for bad in ["64", "0x5", "5x0", "ax5", "5x-1", "65536x65537", ""] {
            let e = parse_shape(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--shapes '{bad}'")), "{e}");
        }
    }

    #[test]
    fn every_method_and_shape_yields_its_stages() {
        let plan = Plan {
            methods: vec![
                "powersgd:rank=2".into(),
                "topk:density=0.1".into(),
                "qsgd:bits=4".into(),
            ],
            shapes: vec![(12, 10), (1, 300)],
            warmup: 1,
            repeats: 2,
            iters: 2,
            seed: 1,
            exec: Exec::Eager,
        };
        let mut pts = Vec::new();
        run(&Device::Cpu, &plan, |p| {
            pts.push(p);
            Ok(())
        })
        .unwrap();
        let ops: Vec<(String, &str, usize)> = pts
            .iter()
            .map(|p| (p.model.clone(), p.op, p.rows))
            .collect();
        // PowerSGD: the matrix only (12×10 at rank 2: 120 ≥ 88 compresses), three stages.
        let want: Vec<(String, &str, usize)> = vec![
            ("powersgd:rank=2".into(), "wire", 12),
            ("powersgd:rank=2".into(), "p", 12),
            ("powersgd:rank=2".into(), "q", 12),
            ("powersgd:rank=2".into(), "decode", 12),
            ("topk:density=0.1".into(), "wire", 12),
            ("topk:density=0.1".into(), "encode", 12),
            ("topk:density=0.1".into(), "decode", 12),
            ("topk:density=0.1".into(), "wire", 1),
            ("topk:density=0.1".into(), "encode", 1),
            ("topk:density=0.1".into(), "decode", 1),
            ("qsgd:bits=4".into(), "wire", 12),
            ("qsgd:bits=4".into(), "encode", 12),
            ("qsgd:bits=4".into(), "decode", 12),
            ("qsgd:bits=4".into(), "wire", 1),
            ("qsgd:bits=4".into(), "encode", 1),
            ("qsgd:bits=4".into(), "decode", 1),
        ];
        assert_eq!(ops, want);
        let wire: Vec<u64> = pts
            .iter()
            .filter_map(|p| match p.figure {
                Figure::WireBytes(b) => Some(b),
                _ => None,
            })
            .collect();
        // 4·2·(12 + 10); top-k k = 12 and 30: 8k; QSGD 4 bits: 60 + 4 and 150 + 4.
        assert_eq!(wire, vec![176, 96, 240, 64, 154]);
        for p in &pts {
            if let Figure::Time(s) = &p.figure {
                assert_eq!(s.n, 2);
                assert!(s.median > 0.0 && s.p10 <= s.median && s.median <= s.p90);
            }
        }
    }
}
