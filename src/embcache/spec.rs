//! The front door of embcache: [`Spec`] (the `perfcast embcache` flags as serde keys) →
//! [`Spec::resolve`] → [`Params`] → [`evaluate`] → one [`Row`] per policy. The scenario study
//! evaluates its points with the same per-point functions ([`sim_row`], [`analytic_row`]) on a
//! trace it shares between points.
//!
//! ```
//! use perfcast::embcache::{evaluate, Method, Spec};
//! use perfcast::Catalog;
//!
//! // LRU and static top-k with 2% of a Zipf(1.05) table cached: simulated on a seeded trace.
//! let spec = Spec {
//!     zipf: Some(1.05),
//!     rows: Some(10_000),
//!     accesses: Some(100_000),
//!     policy: vec!["lru".into(), "static-topk".into()],
//!     cache: "2%".parse()?,
//!     ..Spec::default()
//! };
//! let rows = evaluate(&spec.resolve(&Catalog::embedded()?)?, Method::Sim, 42)?;
//! assert_eq!(rows.len(), 2);
//! // Keeping the hottest rows beats recency on an independent-reference trace.
//! assert!(rows[1].metrics.hit_rate > rows[0].metrics.hit_rate);
//! # Ok::<(), perfcast::Error>(())
//! ```

use super::pipeline::{IterTimes, Pipeline, SyncSpec};
use super::policy::PolicyKind;
use super::stream::{self, Source};
use super::trace::{lcs_csv, profile, zipf::ZipfSpec, DenseTrace, ReadOptions, TraceFormat};
use super::{analytic, simulate, with_min_cache_rows, CacheOf, CacheSize, Metrics, SizeBasis};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How hit rates are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Simulate the trace.
    Sim,
    /// Closed form (LRU: Che's approximation; static top-k: the top-k mass) of a Zipf source.
    Analytic,
}

impl Method {
    /// The method's name (`sim`, `analytic`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Sim => "sim",
            Method::Analytic => "analytic",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sim" => Ok(Method::Sim),
            "analytic" => Ok(Method::Analytic),
            other => Err(Error::range("--method", other, "sim or analytic")),
        }
    }
}

impl std::str::FromStr for CacheSize {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        CacheSize::parse(s)
    }
}

/// A cache size as a scenario writes it: rows or `"P%"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CacheSpec {
    /// Rows.
    Rows(u64),
    /// `"N"` or `"P%"`.
    Text(String),
}

impl CacheSpec {
    /// The parsed size.
    ///
    /// # Errors
    /// See [`CacheSize::parse`].
    pub fn resolve(&self) -> Result<CacheSize> {
        match self {
            CacheSpec::Rows(n) => CacheSize::parse(&n.to_string()),
            CacheSpec::Text(s) => CacheSize::parse(s),
        }
    }
}

impl TryFrom<CacheSpec> for CacheSize {
    type Error = Error;

    fn try_from(c: CacheSpec) -> Result<Self> {
        c.resolve()
    }
}

/// Where a trace comes from: a file, or a seeded Zipf generator (the source flags shared by
/// `embcache`, `embcache trace-gen` and `embcache mrc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Trace file (text, csv `batch,table,id`, oracleGeneral, Criteo TSV, MovieLens ratings or u.data, libCacheSim CSV).
    #[serde(default)]
    pub trace: Option<PathBuf>,
    /// Trace format (default: from the extension).
    #[serde(default)]
    pub trace_format: Option<String>,
    /// Generate a Zipf(S) trace instead of reading one.
    #[serde(default)]
    pub zipf: Option<f64>,
    /// Rows per table of the generated trace.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Tables of the generated trace (each with `rows` rows).
    #[serde(default = "d_tables")]
    pub tables: u32,
    /// Table sizes from a published profile instead of rows/tables.
    #[serde(default)]
    pub profile: Option<String>,
    /// Multiplier of the profile's table sizes, (0, 1].
    #[serde(default = "d_scale")]
    pub scale: f64,
    /// Accesses to generate.
    #[serde(default)]
    pub accesses: Option<u64>,
    /// Generator seed.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Samples per batch.
    #[serde(default = "d_batch")]
    pub batch: u64,
    /// Rows of the embedding tables (all tables together), when a trace file does not say:
    /// what `--cache P%` is a fraction of (default: the profile's or the generator's tables).
    #[serde(default)]
    pub table_rows: Option<u64>,
    /// MovieLens: `time` (default) or `file` order.
    #[serde(default)]
    pub order: Option<String>,
    /// MovieLens: `both` (default), `items` or `users` lookups per rating.
    #[serde(default)]
    pub lookups: Option<String>,
    /// libCacheSim CSV: its column options, e.g. `"obj-id-col=5, obj-size-col=4"`.
    #[serde(default)]
    pub csv_params: Option<String>,
}

/// Most embedding tables a generated trace may have (Criteo's datasets have 26; the tables'
/// row counts are held in memory, one `u64` each, before anything is generated).
pub const MAX_TABLES: u32 = 65_536;

