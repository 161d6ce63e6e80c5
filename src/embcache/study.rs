//! The embcache scenario study: a generated Criteo-like trace, cache sizes × policies, hit rates
//! (simulated and, for LRU and static top-k, closed form) and iteration times.
//!
//! ```toml
//! [[study]]
//! technique = "embcache"
//! profile = "criteo-kaggle"   # table sizes (or `rows` + `tables` for equal tables)
//! scale = 0.01                # multiplies every table's rows
//! zipf = 1.05
//! batch = 128                 # samples per batch (one lookup per table each)
//! batches = 100
//! window = 4                  # lookahead window, batches
//! compute_s = 5e-4            # pipeline model (these are the defaults)
//! row_bytes = 512
//! fetch_bw = 1.25e9
//! fetch_latency_s = 5e-5
//! # trainers = 8            # several trainers share fetch_bw; dense all-reduce among them
//! # dense_params = 2.96e6    # (with sync_gbps; also dense_param_bytes, sync_latency_us, sync_algo)
//! # sync_gbps = 10
//! methods = ["sim", "analytic"]
//! [study.sweep]
//! policy = ["lru", "fifo", "lfu", "static-topk", "belady", "lookahead"]
//! cache = ["2%", "5%", "10%", "25%"]   # rows, "P%" (of the tables' rows) or bytes ("1GiB")
//! ```
//!
//! `cache_of = "unique"` takes percentages of the rows the generated trace touches instead of the
//! tables' rows (the default scenario does, to chart the hit-rate curve across the trace).

use super::pipeline::{Pipeline, SyncSpec};
use super::policy::PolicyKind;
pub use super::spec::CacheSpec;
use super::spec::{analytic_row, sim_row, Basis, Row, Sizes};
use super::trace::{profile, zipf::ZipfSpec, DenseTrace};
use super::{CacheOf, CacheSize, SizeBasis};
use crate::error::{Error, Result};
use crate::report::{LinePlot, Rows, Series};
use crate::scenario::{RunContext, Study, StudyReport, StudySpec};
use crate::sweep::{par_map, Progress};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

fn d_scale() -> f64 {
    0.01
}
fn d_zipf() -> f64 {
    1.05
}
fn d_batch() -> u64 {
    128
}
fn d_batches() -> u64 {
    100
}
fn d_window() -> usize {
    4
}
fn d_one() -> f64 {
    1.0
}
fn d_compute() -> f64 {
    5e-4
}
fn d_row_bytes() -> f64 {
    512.0
}
fn d_bw() -> f64 {
    1.25e9
}
fn d_lat() -> f64 {
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

/// One scenario point.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointSpec {
    /// Table-size profile (`criteo-kaggle`, `criteo-terabyte`); or give `rows` and `tables`.
    pub profile: Option<String>,
    /// Multiplier of the profile's rows, (0, 1].
    #[serde(default = "d_scale")]
    pub scale: f64,
    /// Rows per table (without a profile).
    pub rows: Option<u64>,
    /// Tables (without a profile; default 1).
    pub tables: Option<u32>,
    /// Zipf exponent.
    #[serde(default = "d_zipf")]
    pub zipf: f64,
    /// Samples per batch.
    #[serde(default = "d_batch")]
    pub batch: u64,
    /// Batches in the trace.
    #[serde(default = "d_batches")]
    pub batches: u64,
    /// Policy name.
    pub policy: String,
    /// Cache size: rows, `"P%"` (of what `cache_of` names) or bytes (`"1GiB"`, rows of
    /// `row_bytes`).
    pub cache: CacheSpec,
    /// What a percentage is a fraction of: `table` (default: the tables' rows) or `unique`
    /// (the rows the generated trace touches).
    #[serde(default)]
    pub cache_of: CacheOf,
    /// Lookahead window, batches.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Static top-k profiling prefix.
    #[serde(default = "d_one")]
    pub profile_fraction: f64,
    /// Compute per iteration, s.
    #[serde(default = "d_compute")]
    pub compute_s: f64,
    /// Bytes per row.
    #[serde(default = "d_row_bytes")]
    pub row_bytes: f64,
    /// Fetch bandwidth, bytes/s (`fetch_bw`, as the CLI flag `--fetch-bw`; the older key
    /// `fetch_bw_bytes_per_s` is accepted).
    #[serde(default = "d_bw", alias = "fetch_bw_bytes_per_s")]
    pub fetch_bw: f64,
    /// Latency per transfer, s.
    #[serde(default = "d_lat")]
    pub fetch_latency_s: f64,
    /// Data-parallel trainers sharing the store's fetch bandwidth (default 1).
    #[serde(default = "d_trainers")]
    pub trainers: i64,
    /// Dense parameters all-reduced across the trainers every iteration (default 0).
    #[serde(default)]
    pub dense_params: f64,
    /// Bytes per dense parameter in the all-reduce (default 4).
    #[serde(default = "d_param_bytes")]
    pub dense_param_bytes: f64,
    /// Network bandwidth of a trainer's node for the all-reduce, Gb/s.
    #[serde(default)]
    pub sync_gbps: Option<f64>,
    /// Per-step all-reduce latency, µs (default 10).
    #[serde(default = "d_sync_latency")]
    pub sync_latency_us: f64,
    /// All-reduce algorithm (default ring).
    #[serde(default = "d_sync_algo")]
    pub sync_algo: String,
    /// `sim` and/or `analytic` (default sim).
    #[serde(default)]
    pub methods: Vec<String>,
}

