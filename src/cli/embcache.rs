//! `perfcast embcache`: one cache simulation (or closed form) on a trace file or a generated
//! Zipf trace; `embcache trace-gen` writes traces; `embcache mrc` prints an LRU miss-ratio curve.

use crate::cli::{Globals, Outcome};
use clap::{Args, Subcommand};
use perfcast::embcache::pipeline::Pipeline;
use perfcast::embcache::policy::PolicyKind;
use perfcast::embcache::trace::{profile, writer, zipf::ZipfSpec, DenseTrace, TraceFormat};
use perfcast::embcache::{analytic, mrc, simulate, with_min_cache_rows, CacheSize, Metrics};
use perfcast::report::{print_records, write_atomic, LinePlot, Rows, Series};
use perfcast::{Error, Result};
use std::path::PathBuf;

/// Where the trace comes from: a file, or a seeded Zipf generator.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Trace file (text, csv `batch,table,id`, oracleGeneral, Criteo TSV, MovieLens ratings).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["zipf", "profile"])]
    pub trace: Option<PathBuf>,
    /// Trace format: text, csv, oracle-general, criteo, movielens, parquet (default: from the extension).
    #[arg(long, value_name = "FORMAT")]
    pub trace_format: Option<String>,
    /// Generate a Zipf(S) trace instead of reading one.
    #[arg(long, value_name = "S")]
    pub zipf: Option<f64>,
    /// Rows per table of the generated trace.
    #[arg(long, value_name = "N")]
    pub rows: Option<u64>,
    /// Tables of the generated trace (each with --rows rows).
    #[arg(long, default_value_t = 1)]
    pub tables: u32,
    /// Table sizes from a published profile instead of --rows/--tables: criteo-kaggle, criteo-terabyte.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Multiplier of the profile's table sizes, (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Accesses to generate.
    #[arg(long, value_name = "M")]
    pub accesses: Option<u64>,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Samples per batch (a sample = one lookup per table; one record of a text/oracleGeneral file).
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
}

impl SourceArgs {
    fn zipf_spec(&self) -> Result<Option<ZipfSpec>> {
        let Some(s) = self.zipf else { return Ok(None) };
        let tables = match (&self.profile, self.rows) {
            (Some(p), None) => profile::tables(p, self.scale)?,
            (None, Some(n)) => {
                if self.tables == 0 {
                    return Err(Error::range("--tables", 0, "≥ 1"));
                }
                vec![n; self.tables as usize]
            }
            (Some(_), Some(_)) => {
                return Err(Error::range(
                    "--rows",
                    "given with --profile",
                    "one of --rows or --profile",
                ))
            }
            (None, None) => {
                return Err(Error::range(
                    "--rows",
                    "missing",
                    "given with --zipf (or --profile NAME)",
                ))
            }
        };
        let m = self
            .accesses
            .ok_or_else(|| Error::range("--accesses", "missing", "given with --zipf"))?;
        Ok(Some(ZipfSpec::new(s, tables, m, self.seed)?))
    }

    /// Loads or generates the trace; returns it with the generator spec when generated.
    ///
    /// # Errors
    /// Missing source, unreadable or malformed files, invalid generator parameters.
    pub fn load(&self) -> Result<(DenseTrace, Option<ZipfSpec>)> {
        if self.batch == 0 {
            return Err(Error::range("--batch", 0, "≥ 1 sample"));
        }
        if let Some(path) = &self.trace {
            let fmt = match &self.trace_format {
                Some(f) => TraceFormat::parse(f)?,
                None => TraceFormat::from_path(path).ok_or_else(|| {
                    Error::range(
                        "--trace-format",
                        format!("missing for {}", path.display()),
                        format!(
                            "one of {} (the extension does not say)",
                            TraceFormat::NAMES.join(", ")
                        ),
                    )
                })?,
            };
            return Ok((DenseTrace::load(path, fmt, self.batch)?, None));
        }
        match self.zipf_spec()? {
            Some(z) => Ok((
                DenseTrace::from_stream(z.stream(), self.batch, false, &z.describe())?,
                Some(z),
            )),
            None => Err(Error::range(
                "--trace",
                "missing",
                "given: --trace FILE or --zipf S --rows N --accesses M",
            )),
        }
    }
}