fn d_tables() -> u32 {
    1
}
fn d_scale() -> f64 {
    1.0
}
fn d_seed() -> u64 {
    42
}
fn d_batch() -> u64 {
    1
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec {
            trace: None,
            trace_format: None,
            zipf: None,
            rows: None,
            tables: d_tables(),
            profile: None,
            scale: d_scale(),
            accesses: None,
            seed: d_seed(),
            batch: d_batch(),
            table_rows: None,
            order: None,
            lookups: None,
            csv_params: None,
        }
    }
}

impl SourceSpec {
    /// Rows of the embedding tables as the source declares them: `table_rows`, else the
    /// profile's tables (× `scale`), else the generator's `rows` × `tables`; `None` for a trace
    /// file with none of these.
    ///
    /// # Errors
    /// An unknown profile, a scale outside (0, 1], `table_rows` = 0.
    pub fn declared_table_rows(&self) -> Result<Option<u64>> {
        if let Some(t) = self.table_rows {
            if t == 0 {
                return Err(Error::range("--table-rows", 0, "≥ 1 row"));
            }
            return Ok(Some(t));
        }
        if let Some(p) = &self.profile {
            return Ok(Some(profile::tables(p, self.scale)?.iter().sum()));
        }
        if self.zipf.is_some() {
            if let Some(n) = self.rows {
                return Ok(Some(n.saturating_mul(u64::from(self.tables))));
            }
        }
        Ok(None)
    }

