//! nccl-tests-style collective sweep (all-reduce sum, all-gather, reduce-scatter sum, broadcast;
//! f32) over every GPU of one host, single process, NCCL's group API (`ncclCommInitAll`, one
//! communicator per device).
//!
//! Bus bandwidth follows nccl-tests (`doc/PERFORMANCE.md` of NVIDIA/nccl-tests): `algbw = bytes /
//! time_s`, `busbw = algbw · factor` with factor `2(n−1)/n` for all-reduce, `(n−1)/n` for
//! all-gather and reduce-scatter, and 1 for broadcast. As in nccl-tests, `bytes` is the larger
//! buffer: all-gather's total output (n × per-rank input) and reduce-scatter's total input
//! (n × per-rank output).

/// A collective the sweep times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coll {
    /// All-reduce, sum.
    AllReduce,
    /// All-gather (`bytes` = total output size).
    AllGather,
    /// Reduce-scatter, sum (`bytes` = total input size).
    ReduceScatter,
    /// Broadcast from rank 0.
    Broadcast,
}

/// Every collective, in sweep order.
pub const ALL: [Coll; 4] = [
    Coll::AllReduce,
    Coll::AllGather,
    Coll::ReduceScatter,
    Coll::Broadcast,
];

impl Coll {
    /// Name used in the CSV `model` column and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Coll::AllReduce => "allreduce",
            Coll::AllGather => "allgather",
            Coll::ReduceScatter => "reducescatter",
            Coll::Broadcast => "broadcast",
        }
    }

    /// Parses a name of [`Coll::as_str`].
    pub fn parse(s: &str) -> Option<Coll> {
        ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// nccl-tests bus-bandwidth factor for `ranks` ranks (busbw = algbw · factor).
    pub fn busbw_factor(self, ranks: usize) -> f64 {
        let n = ranks as f64;
        match self {
            Coll::AllReduce => 2.0 * (n - 1.0) / n,
            Coll::AllGather | Coll::ReduceScatter => (n - 1.0) / n,
            Coll::Broadcast => 1.0,
        }
    }
}

/// Message sizes (bytes) from `min` to `max` multiplying by `factor` (≥ 2), keeping only sizes
/// that split into whole f32 elements per rank (`bytes % (4·ranks) == 0`), as nccl-tests does.
pub fn sizes(min: u64, max: u64, factor: u64, ranks: usize) -> Vec<u64> {
    let mut v = Vec::new();
    let mut b = min.max(1);
    let unit = 4 * ranks.max(1) as u64;
    while b <= max {
        if b % unit == 0 {
            v.push(b);
        }
        b = b.saturating_mul(factor.max(2));
    }
    v
}

/// One timed point: per-operation times (s) of each repeat (each the mean over `iters`
/// back-to-back operations, devices synchronized before reading the host clock).
#[derive(Clone, Debug)]
pub struct Point {
    /// Collective.
    pub coll: Coll,
    /// Size, bytes (all-gather: total output).
    pub bytes: u64,
    /// Ranks (GPUs).
    pub ranks: usize,
    /// Per-operation time of each repeat, s.
    pub times_s: Vec<f64>,
}

#[cfg(feature = "cuda")]
pub use gpu::sweep;

#[cfg(feature = "cuda")]
mod gpu {
    use super::{Coll, Point};
    use anyhow::{anyhow, bail, Result};
    use cudarc::driver::{CudaContext, CudaGraph, CudaSlice, CudaStream};
    use cudarc::nccl::safe::{group_end, group_start, Comm, ReduceOp};
    use std::sync::Arc;
    use std::time::Instant;

    fn nccl<T>(r: std::result::Result<T, cudarc::nccl::result::NcclError>) -> Result<T> {
        r.map_err(|e| anyhow!("NCCL error {:?}", e.0))
    }

    struct Bufs {
        comms: Vec<Comm>,
        streams: Vec<Arc<CudaStream>>,
        send: Vec<CudaSlice<f32>>,
        recv: Vec<CudaSlice<f32>>,
        host: Vec<f32>,
    }