/// `perfcast embcache` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EmbcacheArgs {
    /// trace-gen or mrc (without one: simulate).
    #[command(subcommand)]
    pub sub: Option<Sub>,
    /// The trace.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Policies (comma separated): lru, fifo, lfu, static-topk, belady, lookahead.
    #[arg(long, value_delimiter = ',', default_value = "lru")]
    pub policy: Vec<String>,
    /// Cache size: rows (N) or percent of unique rows (P%).
    #[arg(long, default_value = "10%")]
    pub cache: String,
    /// Lookahead window, batches.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Static top-k: fraction of the trace (from its start) that picks the hot rows.
    #[arg(long, default_value_t = 1.0)]
    pub profile_fraction: f64,
    /// sim (simulate the trace) or analytic (closed form; lru and static-topk; needs --zipf).
    #[arg(long, default_value = "sim")]
    pub method: String,
    /// Pipeline model: dense compute per iteration, s (adds iter_no_cache_s, iter_s, speedup).
    #[arg(long)]
    pub compute_s: Option<f64>,
    /// Pipeline model: bytes per embedding row.
    #[arg(long, default_value_t = 512.0)]
    pub row_bytes: f64,
    /// Pipeline model: fetch bandwidth, bytes/s.
    #[arg(long, default_value_t = 1.25e9)]
    pub fetch_bw: f64,
    /// Pipeline model: latency per transfer, s.
    #[arg(long, default_value_t = 5e-5)]
    pub fetch_latency_s: f64,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Write a trace (generated or converted) in any format.
    #[command(allow_negative_numbers = true)]
    TraceGen(TraceGenArgs),
    /// LRU miss-ratio curve in one pass (stack distances).
    #[command(allow_negative_numbers = true)]
    Mrc(MrcArgs),
}

/// `embcache trace-gen`.
#[derive(Debug, Args)]
pub struct TraceGenArgs {
    /// The trace to write.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Output format (default: from the extension).
    #[arg(long, value_name = "FORMAT")]
    pub format_out: Option<String>,
}

/// `embcache mrc`.
#[derive(Debug, Args)]
pub struct MrcArgs {
    /// The trace.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Cache sizes (rows or P%), comma separated; default 16 geometric sizes up to the unique rows.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// Directory for mrc.csv, mrc.png and mrc.svg.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn exec(a: EmbcacheArgs, g: &Globals) -> Result<Outcome> {
    match a.sub {
        Some(Sub::TraceGen(t)) => return trace_gen(t),
        Some(Sub::Mrc(m)) => return mrc_cmd(m, g),
        None => {}
    }
    let cache = CacheSize::parse(&a.cache)?;
    let kinds = a
        .policy
        .iter()
        .map(|p| PolicyKind::parse(p, a.window, a.profile_fraction))
        .collect::<Result<Vec<_>>>()?;
    let pipe = a
        .compute_s
        .map(|c| Pipeline::new(c, a.row_bytes, a.fetch_bw, a.fetch_latency_s))
        .transpose()?;
    let mut out: Vec<(Metrics, Option<perfcast::embcache::pipeline::IterTimes>)> = Vec::new();
    match a.method.as_str() {
        "sim" => {
            let (trace, z) = a.source.load()?;
            let rows = cache.rows(trace.n_rows())?;
            for k in kinds {
                let (mut m, bc) = simulate(&trace, k, rows)?;
                m.seed = z.as_ref().map(|z| z.seed);
                with_min_cache_rows(&mut m, &trace);
                let t = pipe.map(|p| p.times(&bc, matches!(k, PolicyKind::Lookahead { .. })));
                out.push((m, t));
            }
        }
        "analytic" => {
            let z = a.source.zipf_spec()?.ok_or_else(|| {
                Error::range(
                    "--method analytic",
                    "without --zipf",
                    "a Zipf source: --zipf S --rows N (or --profile) --accesses M",
                )
            })?;
            let total: u64 = z.tables.iter().sum();
            let rows = cache.rows(total as usize)?;
            for k in kinds {
                let hit = match k {
                    PolicyKind::Lru => analytic::che_lru_hit_rate(&z.tables, z.s, rows as u64)?.0,
                    PolicyKind::StaticTopK { .. } => {
                        analytic::topk_hit_rate(&z.tables, z.s, rows as u64)?
                    }
                    other => {
                        return Err(Error::range(
                            "--policy",
                            other.name(),
                            "lru or static-topk with --method analytic",
                        ))
                    }
                };
                let hits = (hit * z.accesses as f64).round() as u64;
                let exceeds = rows as u64 > total;
                out.push((
                    Metrics {
                        policy: k.name().into(),
                        method: "analytic",
                        window: None,
                        cache_rows: rows as u64,
                        cache_fraction_of_unique: rows as f64 / total as f64,
                        cache_exceeds_unique: exceeds,
                        accesses: z.accesses,
                        hits,
                        misses: z.accesses - hits.min(z.accesses),
                        hit_rate: hit,
                        unique_ids: total,
                        batches: None,
                        batch_unique_accesses: None,
                        batch_unique_misses: None,
                        batch_unique_hit_rate: None,
                        unique_rows_per_batch: None,
                        prefetch_rows_per_batch: None,
                        max_prefetch_rows_per_batch: None,
                        writeback_rows_per_batch: None,
                        min_cache_rows: None,
                        sim_s: None,
                        sim_requests_per_s: None,
                        seed: None,
                        note: if exceeds { format!("cache of {rows} rows exceeds the {total} rows of the tables") } else { "steady state of the independent reference model (unique_ids = table rows)".into() },
                    },
                    None,
                ));
            }
        }
        other => return Err(Error::range("--method", other, "sim or analytic")),
    }
    let mut rows = Rows::default();
    for (m, t) in &out {
        let mut r = match serde_json::to_value(m) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        if let Some(t) = t {
            r.insert("iter_no_cache_s".into(), t.no_cache_s.into());
            r.insert("iter_s".into(), t.iter_s.into());
            r.insert("speedup".into(), t.speedup.into());
        }
        rows.records.push(r);
    }
    Ok(Outcome::ok(print_records(&rows, g.format, out.len() > 1)))
}