    /// The generator spec, when `zipf` is given.
    ///
    /// # Errors
    /// Both or neither of rows and profile, zero tables, missing accesses, invalid generator
    /// parameters.
    pub fn zipf_spec(&self) -> Result<Option<ZipfSpec>> {
        let Some(s) = self.zipf else { return Ok(None) };
        let tables = match (&self.profile, self.rows) {
            (Some(p), None) => profile::tables(p, self.scale)?,
            (None, Some(n)) => {
                if self.tables == 0 || self.tables > MAX_TABLES {
                    return Err(Error::range(
                        "--tables",
                        self.tables,
                        format!("an integer in [1, {MAX_TABLES}]"),
                    ));
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

    /// The format options (`order`, `lookups`, `csv_params`), parsed.
    ///
    /// # Errors
    /// An unknown order or lookups name; malformed CSV parameters.
    pub fn read_options(&self) -> Result<ReadOptions> {
        Ok(ReadOptions {
            order: self.order.as_deref().map(str::parse).transpose()?,
            lookups: self.lookups.as_deref().map(str::parse).transpose()?,
            csv: self
                .csv_params
                .as_deref()
                .map(lcs_csv::Layout::parse)
                .transpose()?,
        })
    }

    /// The trace as a re-readable [`Source`] for the streaming simulator, with the generator spec
    /// when generated: the checks of [`SourceSpec::load`], in its order, without reading the
    /// trace (a file is opened once to report a missing one first).
    ///
    /// # Errors
    /// As [`SourceSpec::load`], but for errors inside the file.
    pub fn stream_source(&self) -> Result<(Source, Option<ZipfSpec>)> {
        if self.batch == 0 {
            return Err(Error::range("--batch", 0, "≥ 1 sample"));
        }
        let opts = self.read_options()?;
        if let Some(path) = &self.trace {
            let fmt = match &self.trace_format {
                Some(f) => TraceFormat::parse(f)?,
                None => TraceFormat::detect(path).ok_or_else(|| {
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
            opts.check(fmt)?;
            std::fs::File::open(path).map_err(|e| Error::io(path.clone(), e))?;
            let src = Source::File {
                path: path.clone(),
                format: fmt,
                opts,
            };
            return Ok((src, None));
        }
        if opts != ReadOptions::default() {
            return Err(Error::range(
                "--order/--lookups/--csv-params",
                "given without --trace",
                "options of a trace file",
            ));
        }
        match self.zipf_spec()? {
            Some(z) => Ok((Source::Zipf(z.clone()), Some(z))),
            None => Err(Error::range(
                "--trace",
                "missing",
                "given: --trace FILE or --zipf S --rows N --accesses M",
            )),
        }
    }

    /// Loads or generates the trace; returns it with the generator spec when generated.
    ///
    /// # Errors
    /// Missing source, unreadable or malformed files, invalid generator parameters, format
    /// options for a format they do not apply to.
    pub fn load(&self) -> Result<(DenseTrace, Option<ZipfSpec>)> {
        // The same checks, in the same order, as the streaming path; then the whole trace.
        let (src, zipf) = self.stream_source()?;
        let trace = match &src {
            Source::File { path, format, opts } => {
                DenseTrace::load_with(path, *format, self.batch, opts)?
            }
            Source::Zipf(z) => {
                DenseTrace::from_stream(z.stream(), self.batch, false, &z.describe())?
            }
            Source::Rows(_) => unreachable!("stream_source gives a file or the generator"),
        };
        Ok((trace, zipf))
    }
}

fn d_policy() -> Vec<String> {
    vec!["lru".into()]
}
fn d_cache() -> CacheSize {
    CacheSize::Percent(10.0)
}
fn d_solve_tolerance() -> f64 {
    0.01
}
fn d_window() -> usize {
    4
}
fn d_one() -> f64 {
    1.0
}
fn d_row_bytes() -> f64 {
    512.0
}
fn d_fetch_bw() -> f64 {
    1.25e9
}
fn d_fetch_latency() -> f64 {
    5e-5
}
fn d_trainers() -> i64 {
    1
}
fn d_param_bytes() -> f64 {
    4.0
}
fn d_sync_latency() -> f64 {
    10.0
}
fn d_sync_algo() -> String {
    "ring".into()
}

/// One embedding-cache what-if, keyed like the `perfcast embcache` flags (`--fetch-bw` =
/// `fetch_bw`); defaults are the CLI's. `method` is the method argument of [`evaluate`] (a
/// scenario study may list several; [`Spec::resolve`] does not read it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Trace file.
    #[serde(default)]
    pub trace: Option<PathBuf>,
    /// Trace format: text, csv, oracle-general, criteo, movielens, lcs-csv, parquet (default: from the
    /// name and first line).
    #[serde(default)]
    pub trace_format: Option<String>,
    /// Generate a Zipf(S) trace instead of reading one.
    #[serde(default)]
    pub zipf: Option<f64>,
    /// Rows per table of the generated trace.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Tables of the generated trace (each with `rows` rows).
    #[serde(default = "d_tables")]
    pub tables: u32,
    /// Table sizes from a published profile: criteo-kaggle, criteo-terabyte.
    #[serde(default)]
    pub profile: Option<String>,
    /// Multiplier of the profile's table sizes, (0, 1].
    #[serde(default = "d_scale")]
    pub scale: f64,
    /// Accesses to generate.
    #[serde(default)]
    pub accesses: Option<u64>,
    /// Generator seed.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Samples per batch.
    #[serde(default = "d_batch")]
    pub batch: u64,
    /// Policies: lru, fifo, lfu, static-topk, belady, lookahead (one, a list, or comma
    /// separated as the flag).
    #[serde(
        default = "d_policy",
        deserialize_with = "crate::scenario::de_one_or_many"
    )]
    pub policy: Vec<String>,
    /// Rows of the embedding tables (all tables), for a trace file that does not say.
    #[serde(default)]
    pub table_rows: Option<u64>,
    /// MovieLens: `time` (default) or `file` order.
    #[serde(default)]
    pub order: Option<String>,
    /// MovieLens: `both` (default), `items` or `users` lookups per rating.
    #[serde(default)]
    pub lookups: Option<String>,
    /// libCacheSim CSV: its column options, e.g. `"obj-id-col=5, obj-size-col=4"`.
    #[serde(default)]
    pub csv_params: Option<String>,
    /// Cache size: rows (`N`), percent (`"P%"`, of what `cache_of` names) or bytes (`"12GiB"`,
    /// rows of `row_bytes`).
    #[serde(default = "d_cache", deserialize_with = "de_cache")]
    pub cache: CacheSize,
    /// What a percentage cache size is a fraction of: `table` (default) or `unique`.
    #[serde(default)]
    pub cache_of: CacheOf,
    /// Inverse what-if: instead of evaluating `cache`, find per policy the smallest cache whose
    /// hit rate per access reaches this target, in (0, 1] (see [`super::solve`]).
    #[serde(default)]
    pub solve_hit_rate: Option<f64>,
    /// Bisection tolerance of the solve, a fraction of the size found, [0, 1) (0 = one row).
    #[serde(default = "d_solve_tolerance")]
    pub solve_tolerance: f64,
    /// Lookahead window, batches.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Static top-k: fraction of the trace (from its start) that picks the hot rows.
    #[serde(default = "d_one")]
    pub profile_fraction: f64,
    /// Pipeline model: dense compute per iteration, s (adds iteration times and speedup).
    #[serde(default)]
    pub compute_s: Option<f64>,
    /// Bytes per embedding row (cache sizes in bytes, `cache_bytes`, the pipeline model).
    #[serde(default = "d_row_bytes")]
    pub row_bytes: f64,
    /// Pipeline model: fetch bandwidth, bytes/s (the older scenario key `fetch_bw_bytes_per_s`
    /// is accepted).
    #[serde(default = "d_fetch_bw", alias = "fetch_bw_bytes_per_s")]
    pub fetch_bw: f64,
    /// Pipeline model: latency per transfer, s.
    #[serde(default = "d_fetch_latency")]
    pub fetch_latency_s: f64,
    /// Pipeline model: data-parallel trainers sharing the embedding store's fetch bandwidth.
    #[serde(default = "d_trainers")]
    pub trainers: i64,
    /// Pipeline model: dense parameters all-reduced across the trainers every iteration.
    #[serde(default)]
    pub dense_params: f64,
    /// Pipeline model: bytes per dense parameter in the all-reduce.
    #[serde(default = "d_param_bytes")]
    pub dense_param_bytes: f64,
    /// Pipeline model: network bandwidth of a trainer's node for the all-reduce, Gb/s.
    #[serde(default)]
    pub sync_gbps: Option<f64>,
    /// Pipeline model: per-step all-reduce latency, µs.
    #[serde(default = "d_sync_latency")]
    pub sync_latency_us: f64,
    /// Pipeline model: all-reduce algorithm (ring, tree, hierarchical).
    #[serde(default = "d_sync_algo")]
    pub sync_algo: String,
    /// `sim` (simulate the trace) and/or `analytic` (closed form; lru and static-topk of a Zipf
    /// source); empty = sim. The older scenario key `methods` is accepted.
    #[serde(
        default,
        alias = "methods",
        deserialize_with = "crate::scenario::de_one_or_many"
    )]
    pub method: Vec<String>,
}

fn de_cache<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<CacheSize, D::Error> {
    CacheSpec::deserialize(d)?
        .resolve()
        .map_err(serde::de::Error::custom)
}

impl Default for Spec {
    fn default() -> Self {
        let s = SourceSpec::default();
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
            policy: d_policy(),
            cache: d_cache(),
            cache_of: CacheOf::default(),
            solve_hit_rate: None,
            solve_tolerance: d_solve_tolerance(),
            window: d_window(),
            profile_fraction: d_one(),
            compute_s: None,
            row_bytes: d_row_bytes(),
            fetch_bw: d_fetch_bw(),
            fetch_latency_s: d_fetch_latency(),
            trainers: d_trainers(),
            dense_params: 0.0,
            dense_param_bytes: d_param_bytes(),
            sync_gbps: None,
            sync_latency_us: d_sync_latency(),
            sync_algo: d_sync_algo(),
            method: Vec::new(),
        }
    }
}

impl Spec {
    /// The trace-source keys.
    pub fn source(&self) -> SourceSpec {
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

    /// The multi-trainer keys.
    pub fn sync(&self) -> SyncSpec {
        SyncSpec {
            trainers: self.trainers,
            dense_params: self.dense_params,
            dense_param_bytes: self.dense_param_bytes,
            sync_gbps: self.sync_gbps,
            sync_latency_us: self.sync_latency_us,
            sync_algo: self.sync_algo.clone(),
        }
    }

    /// Refuses a policy or solve knob that nothing would use: a `window` other than the default
    /// without a lookahead policy, a `profile_fraction` other than 1 without static top-k, a
    /// `solve_tolerance` other than the default without `solve_hit_rate`, a `scale` other than 1
    /// without a `profile`. (Their ranges are checked where they are used.)
    fn refuse_unused_knobs(&self, kinds: &[PolicyKind]) -> Result<()> {
        let unused = |flag: &str, value: String, allowed: &str| {
            Err(Error::range(
                flag,
                value,
                format!("given only {allowed} (it would be ignored)"),
            ))
        };
        let show = crate::check::show;
        if self.window != d_window()
            && !kinds
                .iter()
                .any(|k| matches!(k, PolicyKind::Lookahead { .. }))
        {
            return unused(
                "--window",
                self.window.to_string(),
                "with --policy lookahead",
            );
        }
        if self.profile_fraction != d_one()
            && !kinds
                .iter()
                .any(|k| matches!(k, PolicyKind::StaticTopK { .. }))
        {
            return unused(
                "--profile-fraction",
                show(self.profile_fraction),
                "with --policy static-topk",
            );
        }
        if self.solve_tolerance != d_solve_tolerance() && self.solve_hit_rate.is_none() {
            return unused(
                "--solve-tolerance",
                show(self.solve_tolerance),
                "with --solve-hit-rate",
            );
        }
        if self.scale != d_scale() && self.profile.is_none() {
            return unused("--scale", show(self.scale), "with --profile");
        }
        Ok(())
    }

    /// Refuses a pipeline-model term given without `compute_s` (the pipeline is off, so it would
    /// be ignored): a `fetch_bw`, `fetch_latency_s`, `dense_param_bytes`, `sync_latency_us` or
    /// `sync_algo` other than its default, or any `sync_gbps`.
    fn refuse_pipeline_terms(&self) -> Result<()> {
        let off = |flag: &str, value: String| {
            Err(Error::range(
                flag,
                value,
                "given only with --compute-s (a pipeline-model term; without the pipeline model it would be ignored)",
            ))
        };
        let show = crate::check::show;
        if self.fetch_bw != d_fetch_bw() {
            return off("--fetch-bw", show(self.fetch_bw));
        }
        if self.fetch_latency_s != d_fetch_latency() {
            return off("--fetch-latency-s", show(self.fetch_latency_s));
        }
        if self.dense_param_bytes != d_param_bytes() {
            return off("--dense-param-bytes", show(self.dense_param_bytes));
        }
        if let Some(g) = self.sync_gbps {
            return off("--sync-gbps", show(g));
        }
        if self.sync_latency_us != d_sync_latency() {
            return off("--sync-latency-us", show(self.sync_latency_us));
        }
        if self.sync_algo != d_sync_algo() {
            return off("--sync-algo", self.sync_algo.clone());
        }
        Ok(())
    }

    /// Validates policies and the pipeline model. The source is checked by [`evaluate`], which
    /// knows whether it must be a trace (`sim`) or a Zipf generator (`analytic`). The catalog is
    /// not consulted (table profiles are built in); it is taken for the common front-door shape.
    ///
    /// # Errors
    /// An unknown policy or bad policy setting; an out-of-range pipeline number.
    pub fn resolve(&self, cat: &Catalog) -> Result<Params> {
        let _ = cat;
        if let Some(c) = self.compute_s {
            // The pipeline's own checks name the scenario keys; a CLI user gave the flag.
            crate::check::seconds("--compute-s", crate::check::positive("--compute-s", c)?)?;
        }
        let kinds = self
            .policy
            .iter()
            .map(|p| PolicyKind::parse(p, self.window, self.profile_fraction))
            .collect::<Result<Vec<_>>>()?;
        let (trainers, sync_s) = self.sync().resolve()?;
        if self.compute_s.is_none() && (trainers > 1 || self.dense_params > 0.0) {
            return Err(Error::range(
                "--compute-s",
                "missing",
                "given with --trainers > 1 or --dense-params (they are pipeline-model terms)",
            ));
        }
        let pipe = self
            .compute_s
            .map(|c| {
                Pipeline::new(c, self.row_bytes, self.fetch_bw, self.fetch_latency_s)?
                    .with_sync(trainers, sync_s)
            })
            .transpose()?;
        let row_bytes = super::pipeline::row_bytes_checked("row_bytes", self.row_bytes)?;
        if self.compute_s.is_none() {
            self.refuse_pipeline_terms()?;
        }
        self.refuse_unused_knobs(&kinds)?;
        let source = self.source();
        source.declared_table_rows()?;
        source.read_options()?;
        let solve = self
            .solve_hit_rate
            .map(|t| Solve::new(t, self.solve_tolerance))
            .transpose()?;
        Ok(Params {
            source,
            kinds,
            cache: self.cache,
            cache_of: self.cache_of,
            row_bytes,
            pipe,
            solve,
        })
    }
}

/// A validated embcache what-if.
#[derive(Debug, Clone)]
pub struct Params {
    /// Where the trace comes from.
    pub source: SourceSpec,
    /// Policies, in output order.
    pub kinds: Vec<PolicyKind>,
    /// Cache size.
    pub cache: CacheSize,
    /// What a percentage cache size is a fraction of.
    pub cache_of: CacheOf,
    /// Bytes per embedding row, > 0.
    pub row_bytes: f64,
    /// Pipeline model (iteration times), if asked for.
    pub pipe: Option<Pipeline>,
    /// The inverse what-if, if asked for ([`super::solve::solve_each`]).
    pub solve: Option<Solve>,
}

/// What to solve for (the inverse what-if of [`super::solve`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Solve {
    /// Target hit rate per access, in (0, 1].
    pub target_hit_rate: f64,
    /// Bisection stops when the bracket is at most `max(1, ⌊tolerance · upper⌋)` rows wide;
    /// in [0, 1). Exact LRU ignores it.
    pub tolerance: f64,
}

impl Solve {
    /// Validates a target and tolerance.
    ///
    /// # Errors
    /// A target outside (0, 1], a tolerance outside [0, 1).
    pub fn new(target_hit_rate: f64, tolerance: f64) -> Result<Self> {
        if !(target_hit_rate > 0.0 && target_hit_rate <= 1.0) {
            return Err(Error::range(
                "--solve-hit-rate",
                crate::check::show(target_hit_rate),
                "a hit rate in (0, 1]",
            ));
        }
        if !(0.0..1.0).contains(&tolerance) {
            return Err(Error::range(
                "--solve-tolerance",
                crate::check::show(tolerance),
                "a fraction of the cache size in [0, 1) (0 = to one row)",
            ));
        }
        Ok(Solve {
            target_hit_rate,
            tolerance,
        })
    }
}

/// The sizes a row states next to its rows: bytes per row and the declared table rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    /// Bytes per embedding row.
    pub row_bytes: f64,
    /// Rows of the embedding tables, when declared.
    pub table_rows: Option<u64>,
}

