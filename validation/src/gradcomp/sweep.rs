//! `perfcast-gpu nccl-sweep`: nccl-tests-style sweep (all-reduce, all-gather, reduce-scatter,
//! broadcast; f32) over
//! every local GPU with [`super::nccl`]: tidy CSV `<set>.csv` (technique `gradcomp`, kind
//! `collective`, median `time_s` and `busbw_bytes_per_s` per size) and `<set>-<op>-busbw.csv`
//! curves (`bytes,busbw_bytes_per_s`, what `perfcast collective --busbw-csv` reads). Needs the
//! `cuda` feature; without it the command stops with one line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::Global;

/// NCCL environment variables that change the transport; each one set is recorded in the rows'
/// `params` (lower-cased), so a restricted-link curve is never mistaken for the full one.
pub const NCCL_KNOBS: [&str; 7] = [
    "NCCL_MAX_NCHANNELS",
    "NCCL_MIN_NCHANNELS",
    "NCCL_P2P_DISABLE",
    "NCCL_SHM_DISABLE",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "NCCL_NVLS_ENABLE",
];

/// Flags of `nccl-sweep`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "allreduce,allgather,reducescatter,broadcast"
    )]
    ops: Vec<String>,
    /// Smallest size, bytes (all-gather: total output; reduce-scatter: total input; as in
    /// nccl-tests).
    #[arg(long, default_value_t = 8)]
    min_bytes: u64,
    /// Largest size, bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_bytes: u64,
    /// Size multiplier between points.
    #[arg(long, default_value_t = 2)]
    step_factor: u64,
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Back-to-back operations per timed batch.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Timed batches per size (median and spread over these).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Timing: `host` issues every operation from the host (nccl-tests' loop; small sizes then
    /// time the host's issue rate), `graph` replays the batch as captured CUDA graphs (device
    /// time; rows carry `timing=graph` in `params`).
    #[arg(long, default_value = "host", value_parser = ["host", "graph"])]
    timing: String,
    #[arg(long, default_value = "h200x2-nccl")]
    set: String,
    #[arg(long)]
    out: PathBuf,
}

/// Runs `nccl-sweep` on every local GPU (`--cpu` does not apply: collectives need GPUs).
///
/// # Errors
/// Built without the `cuda` feature; a bad flag value; no GPU; an NCCL, CUDA or write failure;
/// a failed correctness check (one line each).
pub fn run(_global: &Global, a: Args) -> Result<ExitCode> {
    let Args {
        ops,
        min_bytes,
        max_bytes,
        step_factor,
        warmup,
        iters,
        repeats,
        timing,
        set,
        out,
    } = a;
    nccl_sweep(
        &ops,
        (min_bytes, max_bytes, step_factor),
        (warmup, iters, repeats, timing == "graph"),
        &set,
        &out,
    )
}

#[cfg(not(feature = "cuda"))]
fn nccl_sweep(
    _ops: &[String],
    _sizes: (u64, u64, u64),
    _timing: (usize, usize, usize, bool),
    _set: &str,
    _out: &std::path::Path,
) -> Result<ExitCode> {
    bail!("nccl-sweep: perfcast-gpu was built without the `cuda` feature (rebuild with --features cuda)")
}