fn trace_gen(a: TraceGenArgs) -> Result<Outcome> {
    let fmt = match &a.format_out {
        Some(f) => TraceFormat::parse(f)?,
        None => TraceFormat::from_path(&a.out).ok_or_else(|| {
            Error::range(
                "--format-out",
                format!("missing for {}", a.out.display()),
                format!("one of {}", TraceFormat::NAMES.join(", ")),
            )
        })?,
    };
    let (trace, _) = a.source.load()?;
    writer::write(&trace, fmt, &a.out)?;
    Ok(Outcome::ok(format!(
        "wrote {} ({} accesses, {} unique rows, {} batches, {}) from {}\n",
        a.out.display(),
        trace.len(),
        trace.n_rows(),
        trace.n_batches(),
        fmt.name(),
        trace.source
    )))
}

fn mrc_cmd(a: MrcArgs, g: &Globals) -> Result<Outcome> {
    let (trace, _) = a.source.load()?;
    let sizes: Vec<usize> = if a.sizes.is_empty() {
        mrc::log_sizes(trace.n_rows(), 16)
    } else {
        a.sizes
            .iter()
            .map(|s| CacheSize::parse(s)?.rows(trace.n_rows()))
            .collect::<Result<_>>()?
    };
    let h = mrc::stack_distances(&trace);
    let curve = h.curve(&sizes);
    let mut rows = Rows::default();
    for (c, mr) in &curve {
        let mut r = serde_json::Map::new();
        r.insert("cache_rows".into(), (*c as u64).into());
        r.insert(
            "cache_fraction_of_unique".into(),
            (*c as f64 / trace.n_rows() as f64).into(),
        );
        r.insert("miss_ratio".into(), (*mr).into());
        r.insert("hit_rate".into(), (1.0 - mr).into());
        r.insert("misses".into(), h.misses(*c).into());
        r.insert("accesses".into(), trace.len().into());
        r.insert("unique_ids".into(), trace.n_rows().into());
        rows.records.push(r);
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(&dir.join("mrc.csv"), rows.to_csv().as_bytes())?;
        LinePlot {
            stem: "mrc".into(),
            title: format!("LRU miss-ratio curve: {}", trace.source),
            x_label: "cache size (rows)".into(),
            y_label: "miss ratio".into(),
            log_x: true,
            log_y: false,
            series: vec![Series {
                name: "lru".into(),
                points: curve.iter().map(|(c, m)| (*c as f64, *m)).collect(),
            }],
        }
        .write(dir)?;
    }
    Ok(Outcome::ok(print_records(&rows, g.format, true)))
}
