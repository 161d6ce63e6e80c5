//! `perfcast embcache`: one cache simulation (or closed form) on a trace file or a generated
//! Zipf trace; `embcache trace-gen` writes traces; `embcache mrc` prints an LRU miss-ratio curve.

use crate::cli::{Globals, Outcome};
use clap::{Args, Subcommand};
use perfcast::embcache::solve::solve_each;
use perfcast::embcache::stream;
use perfcast::embcache::trace::{writer, TraceFormat};
use perfcast::embcache::{
    evaluate_each, mrc, CacheOf, CacheSize, Failed, Method, SizeBasis, SourceSpec, Spec,
};
use perfcast::report::{print_records, write_atomic, LinePlot, Rows, Series};
use perfcast::sweep::{scoped, Progress};
use perfcast::{Error, Result};
use std::path::PathBuf;

/// Where the trace comes from: a file, or a seeded Zipf generator.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Trace file (text, csv `batch,table,id`, oracleGeneral, Criteo TSV, MovieLens ratings or u.data, libCacheSim CSV).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["zipf"])]
    pub trace: Option<PathBuf>,
    /// Trace format: text, csv, oracle-general, criteo, movielens, lcs-csv, parquet (default: from the name and first line).
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
    /// Table sizes from a published profile instead of --rows/--tables: criteo-kaggle, criteo-terabyte (with --trace: declares the trace's table sizes).
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
    /// Rows of the embedding tables (all tables), what --cache P% is a fraction of (default: the --profile's or generator's tables; a trace file declares none).
    #[arg(long, value_name = "N")]
    pub table_rows: Option<u64>,
    /// MovieLens: replay ratings by time (default; a stable sort) or in file order.
    #[arg(long, value_name = "time|file")]
    pub order: Option<String>,
    /// MovieLens: lookups per rating: both (user then movie, default), items or users.
    #[arg(long, value_name = "items|users|both")]
    pub lookups: Option<String>,
    /// libCacheSim CSV: its column options (as cachesim -t), e.g. "obj-id-col=5, obj-size-col=4, has-header=true" (default: from the header).
    #[arg(long, value_name = "PARAMS", allow_hyphen_values = true)]
    pub csv_params: Option<String>,
}