impl PointSpec {
    /// Rows of every table.
    ///
    /// # Errors
    /// Unknown profile; both or neither of profile and rows.
    pub fn table_rows(&self) -> Result<Vec<u64>> {
        match (&self.profile, self.rows) {
            (Some(p), None) => profile::tables(p, self.scale),
            (None, Some(n)) => {
                let t = self.tables.unwrap_or(1);
                if t == 0 || t > super::spec::MAX_TABLES {
                    return Err(Error::range(
                        "tables",
                        t,
                        format!("an integer in [1, {}]", super::spec::MAX_TABLES),
                    ));
                }
                Ok(vec![n; t as usize])
            }
            _ => Err(Error::range(
                "profile",
                "both or neither",
                "exactly one of profile (+ scale) or rows (+ tables)",
            )),
        }
    }

    fn trace_key(&self) -> String {
        format!(
            "{:?}|{}|{:?}|{:?}|{}|{}|{}",
            self.profile, self.scale, self.rows, self.tables, self.zipf, self.batch, self.batches
        )
    }
}

struct Point {
    spec: PointSpec,
    kind: PolicyKind,
    cache: CacheSize,
    pipe: Pipeline,
    tables: Vec<u64>,
    trace: usize,
}

/// The embcache study.
pub struct EmbcacheStudy {
    spec: StudySpec,
    points: Vec<Point>,
    traces: Vec<(ZipfSpec, u64)>,
}

impl EmbcacheStudy {
    /// Validates every point.
    ///
    /// # Errors
    /// The first invalid point, naming the study.
    pub fn new(spec: StudySpec) -> Result<Self> {
        let mut points = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let mut traces = Vec::new();
        let wrap = |e: Error| Error::parse(&spec.path, None, format!("study '{}': {e}", spec.name));
        for pt in spec.grid() {
            let ps: PointSpec = spec.point(&pt)?;
            for m in &ps.methods {
                if m != "sim" && m != "analytic" {
                    return Err(Error::range(
                        format!("study '{}'.methods", spec.name),
                        m,
                        "sim or analytic",
                    ));
                }
            }
            let kind =
                PolicyKind::parse(&ps.policy, ps.window, ps.profile_fraction).map_err(wrap)?;
            let cache = ps.cache.resolve().map_err(wrap)?;
            let (trainers, sync_s) = SyncSpec {
                trainers: ps.trainers,
                dense_params: ps.dense_params,
                dense_param_bytes: ps.dense_param_bytes,
                sync_gbps: ps.sync_gbps,
                sync_latency_us: ps.sync_latency_us,
                sync_algo: ps.sync_algo.clone(),
            }
            .resolve()
            .map_err(wrap)?;
            let pipe = Pipeline::new(ps.compute_s, ps.row_bytes, ps.fetch_bw, ps.fetch_latency_s)
                .and_then(|p| p.with_sync(trainers, sync_s))
                .map_err(wrap)?;
            let tables = ps.table_rows().map_err(wrap)?;
            if ps.batch == 0 || ps.batches == 0 {
                return Err(wrap(Error::range("batch", 0, "batch and batches ≥ 1")));
            }
            let key = ps.trace_key();
            let trace = match keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    // Checked: batch and batches are any u64 a scenario gives; ZipfSpec::new
                    // bounds the product.
                    let accesses = ps
                        .batch
                        .checked_mul(ps.batches)
                        .and_then(|a| a.checked_mul(tables.len() as u64))
                        .ok_or_else(|| {
                            wrap(Error::range(
                                "batch × batches × tables",
                                format!("{} × {} × {}", ps.batch, ps.batches, tables.len()),
                                "at most 2^31 - 1 accesses",
                            ))
                        })?;
                    traces.push((
                        ZipfSpec::new(ps.zipf, tables.clone(), accesses, 0).map_err(wrap)?,
                        ps.batch,
                    ));
                    keys.push(key);
                    traces.len() - 1
                }
            };
            points.push(Point {
                spec: ps,
                kind,
                cache,
                pipe,
                tables,
                trace,
            });
        }
        Ok(EmbcacheStudy {
            spec,
            points,
            traces,
        })
    }
}