/// One policy's result: hit-rate metrics and, with a pipeline model, iteration times.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Hit-rate metrics.
    pub metrics: Metrics,
    /// Iteration times of the pipeline model (simulation with a pipeline only).
    pub times: Option<IterTimes>,
}

impl Row {
    /// The row as `perfcast embcache` prints it: the metrics, then `iter_no_cache_s`, `iter_s`
    /// and `speedup` when a pipeline model was given, and `trainers` and `dense_sync_s` when it
    /// has more than one trainer or a dense all-reduce.
    pub fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = match serde_json::to_value(&self.metrics) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        if let Some(t) = &self.times {
            r.insert("iter_no_cache_s".into(), t.no_cache_s.into());
            r.insert("iter_s".into(), t.iter_s.into());
            r.insert("speedup".into(), t.speedup.into());
            if t.multi_trainer() {
                r.insert("trainers".into(), t.trainers.into());
                r.insert("dense_sync_s".into(), t.dense_sync_s.into());
            }
        }
        r
    }
}

/// Simulates one policy on a loaded trace: metrics (with the generator `seed`, when generated,
/// the smallest cache the policy needs, and the sizes in bytes and of the table) and, with
/// `pipe`, iteration times.
///
/// # Errors
/// A cache smaller than the policy can run with (lookahead below its two-batch working set).
pub fn sim_row(
    trace: &DenseTrace,
    kind: PolicyKind,
    rows: usize,
    seed: Option<u64>,
    pipe: Option<&Pipeline>,
    sizes: Sizes,
) -> Result<Row> {
    let (mut m, bc) = simulate(trace, kind, rows)?;
    finish_metrics(&mut m, seed, sizes, &trace.warnings);
    with_min_cache_rows(&mut m, trace);
    let times = pipe.map(|p| p.times(&bc, matches!(kind, PolicyKind::Lookahead { .. })));
    Ok(Row { metrics: m, times })
}