impl SourceArgs {
    /// The library source spec these flags describe (one flag, one key).
    pub fn spec(&self) -> SourceSpec {
        SourceSpec {
            trace: self.trace.clone(),
            trace_format: self.trace_format.clone(),
            zipf: self.zipf,
            rows: self.rows,
            tables: self.tables,
            profile: self.profile.clone(),
            scale: self.scale,
            accesses: self.accesses,
            seed: self.seed,
            batch: self.batch,
            table_rows: self.table_rows,
            order: self.order.clone(),
            lookups: self.lookups.clone(),
            csv_params: self.csv_params.clone(),
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
    /// Cache size: rows (N), percent (P%, of the table's rows; see --cache-of) or bytes (12GiB, 500MB: rows of --row-bytes).
    #[arg(long, default_value = "10%")]
    pub cache: CacheSize,
    /// What --cache P% is a fraction of: table (the table's rows) or unique (the distinct rows of the trace).
    #[arg(long, default_value = "table")]
    pub cache_of: CacheOf,
    /// Inverse what-if: the smallest cache (rows and bytes) whose hit rate per access reaches this target, per policy (LRU exact; others by bisection to --solve-tolerance).
    #[arg(long, value_name = "HIT_RATE", conflicts_with = "cache")]
    pub solve_hit_rate: Option<f64>,
    /// Bisection tolerance of --solve-hit-rate, a fraction of the size found (0 = to one row).
    #[arg(long, default_value_t = 0.01)]
    pub solve_tolerance: f64,
    /// Lookahead window, batches.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Static top-k: fraction of the trace (from its start) that picks the hot rows.
    #[arg(long, default_value_t = 1.0)]
    pub profile_fraction: f64,
    /// sim (simulate the trace) or analytic (closed form; lru and static-topk; needs --zipf).
    #[arg(long, default_value = "sim")]
    pub method: Method,
    /// Pipeline model: dense compute per iteration, s, in (0, 1e6] (adds iter_no_cache_s, iter_s, speedup; the other pipeline flags need it).
    #[arg(long)]
    pub compute_s: Option<f64>,
    /// Bytes per embedding row, in (0, 1 GiB] (sizes in bytes, cache_bytes, the pipeline model).
    #[arg(long, default_value_t = 512.0)]
    pub row_bytes: f64,
    /// Pipeline model: fetch bandwidth, bytes/s, in (0, 1.25e14].
    #[arg(long, default_value_t = 1.25e9)]
    pub fetch_bw: f64,
    /// Pipeline model: latency per transfer, s, in [0, 1e6].
    #[arg(long, default_value_t = 5e-5)]
    pub fetch_latency_s: f64,
    /// Pipeline model: data-parallel trainers sharing the store's fetch bandwidth (adds trainers,
    /// dense_sync_s when > 1).
    #[arg(long, default_value_t = 1)]
    pub trainers: i64,
    /// Pipeline model: dense parameters all-reduced across the trainers every iteration.
    #[arg(long, default_value_t = 0.0)]
    pub dense_params: f64,
    /// Pipeline model: bytes per dense parameter in the all-reduce.
    #[arg(long, default_value_t = 4.0)]
    pub dense_param_bytes: f64,
    /// Pipeline model: network bandwidth of a trainer's node for the all-reduce, Gb/s.
    #[arg(long)]
    pub sync_gbps: Option<f64>,
    /// Pipeline model: per-step all-reduce latency, µs.
    #[arg(long, default_value_t = 10.0)]
    pub sync_latency_us: f64,
    /// Pipeline model: all-reduce algorithm (ring, tree, hierarchical).
    #[arg(long, default_value = "ring")]
    pub sync_algo: String,
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
    /// Cache sizes (rows, P% or bytes as --cache), comma separated; default 16 geometric sizes up to the unique rows.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// What a size P% is a fraction of: table or unique.
    #[arg(long, default_value = "table")]
    pub cache_of: CacheOf,
    /// Bytes per embedding row, in (0, 1 GiB] (sizes in bytes, cache_bytes).
    #[arg(long, default_value_t = 512.0)]
    pub row_bytes: f64,
    /// Directory for mrc.csv, mrc.png and mrc.svg.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl EmbcacheArgs {
    /// The library spec these flags describe (one flag, one key).
    pub fn spec(&self) -> Spec {
        let s = self.source.spec();
        Spec {
            trace: s.trace,
            trace_format: s.trace_format,
            zipf: s.zipf,
            rows: s.rows,
            tables: s.tables,
            profile: s.profile,
            scale: s.scale,
            accesses: s.accesses,
            seed: s.seed,
            batch: s.batch,
            table_rows: s.table_rows,
            order: s.order,
            lookups: s.lookups,
            csv_params: s.csv_params,
            policy: self.policy.clone(),
            cache: self.cache,
            cache_of: self.cache_of,
            solve_hit_rate: self.solve_hit_rate,
            solve_tolerance: self.solve_tolerance,
            window: self.window,
            profile_fraction: self.profile_fraction,
            compute_s: self.compute_s,
            row_bytes: self.row_bytes,
            fetch_bw: self.fetch_bw,
            fetch_latency_s: self.fetch_latency_s,
            trainers: self.trainers,
            dense_params: self.dense_params,
            dense_param_bytes: self.dense_param_bytes,
            sync_gbps: self.sync_gbps,
            sync_latency_us: self.sync_latency_us,
            sync_algo: self.sync_algo.clone(),
            method: vec![self.method.name().to_string()],
        }
    }
}

/// Runs `embcache` (clap → [`Spec`] → [`evaluate`] → print) or one of its subcommands.
///
/// # Errors
/// Any validation error of the flags, an unreadable trace.
pub fn exec(a: EmbcacheArgs, g: &Globals) -> Result<Outcome> {
    match a.sub {
        Some(Sub::TraceGen(t)) => return trace_gen(t, g),
        Some(Sub::Mrc(m)) => return mrc_cmd(m, g),
        None => {}
    }
    let spec = a.spec();
    let params = spec.resolve(&g.catalog)?;
    // Accesses read and simulated, on stderr (a terminal, no -q) while the policies run.
    let bar = Progress::accesses("embcache", !g.quiet);
    // Each policy's row, or its failure; and the notes of the rows that ran.
    type Rec = serde_json::Map<String, serde_json::Value>;
    let (out, notes): (Vec<std::result::Result<Rec, Box<Failed>>>, Vec<String>) = match params.solve
    {
        Some(s) => {
            let out = scoped(&bar, || solve_each(&params, s, a.method, spec.seed))?;
            let notes = out.iter().flatten().map(|r| r.row.metrics.note.clone());
            let notes = notes.collect();
            (
                out.into_iter()
                    .map(|r| r.map(|s| s.record()).map_err(Box::new))
                    .collect(),
                notes,
            )
        }
        None => {
            let out = scoped(&bar, || evaluate_each(&params, a.method, spec.seed))?;
            let notes = out.iter().flatten().map(|r| r.metrics.note.clone());
            let notes = notes.collect();
            (
                out.into_iter()
                    .map(|r| r.map(|r| r.record()).map_err(Box::new))
                    .collect(),
                notes,
            )
        }
    };
    bar.finish();
    let n = out.len();
    let failed = out.iter().filter(|r| r.is_err()).count();
    // What the reader ignored (object sizes of a byte-sized trace) is in every row's note; say it
    // on stderr too, once.
    let mut warnings: Vec<String> = Vec::new();
    for note in &notes {
        for part in note.split("; ") {
            if part.starts_with("object sizes ignored") && !warnings.iter().any(|w| w == part) {
                warnings.push(part.to_string());
            }
        }
    }
    let warn: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
    if failed == n {
        // Nothing ran: the first policy's reason is the error (bad input, exit 2).
        if let Some(Err(f)) = out.into_iter().next() {
            return Err(f.error);
        }
        return Ok(Outcome::ok(String::new()));
    }
    let records: Vec<_> = out
        .iter()
        .map(|r| match r {
            Ok(rec) => rec.clone(),
            Err(f) => f.record(),
        })
        .collect();
    if failed == 0 {
        let mut o = Outcome::ok(print_records(&Rows { records }, g.format, n > 1));
        o.stderr = warn;
        return Ok(o);
    }
    // Some policies could not run: every row gets the columns of a row that ran (null where a
    // failed row has no value) and an `error` column last (null where the row ran), so CSV and
    // JSON rows share one layout; exit 3 says a row is missing its result.
    let layout: Vec<String> = records
        .iter()
        .zip(&out)
        .find(|(_, r)| r.is_ok())
        .map(|(rec, _)| rec.keys().cloned().collect())
        .unwrap_or_default();
    let records = records
        .into_iter()
        .map(|rec| {
            let mut r = serde_json::Map::new();
            for k in &layout {
                r.insert(k.clone(), rec.get(k).cloned().unwrap_or_default());
            }
            r.insert(
                "error".into(),
                rec.get("error").cloned().unwrap_or_default(),
            );
            r
        })
        .collect();
    let mut o = Outcome::ok(print_records(&Rows { records }, g.format, true));
    o.code = crate::cli::EXIT_PARTIAL;
    let what = if params.solve.is_some() {
        "cannot reach the target hit rate"
    } else {
        "could not run at this cache size"
    };
    o.stderr = format!(
        "{warn}warning: {failed} of {n} policies {what}; their rows carry the reason under `error`\n"
    );
    Ok(o)
}

fn trace_gen(a: TraceGenArgs, g: &Globals) -> Result<Outcome> {
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
    let spec = a.source.spec();
    // Text, CSV, libCacheSim CSV and oracleGeneral stream (memory bounded by the distinct rows);
    // the other formats, and a trace of several tables for a one-table format, are loaded.
    let (src, _) = spec.stream_source()?;
    if let Some(w) = stream::write_trace(&src, spec.batch, fmt, &a.out)? {
        return Ok(Outcome::ok(format!(
            "wrote {} ({} accesses, {} unique rows, {} batches, {}) from {}\n",
            a.out.display(),
            w.accesses,
            w.rows,
            w.batches,
            fmt.name(),
            src.describe()
        )));
    }
    let bar = Progress::accesses("trace-gen", !g.quiet);
    let (trace, _) = scoped(&bar, || spec.load())?;
    bar.set_message(format!("writing {}", a.out.display()));
    let written = writer::write(&trace, fmt, &a.out);
    bar.finish();
    written?;
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
    let source = a.source.spec();
    let bar = Progress::accesses("mrc", !g.quiet);
    // One streaming pass (memory bounded by the distinct rows, not the accesses).
    let (src, _) = source.stream_source()?;
    let h = scoped(&bar, || mrc::stack_distances_stream(&src))?;
    bar.finish();
    let (unique, accesses) = (h.unique_rows(), h.accesses);
    let row_bytes = perfcast::embcache::pipeline::row_bytes_checked("row_bytes", a.row_bytes)?;
    let table_rows = source.declared_table_rows()?;
    let basis = SizeBasis {
        unique,
        table_rows,
        row_bytes,
        cache_of: a.cache_of,
    };
    let sizes: Vec<usize> = if a.sizes.is_empty() {
        mrc::log_sizes(unique, 16)
    } else {
        a.sizes
            .iter()
            .map(|s| CacheSize::parse(s)?.resolve(&basis))
            .collect::<Result<_>>()?
    };
    let curve = h.curve(&sizes);
    let mut rows = Rows::default();
    for (c, mr) in &curve {
        let mut r = serde_json::Map::new();
        r.insert("cache_rows".into(), (*c as u64).into());
        r.insert("cache_bytes".into(), (*c as f64 * row_bytes).into());
        r.insert(
            "cache_fraction_of_table".into(),
            table_rows.map(|t| *c as f64 / t as f64).into(),
        );
        r.insert(
            "cache_fraction_of_unique".into(),
            (*c as f64 / unique as f64).into(),
        );
        r.insert("miss_ratio".into(), (*mr).into());
        r.insert("hit_rate".into(), (1.0 - mr).into());
        r.insert("misses".into(), h.misses(*c).into());
        r.insert("accesses".into(), accesses.into());
        r.insert("unique_ids".into(), (unique as u64).into());
        rows.records.push(r);
    }
    if let Some(dir) = &a.out {
        perfcast::report::ensure_dir(dir)?;
        write_atomic(&dir.join("mrc.csv"), rows.to_csv().as_bytes())?;
        LinePlot {
            stem: "mrc".into(),
            title: format!("LRU miss-ratio curve: {}", src.describe()),
            x_label: "cache size (rows)".into(),
            y_label: "miss ratio (fraction of accesses)".into(),
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