/// One output row.
struct Out {
    m: super::Metrics,
    times: Option<super::pipeline::IterTimes>,
    trace: String,
}

impl Study for EmbcacheStudy {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn technique(&self) -> &'static str {
        "embcache"
    }
    fn points(&self) -> usize {
        self.points.len()
    }

    fn run(&self, ctx: &RunContext) -> Result<StudyReport> {
        // One trace per distinct generator spec, all seeded with the scenario seed so every policy
        // sees the same lookups.
        let traces: Vec<(Arc<DenseTrace>, String)> = self
            .traces
            .iter()
            .map(|(z, batch)| {
                let z = ZipfSpec {
                    seed: ctx.seed,
                    ..z.clone()
                };
                let batch = *batch;
                let t = DenseTrace::from_stream(z.stream(), batch, false, &z.describe())?;
                Ok((Arc::new(t), z.describe()))
            })
            .collect::<Result<_>>()?;
        let progress = Progress::new(self.points.len() as u64, &self.spec.name, ctx.progress);
        let results: Vec<Vec<Out>> = par_map(&self.points, &progress, |_, p| {
            let (trace, desc) = &traces[p.trace];
            let table_rows: u64 = p.tables.iter().sum();
            let rows = p.cache.resolve(&SizeBasis {
                unique: trace.n_rows(),
                table_rows: Some(table_rows),
                row_bytes: p.spec.row_bytes,
                cache_of: p.spec.cache_of,
            })?;
            let sizes = Sizes {
                row_bytes: p.spec.row_bytes,
                table_rows: Some(table_rows),
            };
            let mut out = Vec::new();
            let methods: Vec<&str> = if p.spec.methods.is_empty() {
                vec!["sim"]
            } else {
                p.spec.methods.iter().map(String::as_str).collect()
            };
            for m in methods {
                if m == "sim" {
                    match sim_row(trace, p.kind, rows, Some(ctx.seed), Some(&p.pipe), sizes) {
                        Ok(Row { metrics, times }) => out.push(Out {
                            m: metrics,
                            times,
                            trace: desc.clone(),
                        }),
                        // Lookahead below its two-batch working set: reported in the summary.
                        Err(e) if matches!(p.kind, PolicyKind::Lookahead { .. }) => {
                            let _ = e;
                        }
                        Err(e) => return Err(e),
                    }
                } else if let Some(r) = analytic_row(
                    p.kind,
                    &p.tables,
                    p.spec.zipf,
                    rows,
                    Basis::Trace(trace),
                    p.spec.row_bytes,
                )? {
                    out.push(Out {
                        m: r.metrics,
                        times: None,
                        trace: desc.clone(),
                    });
                }
            }
            Ok(out)
        })?;
        progress.finish();
        let flat: Vec<Out> = results.into_iter().flatten().collect();
        let multi = self
            .points
            .iter()
            .any(|p| p.pipe.trainers > 1 || p.pipe.dense_sync_s > 0.0);
        let mut rows = Rows::default();
        for o in &flat {
            let mut r = serde_json::Map::new();
            r.insert("study".into(), self.spec.name.clone().into());
            if let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(&o.m) {
                r.extend(obj);
            }
            let t = o.times;
            r.insert("iter_no_cache_s".into(), t.map(|t| t.no_cache_s).into());
            r.insert("iter_s".into(), t.map(|t| t.iter_s).into());
            r.insert("speedup".into(), t.map(|t| t.speedup).into());
            if multi {
                r.insert("trainers".into(), t.map(|t| t.trainers).into());
                r.insert("dense_sync_s".into(), t.map(|t| t.dense_sync_s).into());
            }
            r.insert("trace".into(), o.trace.clone().into());
            rows.records.push(r);
        }
        let min_la = traces
            .iter()
            .map(|(t, _)| super::policy::lookahead::Lookahead::min_feasible_rows(t))
            .max()
            .unwrap_or(0);
        let unique = traces.first().map(|(t, _)| t.n_rows()).unwrap_or(1);
        Ok(StudyReport {
            plots: self.plots(&flat),
            summary_md: self.summary(&flat, min_la, unique),
            rows,
        })
    }
}