/// [`sim_row`] without holding the trace: the streaming simulator ([`stream::simulate_memo`])
/// for every policy (lookahead's `min_cache_rows` from a second, unbounded pass, kept in `memo`
/// with the two-batch working set for the next row of the same `src` and `batch`); the same row
/// but for `sim_s`.
///
/// # Errors
/// A policy that does not stream; reader errors; an empty trace.
#[allow(clippy::too_many_arguments)]
pub fn stream_row(
    src: &Source,
    batch: u64,
    kind: PolicyKind,
    rows: usize,
    seed: Option<u64>,
    pipe: Option<&Pipeline>,
    sizes: Sizes,
    memo: &stream::Memo,
) -> Result<Row> {
    let (mut m, pass) = stream::simulate_memo(src, batch, kind, rows, pipe, memo)?;
    finish_metrics(&mut m, seed, sizes, &pass.warnings);
    let times = pipe.map(|p| pass.tally.times(p));
    Ok(Row { metrics: m, times })
}

/// The seed, the sizes and the notes (table smaller than the trace, reader warnings) of a
/// simulated row.
fn finish_metrics(m: &mut Metrics, seed: Option<u64>, sizes: Sizes, warnings: &[String]) {
    m.seed = seed;
    m.with_sizes(sizes.row_bytes, sizes.table_rows);
    if let Some(t) = sizes.table_rows.filter(|&t| t < m.unique_ids) {
        let n = format!(
            "the trace touches {} distinct rows, more than the {t} declared table rows",
            m.unique_ids
        );
        m.note = if m.note.is_empty() {
            n
        } else {
            format!("{}; {n}", m.note)
        };
    }
    for w in warnings {
        m.note = if m.note.is_empty() {
            w.clone()
        } else {
            format!("{}; {w}", m.note)
        };
    }
}