    impl Bufs {
        /// Launches one collective on every rank inside one NCCL group; `bytes` as in nccl-tests.
        fn launch(&mut self, coll: Coll, bytes: u64) -> Result<()> {
            let n = self.comms.len();
            let out_elems = (bytes / 4) as usize;
            // `bytes` is the larger buffer (nccl-tests); `out_elems` the recv length per rank.
            let (in_elems, out_elems) = match coll {
                Coll::AllReduce | Coll::Broadcast => (out_elems, out_elems),
                Coll::AllGather => (out_elems / n, out_elems),
                Coll::ReduceScatter => (out_elems, out_elems / n),
            };
            nccl(group_start())?;
            for i in 0..n {
                let s = self.send[i].slice(0..in_elems);
                let mut r = self.recv[i].slice_mut(0..out_elems);
                let res = match coll {
                    Coll::AllReduce => self.comms[i].all_reduce(&s, &mut r, &ReduceOp::Sum),
                    Coll::AllGather => self.comms[i].all_gather(&s, &mut r),
                    Coll::ReduceScatter => self.comms[i].reduce_scatter(&s, &mut r, &ReduceOp::Sum),
                    Coll::Broadcast => self.comms[i].broadcast(Some(&s), &mut r, 0),
                };
                if let Err(e) = res {
                    let _ = group_end();
                    bail!("NCCL error {:?}", e.0);
                }
            }
            nccl(group_end())?;
            Ok(())
        }

        /// Captures `iters` back-to-back operations of `coll` at `bytes` into one CUDA graph
        /// per rank (every rank's stream captures at once, relaxed mode, so the grouped NCCL
        /// calls of one thread over all devices are recorded on each device's stream).
        fn capture(&mut self, coll: Coll, bytes: u64, iters: usize) -> Result<Vec<CudaGraph>> {
            use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
            self.sync()?;
            for s in &self.streams {
                s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)?;
            }
            let mut launched = Ok(());
            for _ in 0..iters {
                launched = self.launch(coll, bytes);
                if launched.is_err() {
                    break;
                }
            }
            let mut graphs = Vec::with_capacity(self.streams.len());
            for s in &self.streams {
                let g = s.end_capture(CUgraphInstantiate_flags(0))?;
                graphs.push(g);
            }
            launched?;
            graphs
                .into_iter()
                .map(|g| {
                    g.ok_or_else(|| {
                        anyhow!("CUDA graph capture of {} recorded nothing", coll.as_str())
                    })
                })
                .collect()
        }

        fn sync(&self) -> Result<()> {
            for s in &self.streams {
                s.synchronize()?;
            }
            Ok(())
        }