impl EmbcacheStudy {
    fn plots(&self, flat: &[Out]) -> Vec<LinePlot> {
        let mut hit: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut speed: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for o in flat {
            let x = 100.0 * o.m.cache_fraction_of_unique;
            let label = if o.m.method == "analytic" {
                format!("{} (analytic)", o.m.policy)
            } else {
                o.m.policy.clone()
            };
            hit.entry(label).or_default().push((x, o.m.hit_rate));
            if let Some(t) = o.times {
                speed
                    .entry(o.m.policy.clone())
                    .or_default()
                    .push((x, t.speedup));
            }
        }
        let mk =
            |stem: &str, title: &str, y: &str, by: BTreeMap<String, Vec<(f64, f64)>>| LinePlot {
                stem: format!("{}-{stem}", self.spec.name),
                title: format!("{}: {title}", self.spec.name),
                x_label: "cache size (% of unique rows)".into(),
                y_label: y.into(),
                log_x: true,
                log_y: false,
                series: by
                    .into_iter()
                    .map(|(name, mut points)| {
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                        Series { name, points }
                    })
                    .collect(),
            };
        vec![
            mk(
                "hit-rate",
                "hit rate per access",
                "hit rate (fraction of accesses)",
                hit,
            ),
            mk(
                "speedup",
                "iteration speedup over no cache",
                "speedup (×)",
                speed,
            ),
        ]
    }

    fn summary(&self, flat: &[Out], min_lookahead: usize, unique: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Trace: {}.\n",
            flat.first().map(|o| o.trace.as_str()).unwrap_or("none")
        );
        let _ = writeln!(s, "| policy | cache rows | cache % of unique | hit rate | per-batch unique hit rate | fetched rows/batch | iteration (ms) | speedup vs no cache |");
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for o in flat.iter().filter(|o| o.m.method == "sim") {
            let t = o.times.expect("sim rows have times");
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.4} | {:.4} | {:.0} | {:.3} | {:.2} |",
                o.m.policy,
                o.m.cache_rows,
                100.0 * o.m.cache_fraction_of_unique,
                o.m.hit_rate,
                o.m.batch_unique_hit_rate.unwrap_or(f64::NAN),
                o.m.prefetch_rows_per_batch.unwrap_or(f64::NAN),
                1e3 * t.iter_s,
                t.speedup
            );
        }
        let errs: Vec<String> = flat
            .iter()
            .filter(|o| o.m.method == "analytic")
            .filter_map(|a| {
                flat.iter()
                    .find(|o| {
                        o.m.method == "sim"
                            && o.m.policy == a.m.policy
                            && o.m.cache_rows == a.m.cache_rows
                    })
                    .map(|o| {
                        format!(
                            "{} at {} rows: {:+.2} points",
                            a.m.policy,
                            a.m.cache_rows,
                            100.0 * (a.m.hit_rate - o.m.hit_rate)
                        )
                    })
            })
            .collect();
        if !errs.is_empty() {
            let _ = writeln!(s, "\nClosed form minus simulation (Che's approximation for LRU, Σp_i for static top-k): {}.", errs.join("; "));
            if let Some(o) = flat.iter().find(|o| o.m.method == "sim") {
                let _ = writeln!(
                    s,
                    "The simulation starts cold: first accesses are {:.1}% of this trace (a static top-k cache of C rows also loads them on first touch, C/accesses), which the steady-state closed forms do not count; on long traces they agree within 0.5 points (tests/it/embcache_props.rs).",
                    100.0 * o.m.unique_ids as f64 / o.m.accesses as f64
                );
            }
        }
        if self
            .points
            .iter()
            .any(|p| matches!(p.kind, PolicyKind::Lookahead { .. }))
        {
            let _ = writeln!(
                s,
                "\nLookahead needs room for two batches' unique rows: at least {min_lookahead} rows ({:.1}% of {unique} unique); smaller caches are not listed for it.",
                100.0 * min_lookahead as f64 / unique as f64
            );
            if let Some(o) = flat.iter().find(|o| o.m.min_cache_rows.is_some()) {
                let m = o.m.min_cache_rows.unwrap_or(0);
                let _ = writeln!(
                    s,
                    "With a window of {} batches it never holds more than {m} rows ({:.1}% of unique): larger caches change nothing for it, and its fetches are off the critical path, so its iteration time is the compute time whenever a batch's prefetch fits in it.",
                    o.m.window.unwrap_or(0),
                    100.0 * m as f64 / unique as f64
                );
            }
        }
        if let Some(p) = self.points.first() {
            let _ = writeln!(
                s,
                "\nPipeline assumptions: {} ms dense compute per batch, {} bytes per row, {} GB/s fetch bandwidth, {} µs per transfer; without a cache every unique row of a batch is fetched and written back on the critical path.",
                1e3 * p.pipe.compute_s,
                p.pipe.row_bytes,
                p.pipe.fetch_bw_bytes_per_s / 1e9,
                1e6 * p.pipe.fetch_latency_s
            );
            if p.pipe.trainers > 1 || p.pipe.dense_sync_s > 0.0 {
                let _ = writeln!(
                    s,
                    "{} trainers share that bandwidth (each fetches at 1/{} of it) and all-reduce their dense parameters in {} ms per iteration (the shared collective model), on the critical path with the compute.",
                    p.pipe.trainers,
                    p.pipe.trainers,
                    1e3 * p.pipe.dense_sync_s
                );
            }
        }
        s
    }
}