/// What the accesses and unique rows of a closed-form row refer to.
#[derive(Debug, Clone, Copy)]
pub enum Basis {
    /// The generator's tables and access count (the CLI without a trace): unique rows = table
    /// rows, and the row notes the steady-state assumption.
    Tables {
        /// Accesses of the generator.
        accesses: u64,
    },
    /// A generated trace (the study): its accesses and the unique rows it touched.
    Trace {
        /// Accesses of the trace.
        accesses: u64,
        /// Distinct rows of the trace.
        unique: u64,
    },
}

/// The closed-form hit rate of `kind` (LRU or static top-k) for a Zipf(`s`) source over
/// `tables` with a cache of `rows` rows; `None` for a policy without a closed form.
///
/// # Errors
/// Out-of-range closed-form inputs.
pub fn analytic_row(
    kind: PolicyKind,
    tables: &[u64],
    s: f64,
    rows: usize,
    basis: Basis,
    row_bytes: f64,
) -> Result<Option<Row>> {
    let hit = match kind {
        PolicyKind::Lru => analytic::che_lru_hit_rate(tables, s, rows as u64)?.0,
        PolicyKind::StaticTopK { .. } => analytic::topk_hit_rate(tables, s, rows as u64)?,
        _ => return Ok(None),
    };
    let (accesses, unique, note) = match basis {
        Basis::Tables { accesses } => {
            let total: u64 = tables.iter().sum();
            let note = if rows as u64 > total {
                format!("cache of {rows} rows exceeds the {total} rows of the tables")
            } else {
                "steady state of the independent reference model (unique_ids = table rows)".into()
            };
            (accesses, total, note)
        }
        Basis::Trace { accesses, unique } => (accesses, unique, String::new()),
    };
    let hits = (hit * accesses as f64).round() as u64;
    let mut metrics = Metrics {
        policy: kind.name().into(),
        method: "analytic",
        window: None,
        cache_rows: rows as u64,
        cache_bytes: None,
        cache_fraction_of_table: None,
        cache_fraction_of_unique: rows as f64 / unique as f64,
        cache_exceeds_unique: rows as u64 > unique,
        accesses,
        hits,
        misses: accesses - hits.min(accesses),
        hit_rate: hit,
        table_rows: None,
        unique_ids: unique,
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
        note,
    };
    metrics.with_sizes(row_bytes, Some(tables.iter().sum()));
    Ok(Some(Row {
        metrics,
        times: None,
    }))
}

