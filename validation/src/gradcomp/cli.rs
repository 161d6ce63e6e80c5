//! `perfcast-gpu gradcomp {codec-check,codec-micro}`: the gradient codecs' command line.
//!
//! With the global `--cpu` both run on the CPU at tiny sizes (what CI runs); otherwise on CUDA
//! GPU 0 at BERT-base sizes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::codec::{check, micro};
use crate::cli::{device, positive, Global};
use crate::measure::{provenance, Params, Row, Sink};

/// The codec subcommands (flattened into `perfcast-gpu gradcomp …` by [`super::cmd`]).
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Correctness of every codec before timing: fp16/bf16 round-trip error, PowerSGD's
    /// reconstruction error against rank, Top-k against a stable sort, sign-bit packing and
    /// vote, QSGD's bound and unbiasedness, error feedback staying bounded. Exit 1 on failure.
    CodecCheck {
        /// Seed of the gradients and the codecs' draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Per-stage codec timings (collective excluded) over BERT-base shapes and buckets: tidy CSV
    /// rows `gradcomp,<set>,codec,<method>`, params `op=<stage>;rows=R;cols=C;elems=N`, metric
    /// `time_s` (median per call) and, per (method, shape), `wire_bytes` (op=wire).
    CodecMicro {
        /// Keep freed device memory in the stream-ordered pool across the protocol's
        /// synchronizations (1) or let the driver return it at each one (0, the default: the
        /// protocol of every committed codec set). Recorded as `pool=keep|trim`. The A/B of
        /// runs 51–53 found no consistent effect (calls under 20 µs 1.22×, 1.03×, 0.91×).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
        keep_pool: u8,
        /// How each call runs: `eager` (every op issued by the host, as the step's hook runs
        /// it; every set before run 61) or `graph` (captured once as a CUDA graph and replayed:
        /// the device-side cost, free of the host's issue rate; CUDA only). Recorded as
        /// `exec=eager|graph`. Not the global `--exec`, which sets how specdec's forwards run
        /// and defaults to graphs.
        #[arg(long = "codec-exec", default_value = "eager")]
        codec_exec: String,
        /// Methods (perfcast's names), comma-separated (default: every method and setting).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        /// Shapes `RxC`, comma-separated (`1xN`: a flat bucket of N elements; default: BERT-base's
        /// matrices and four flat buckets, [`micro::default_shapes`]).
        #[arg(long, value_delimiter = ',')]
        shapes: Vec<String>,
        /// Untimed repeats (default 3; 1 with --cpu).
        #[arg(long)]
        warmup: Option<usize>,
        /// Timed repeats (default 10; 3 with --cpu).
        #[arg(long)]
        repeats: Option<usize>,
        /// Calls per timed repeat, device synchronized around them (default 5; 1 with --cpu).
        #[arg(long)]
        iters: Option<usize>,
        /// Seed of the gradients and the codecs' draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Measurement set name (the CSV is `<out>/<set>.csv`).
        #[arg(long, default_value = "h200-gradcomp-codec")]
        set: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `gradcomp` subcommand.
///
/// # Errors
/// No device; a bad flag; device or write errors (one line each).
pub fn run(g: &Global, cmd: Cmd) -> Result<ExitCode> {
    let dev = device(g.cpu)?;
    match cmd {
        Cmd::CodecCheck { seed } => {
            let sizes = if g.cpu {
                check::Sizes::tiny()
            } else {
                check::Sizes::device()
            };
            let t0 = std::time::Instant::now();
            let outcomes = check::run_all(&dev, &sizes, seed)?;
            let mut failed = 0;
            for o in &outcomes {
                println!(
                    "{} {}: {}",
                    if o.pass { "PASS" } else { "FAIL" },
                    o.name,
                    o.detail
                );
                failed += usize::from(!o.pass);
            }
            println!(
                "codec-check: {} checks, {failed} failed, {:.1} s",
                outcomes.len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::CodecMicro {
            keep_pool,
            codec_exec,
            methods,
            shapes,
            warmup,
            repeats,
            iters,
            seed,
            set,
            out,
        } => {
            // The CPU mode is CI's smoke run: a few calls per point.
            let (warmup, repeats, iters) = if g.cpu {
                (
                    warmup.unwrap_or(1),
                    repeats.unwrap_or(3),
                    iters.unwrap_or(1),
                )
            } else {
                (
                    warmup.unwrap_or(3),
                    repeats.unwrap_or(10),
                    iters.unwrap_or(5),
                )
            };
            positive("--repeats", &[repeats])?;
            positive("--iters", &[iters])?;
            let plan = micro::Plan {
                methods: if methods.is_empty() {
                    micro::default_methods()
                } else {
                    methods
                },
                shapes: if shapes.is_empty() {
                    micro::default_shapes(g.cpu)
                } else {
                    shapes
                        .iter()
                        .map(|s| micro::parse_shape(s))
                        .collect::<Result<_>>()?
                },
                warmup,
                repeats,
                iters,
                seed,
                exec: super::codec::graph::Exec::parse(&codec_exec)?,
            };
            if plan.exec == super::codec::graph::Exec::Graph && !dev.is_cuda() {
                anyhow::bail!("--codec-exec graph: CUDA graphs need a CUDA device (drop --cpu, or use --codec-exec eager)");
            }
            // Names are checked before anything runs.
            for m in &plan.methods {
                super::codec::AnyCodec::parse(m, seed)?;
            }
            let mut sink = Sink::open(&out, &set, provenance())
                .with_context(|| format!("opening {}", out.display()))?
                .with_technique("gradcomp");
            println!(
                "{:>20} {:>7} {:>6} {:>6} {:>12} {:>8}",
                "method", "op", "rows", "cols", "time_us|B", "spread"
            );
            // The pool setting comes first: every timed call, the host rows included, runs under it.
            let pool = if !dev.is_cuda() {
                "none"
            } else if keep_pool == 1 && micro::keep_pool(&dev)? {
                "keep"
            } else {
                "trim"
            };
            let host_row = |at: &str, sink: &mut Sink| -> Result<()> {
                let st = micro::host_launch(&dev, &plan)?;
                println!(
                    "{:>20} {:>7} {:>6} {:>6} {:>12.2} {:>8.3}",
                    "host",
                    "launch",
                    1,
                    1,
                    st.median * 1e6,
                    st.spread()
                );
                sink.write(&Row {
                    set: set.clone(),
                    kind: "host".into(),
                    model: "candle-affine".into(),
                    params: Params::new()
                        .with("op", "launch")
                        .with("elems", 1)
                        .with("at", at)
                        .with("pool", pool),
                    metric: "time_s".into(),
                    value: st.median,
                    unit: "s".into(),
                    repeats: st.n as u64,
                    spread: Some(st.spread()),
                    ..Row::default()
                })?;
                Ok(())
            };
            host_row("start", &mut sink)?;
            let secs = micro::run(&dev, &plan, |p| {
                let params = Params::new()
                    .with("op", p.op)
                    .with("rows", p.rows)
                    .with("cols", p.cols)
                    .with("elems", p.rows * p.cols)
                    .with("pool", pool)
                    .with("exec", plan.exec.as_str());
                let base = Row {
                    set: set.clone(),
                    kind: "codec".into(),
                    model: p.model.clone(),
                    params,
                    ..Row::default()
                };
                let row = match p.figure {
                    micro::Figure::Time(st) => {
                        println!(
                            "{:>20} {:>7} {:>6} {:>6} {:>12.2} {:>8.3}",
                            p.model,
                            p.op,
                            p.rows,
                            p.cols,
                            st.median * 1e6,
                            st.spread()
                        );
                        Row {
                            metric: "time_s".into(),
                            value: st.median,
                            unit: "s".into(),
                            repeats: st.n as u64,
                            spread: Some(st.spread()),
                            ..base
                        }
                    }
                    micro::Figure::WireBytes(b) => Row {
                        metric: "wire_bytes".into(),
                        value: b as f64,
                        unit: "bytes".into(),
                        repeats: 1,
                        ..base
                    },
                };
                sink.write(&row)?;
                Ok(())
            })?;
            host_row("end", &mut sink)?;
            println!(
                "codec-micro: wrote {} rows to {} in {secs:.1} s",
                sink.rows,
                sink.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