/// `nccl-sweep`: times the collectives, writes the tidy CSV row by row and the busbw curves.
#[cfg(feature = "cuda")]
fn nccl_sweep(
    ops: &[String],
    (min_bytes, max_bytes, step_factor): (u64, u64, u64),
    (warmup, iters, repeats, graph): (usize, usize, usize, bool),
    set: &str,
    out: &std::path::Path,
) -> Result<ExitCode> {
    use super::nccl::{self, Coll};
    use crate::cli::positive;
    use crate::measure::{provenance, Row, Sink, Stats};
    use anyhow::Context;
    use std::fmt::Write as _;
    let colls = ops
        .iter()
        .map(|o| {
            Coll::parse(o).ok_or_else(|| {
                anyhow::anyhow!(
                    "--ops {o}: expected allreduce, allgather, reducescatter or broadcast"
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    positive("--iters", &[iters])?;
    positive("--repeats", &[repeats])?;
    if min_bytes == 0 || min_bytes > max_bytes || step_factor < 2 {
        bail!("--min-bytes {min_bytes} --max-bytes {max_bytes} --step-factor {step_factor}: expected 1 <= min <= max and factor >= 2");
    }
    let n = cudarc::driver::CudaContext::device_count()
        .map_err(|e| anyhow::anyhow!("no CUDA GPU or driver found: {e}"))? as usize;
    let sizes = nccl::sizes(min_bytes, max_bytes, step_factor, n);
    if sizes.is_empty() {
        bail!("no size in {min_bytes}..={max_bytes} splits into whole f32 elements over {n} ranks");
    }
    // NCCL settings that restrict the transport (slow-link emulation) are named in every row.
    let mut nccl_env: Vec<(String, String)> = NCCL_KNOBS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_ascii_lowercase(), v)))
        .collect();
    if graph {
        nccl_env.push(("timing".into(), "graph".into()));
    }
    if !nccl_env.is_empty() {
        println!("nccl-sweep: row params {nccl_env:?}");
    }
    let mut sink = Sink::open(out, set, provenance())
        .with_context(|| format!("opening {}", out.display()))?
        .with_technique("gradcomp");
    println!(
        "{:>10} {:>12} {:>12} {:>10} {:>10} {:>8}",
        "op", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s", "spread"
    );
    let points = nccl::sweep(&colls, &sizes, warmup, iters, repeats, graph, |p| {
        let st = Stats::of(&p.times_s);
        let algbw = p.bytes as f64 / st.median;
        let busbw = algbw * p.coll.busbw_factor(p.ranks);
        println!(
            "{:>10} {:>12} {:>12.2} {:>10.2} {:>10.2} {:>8.3}",
            p.coll.as_str(),
            p.bytes,
            st.median * 1e6,
            algbw / 1e9,
            busbw / 1e9,
            st.spread()
        );
        let base = Row {
            set: set.to_string(),
            kind: "collective".into(),
            model: p.coll.as_str().into(),
            batch: crate::measure::n(p.ranks),
            position: u32::try_from(p.bytes).ok(),
            params: nccl_env.iter().fold(
                crate::measure::Params::new().with("bytes", p.bytes),
                |ps, (k, v)| ps.with(k, v),
            ),
            repeats: p.times_s.len() as u64,
            spread: Some(st.spread()),
            ..Row::default()
        };
        sink.write(&Row {
            metric: "time_s".into(),
            value: st.median,
            unit: "s".into(),
            ..base.clone()
        })?;
        sink.write(&Row {
            metric: "busbw_bytes_per_s".into(),
            value: busbw,
            unit: "bytes/s".into(),
            ..base
        })?;
        Ok(())
    })?;
    let prov = provenance();
    for &c in &colls {
        let mut text = String::new();
        writeln!(text, "# perfcast-gpu nccl-sweep: {} (f32, nccl-tests busbw), set {set}, gpu {}, driver {}, cuda {}, commit {}, date {}", c.as_str(), prov.gpu, prov.driver, prov.cuda, prov.commit, crate::measure::now_iso())?;
        writeln!(text, "bytes,busbw_bytes_per_s")?;
        for p in points.iter().filter(|p| p.coll == c) {
            let busbw = p.bytes as f64 / Stats::of(&p.times_s).median * c.busbw_factor(p.ranks);
            if busbw > 0.0 {
                writeln!(text, "{},{busbw:.6e}", p.bytes)?;
            }
        }
        let path = out.join(format!("{set}-{}-busbw.csv", c.as_str()));
        let tmp = path.with_extension("csv.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("wrote {} rows to {}", sink.rows, sink.path().display());
    Ok(ExitCode::SUCCESS)
}