/// A policy that could not be evaluated at these settings (lookahead with a cache below its
/// two-batch working set): what was asked, and why it cannot run.
#[derive(Debug)]
pub struct Failed {
    /// Policy name.
    pub policy: String,
    /// `sim` or `analytic`.
    pub method: Method,
    /// Lookahead window, batches (lookahead only).
    pub window: Option<usize>,
    /// Capacity asked for, rows.
    pub cache_rows: u64,
    /// Capacity asked for, bytes.
    pub cache_bytes: f64,
    /// Distinct rows in the trace.
    pub unique_ids: u64,
    /// Accesses (lookups) in the trace.
    pub accesses: u64,
    /// Why the policy cannot run.
    pub error: Error,
}

impl Failed {
    /// Policy `k` at `rows` rows of `row_bytes` each could not run on a trace of
    /// `(unique ids, accesses)`, because of `error`.
    pub fn new(
        k: PolicyKind,
        method: Method,
        rows: usize,
        row_bytes: f64,
        (unique_ids, accesses): (u64, u64),
        error: Error,
    ) -> Self {
        Failed {
            policy: k.name().into(),
            method,
            window: match k {
                PolicyKind::Lookahead { window } => Some(window),
                _ => None,
            },
            cache_rows: rows as u64,
            cache_bytes: rows as f64 * row_bytes,
            unique_ids,
            accesses,
            error,
        }
    }

    /// The row as `perfcast embcache` prints it: what was asked, and the one-line reason under
    /// `error` (no hit-rate or timing fields).
    pub fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = serde_json::Map::new();
        r.insert("policy".into(), self.policy.clone().into());
        r.insert("method".into(), self.method.name().into());
        r.insert("window".into(), self.window.into());
        r.insert("cache_rows".into(), self.cache_rows.into());
        r.insert("cache_bytes".into(), self.cache_bytes.into());
        r.insert(
            "cache_fraction_of_unique".into(),
            (self.cache_rows as f64 / self.unique_ids.max(1) as f64).into(),
        );
        r.insert("accesses".into(), self.accesses.into());
        r.insert("unique_ids".into(), self.unique_ids.into());
        r.insert("error".into(), self.error.to_string().into());
        r
    }
}

/// Evaluates every policy of `p` with `method`, all or nothing: the first policy that cannot run
/// (see [`evaluate_each`]) is the error. `seed` seeds the Zipf generator (a trace file ignores it).
///
/// # Errors
/// As [`evaluate_each`], and the first [`Failed`] policy's error.
pub fn evaluate(p: &Params, method: Method, seed: u64) -> Result<Vec<Row>> {
    evaluate_each(p, method, seed)?
        .into_iter()
        .map(|r| r.map_err(|f| f.error))
        .collect()
}