        /// Checks one small operation of `coll` against the host reference (exact: small
        /// integers in f32).
        fn check(&mut self, coll: Coll, bytes: u64) -> Result<()> {
            let n = self.comms.len();
            self.launch(coll, bytes)?;
            self.sync()?;
            let elems = (bytes / 4) as usize;
            let out_elems = match coll {
                Coll::ReduceScatter => elems / n,
                _ => elems,
            };
            for (rank, (st, rv)) in self.streams.iter().zip(&self.recv).enumerate() {
                let got = st.clone_dtoh(&rv.slice(0..out_elems))?;
                for (j, &g) in got.iter().enumerate() {
                    // Every rank sends the same host pattern, so the references are closed forms.
                    let want = match coll {
                        Coll::AllReduce => self.host[j] * n as f32,
                        Coll::AllGather => self.host[j % (elems / n)],
                        Coll::ReduceScatter => self.host[rank * out_elems + j] * n as f32,
                        Coll::Broadcast => self.host[j],
                    };
                    if g != want {
                        bail!(
                            "{} check failed: rank {rank} element {j} = {g}, expected {want}",
                            coll.as_str()
                        );
                    }
                }
            }
            Ok(())
        }
    }

    /// Runs the sweep over all local GPUs: per size, `warmup` operations, then `repeats` timed
    /// batches of `iters` back-to-back operations (devices synchronized before and after each
    /// batch; per-operation time = batch time / iters). Calls `each` after every point.
    ///
    /// With `graph`, each batch's `iters` operations are captured once per size into one CUDA
    /// graph per rank's stream (NCCL ≥ 2.9 supports capture) and a timed batch replays the
    /// graphs: the host issues `ranks` graph launches instead of `iters` grouped NCCL calls, so
    /// the time is the devices' and not the issuing CPU's. (Without it, sizes ≤ 1 MiB on two
    /// H200s read as the host's issue rate, 16–26 µs per call depending on the host: runs 11,
    /// 12 and 18.)
    ///
    /// # Errors
    /// No CUDA device, NCCL or CUDA failure, a failed correctness check.
    pub fn sweep(
        colls: &[Coll],
        sizes: &[u64],
        warmup: usize,
        iters: usize,
        repeats: usize,
        graph: bool,
        mut each: impl FnMut(&Point) -> Result<()>,
    ) -> Result<Vec<Point>> {
        let n = CudaContext::device_count()
            .map_err(|e| anyhow!("no CUDA GPU or driver found: {e}"))? as usize;
        if n == 0 {
            bail!("no CUDA GPU found");
        }
        let max = sizes.iter().copied().max().unwrap_or(0);
        let max_elems = (max / 4) as usize;
        let host: Vec<f32> = (0..max_elems.max(1))
            .map(|i| (i % 251) as f32 + 1.0)
            .collect();
        let mut streams = Vec::new();
        let mut send = Vec::new();
        let mut recv = Vec::new();
        for d in 0..n {
            let ctx = CudaContext::new(d)?;
            // SAFETY: one stream per context and every use of a buffer is on that stream, so
            // cudarc's cross-stream events order nothing here; without them a CUDA graph
            // capture records only the collectives (no event waits from outside the capture).
            unsafe { ctx.disable_event_tracking() };
            let st = ctx.new_stream()?;
            send.push(st.clone_htod(&host)?);
            recv.push(st.alloc_zeros::<f32>(max_elems.max(1))?);
            st.synchronize()?;
            streams.push(st);
        }
        println!("nccl-sweep: {n} GPU(s), buffers {max} bytes per rank, initialising NCCL");
        let t0 = Instant::now();
        let comms = nccl(Comm::from_devices(streams.clone()))?;
        println!(
            "nccl-sweep: ncclCommInitAll {:.3} s",
            t0.elapsed().as_secs_f64()
        );
        let mut b = Bufs {
            comms,
            streams,
            send,
            recv,
            host,
        };
        for &c in colls {
            let small = 4096u64.min(max) / (4 * n as u64) * (4 * n as u64);
            if small > 0 {
                b.check(c, small)?;
                println!(
                    "nccl-sweep: {} correctness check passed ({small} bytes)",
                    c.as_str()
                );
            }
        }
        let mut out = Vec::new();
        for &c in colls {
            for &bytes in sizes {
                for _ in 0..warmup {
                    b.launch(c, bytes)?;
                }
                b.sync()?;
                let graphs = if graph {
                    Some(b.capture(c, bytes, iters)?)
                } else {
                    None
                };
                if let Some(gs) = &graphs {
                    // One untimed replay: uploads the graphs and warms their first launch.
                    for g in gs {
                        g.launch()?;
                    }
                    b.sync()?;
                }
                let mut times = Vec::with_capacity(repeats);
                for _ in 0..repeats {
                    let t = Instant::now();
                    match &graphs {
                        Some(gs) => {
                            for g in gs {
                                g.launch()?;
                            }
                        }
                        None => {
                            for _ in 0..iters {
                                b.launch(c, bytes)?;
                            }
                        }
                    }
                    b.sync()?;
                    times.push(t.elapsed().as_secs_f64() / iters as f64);
                }
                let p = Point {
                    coll: c,
                    bytes,
                    ranks: n,
                    times_s: times,
                };
                each(&p)?;
                out.push(p);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nccl_tests_factors() {
        // nccl-tests PERFORMANCE.md: 2 ranks → all-reduce 1, all-gather 1/2; 8 ranks → 7/4, 7/8.
        assert_eq!(Coll::AllReduce.busbw_factor(2), 1.0);
        assert_eq!(Coll::AllGather.busbw_factor(2), 0.5);
        assert!((Coll::AllReduce.busbw_factor(8) - 1.75).abs() < 1e-15);
        assert!((Coll::AllGather.busbw_factor(8) - 0.875).abs() < 1e-15);
        assert_eq!(Coll::AllReduce.busbw_factor(1), 0.0);
        assert_eq!(Coll::ReduceScatter.busbw_factor(2), 0.5);
        assert!((Coll::ReduceScatter.busbw_factor(8) - 0.875).abs() < 1e-15);
        assert_eq!(Coll::Broadcast.busbw_factor(8), 1.0);
    }

    #[test]
    fn sizes_doubling_and_divisible() {
        let s = sizes(8, 1 << 30, 2, 2);
        assert_eq!(s.first(), Some(&8));
        assert_eq!(s.last(), Some(&(1 << 30)));
        assert_eq!(s.len(), 28); // 2^3 .. 2^30
                                 // 3 ranks: only multiples of 12 bytes survive; powers of two never are.
        assert!(sizes(8, 1 << 20, 2, 3).is_empty());
        assert_eq!(sizes(8, 128, 4, 1), vec![8, 32, 128]);
    }

    #[test]
    fn parse_round_trip() {
        for c in ALL {
            assert_eq!(Coll::parse(c.as_str()), Some(c));
        }
        assert_eq!(Coll::parse("alltoall"), None);
    }
}