/// Evaluates every policy of `p` with `method`, each on its own: a policy that cannot run at this
/// cache size (lookahead below its two-batch working set) is a [`Failed`] entry in its place and
/// the others still run. `seed` seeds the Zipf generator (a trace file ignores it).
///
/// # Errors
/// A missing or unreadable source (`analytic` needs a Zipf source), a cache that rounds to 0 rows,
/// a policy without a closed form under `analytic`.
pub fn evaluate_each(
    p: &Params,
    method: Method,
    seed: u64,
) -> Result<Vec<std::result::Result<Row, Failed>>> {
    let source = SourceSpec {
        seed,
        ..p.source.clone()
    };
    let mut out = Vec::with_capacity(p.kinds.len());
    match method {
        Method::Sim if p.kinds.iter().all(|&k| stream::streams(k)) => {
            let (src, z) = source.stream_source()?;
            let table_rows = source.declared_table_rows()?;
            let needs_unique =
                matches!(p.cache, CacheSize::Percent(_)) && p.cache_of == CacheOf::Unique;
            let unique = if needs_unique {
                stream::count(&src)?.1 as usize
            } else {
                0
            };
            let basis = SizeBasis {
                unique,
                table_rows,
                row_bytes: p.row_bytes,
                cache_of: p.cache_of,
            };
            let rows = match p.cache.resolve(&basis) {
                Ok(r) => r,
                Err(e) => {
                    // A trace that cannot be read is the first error, as when it was loaded
                    // before the size was resolved.
                    if !needs_unique {
                        stream::count(&src)?;
                    }
                    return Err(e);
                }
            };
            let sizes = Sizes {
                row_bytes: p.row_bytes,
                table_rows,
            };
            let seed = z.as_ref().map(|z| z.seed);
            let memo = stream::Memo::default();
            for &k in &p.kinds {
                let pipe = p.pipe.as_ref();
                match stream_row(&src, source.batch, k, rows, seed, pipe, sizes, &memo) {
                    Ok(row) => out.push(Ok(row)),
                    // Lookahead below its two-batch working set (the only error a readable
                    // trace gives): its entry, as in memory, with the trace's size.
                    Err(error) if matches!(k, PolicyKind::Lookahead { .. }) => {
                        let (accesses, unique) = stream::count(&src)?;
                        out.push(Err(Failed::new(
                            k,
                            method,
                            rows,
                            p.row_bytes,
                            (unique, accesses),
                            error,
                        )));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Method::Sim => {
            let (trace, z) = source.load()?;
            let table_rows = source.declared_table_rows()?;
            let rows = p.cache.resolve(&SizeBasis {
                unique: trace.n_rows(),
                table_rows,
                row_bytes: p.row_bytes,
                cache_of: p.cache_of,
            })?;
            let sizes = Sizes {
                row_bytes: p.row_bytes,
                table_rows,
            };
            for &k in &p.kinds {
                let seed = z.as_ref().map(|z| z.seed);
                out.push(
                    sim_row(&trace, k, rows, seed, p.pipe.as_ref(), sizes).map_err(|error| {
                        Failed::new(
                            k,
                            method,
                            rows,
                            p.row_bytes,
                            (trace.n_rows() as u64, trace.len() as u64),
                            error,
                        )
                    }),
                );
            }
        }
        Method::Analytic => {
            let z = source.zipf_spec()?.ok_or_else(|| {
                Error::range(
                    "--method analytic",
                    "without --zipf",
                    "a Zipf source: --zipf S --rows N (or --profile) --accesses M",
                )
            })?;
            let total: u64 = z.tables.iter().sum();
            // The closed forms model the tables: their unique rows are the table rows.
            let rows = p.cache.resolve(&SizeBasis {
                unique: usize::try_from(total).unwrap_or(usize::MAX),
                table_rows: Some(total),
                row_bytes: p.row_bytes,
                cache_of: p.cache_of,
            })?;
            for &k in &p.kinds {
                let basis = Basis::Tables {
                    accesses: z.accesses,
                };
                let row = analytic_row(k, &z.tables, z.s, rows, basis, p.row_bytes)?.ok_or_else(
                    || {
                        Error::range(
                            "--policy",
                            k.name(),
                            "lru or static-topk with --method analytic",
                        )
                    },
                )?;
                out.push(Ok(row));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multi-trainer keys are scenario keys of the CLI's names, for the front door and the
    /// study's points alike: 8 trainers all-reducing 1e6 fp32 parameters at 10 Gb/s take
    /// 5.74e-3 s per iteration (see `pipeline::tests::dense_sync_by_hand`; tolerance 1e-12
    /// relative).
    #[test]
    fn multi_trainer_keys_are_scenario_keys() {
        let keys = "trainers = 8\ndense_params = 1e6\nsync_gbps = 10.0\n";
        let spec: Spec = toml::from_str(&format!(
            "zipf = 1.05\nrows = 100\naccesses = 1000\ncompute_s = 1e-3\n{keys}"
        ))
        .unwrap();
        let p = spec.resolve(&Catalog::embedded().unwrap()).unwrap();
        let pipe = p.pipe.unwrap();
        assert_eq!(pipe.trainers, 8);
        assert!((pipe.dense_sync_s - 5.74e-3).abs() < 5.74e-3 * 1e-12);
        let point: Spec = toml::from_str(&format!(
            "profile = 'criteo-kaggle'\npolicy = 'lru'\ncache = '5%'\nmethod = 'analytic'\n{keys}"
        ))
        .unwrap();
        assert_eq!(
            (point.trainers, point.dense_params, point.sync_gbps),
            (8, 1e6, Some(10.0))
        );
        assert_eq!(
            (point.policy, point.method),
            (vec!["lru".to_string()], vec!["analytic".to_string()])
        );
        let old: Spec =
            toml::from_str("methods = ['sim', 'analytic']\npolicy = 'lru,fifo'\n").unwrap();
        assert_eq!(old.method, ["sim", "analytic"]);
        assert_eq!(old.policy, ["lru", "fifo"]);
        let e = toml::from_str::<Spec>("trainerz = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("trainerz"), "{e}");
    }
}
