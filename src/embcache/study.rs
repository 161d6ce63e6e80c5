//! The embcache scenario study: cache sizes × policies on a generated Zipf trace or a trace
//! file, hit rates (simulated and, for LRU and static top-k on a Zipf source, closed form) and
//! iteration times.
//!
//! Every grid point is the front door's [`Spec`]: its keys are the `perfcast embcache` flags
//! with their defaults (`--fetch-bw` = `fetch_bw`), so a point of a study and the same flags on
//! the command line compute the same row.
//!
//! ```toml
//! [[study]]
//! technique = "embcache"
//! profile = "criteo-kaggle"   # table sizes (or `rows` + `tables` for equal tables)
//! scale = 0.01                # multiplies every table's rows
//! zipf = 1.05
//! batch = 128                 # samples per batch (one lookup per table each)
//! accesses = 332800           # lookups generated (100 batches × 128 samples × 26 tables)
//! window = 4                  # lookahead window, batches
//! compute_s = 5e-4            # pipeline model: without compute_s, no iteration times
//! row_bytes = 512
//! fetch_bw = 1.25e9
//! fetch_latency_s = 5e-5
//! # trainers = 8            # several trainers share fetch_bw; dense all-reduce among them
//! # dense_params = 2.96e6    # (with sync_gbps; also dense_param_bytes, sync_latency_us, sync_algo)
//! # sync_gbps = 10
//! method = ["sim", "analytic"]
//! [study.sweep]
//! policy = ["lru", "fifo", "lfu", "static-topk", "belady", "lookahead"]
//! cache = ["2%", "5%", "10%", "25%"]   # rows, "P%" (of the tables' rows) or bytes ("1GiB")
//! ```
//!
//! A trace file instead of the generator: `trace = "FILE"` (relative to the scenario file's
//! directory) with `trace_format` (text, csv, oracle-general, criteo, movielens, lcs-csv,
//! parquet; default from the name) and the format's options (`order`, `lookups`, `csv_params`),
//! as `perfcast embcache --trace`. A generated trace is seeded with the scenario seed unless the
//! point gives `seed`. `cache_of = "unique"` takes percentages of the rows the trace touches
//! instead of the tables' rows (the default scenario does, to chart the hit-rate curve across
//! the trace). `solve_hit_rate` is a command-line what-if only.

use super::policy::PolicyKind;
pub use super::spec::CacheSpec;
use super::spec::{analytic_row, stream_row, Basis, Params, Row, Sizes, SourceSpec, Spec};
use super::stream;
#[cfg(test)]
use super::trace::DenseTrace;
use super::SizeBasis;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::report::{LinePlot, Rows, Series};
use crate::scenario::{KeyDoc, RunContext, Study, StudyReport, StudySpec};
use crate::sweep::{par_map, Progress};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Keys of an embcache study (all fields of [`Spec`], each a flag) whose use in a study says more
/// than the flag's help.
pub const STUDY_KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "trace",
        flag: Some("--trace"),
        value: "path",
        default: "—",
        meaning: "Trace file, relative to the scenario file's directory, read in `trace_format` with that format's options (`order`, `lookups`, `csv_params`); instead of `zipf`. Shared by the points that name the same source.",
    },
    KeyDoc {
        key: "seed",
        flag: Some("--seed"),
        value: "integer",
        default: "the scenario's seed",
        meaning: "Seed of the generated trace.",
    },
    KeyDoc {
        key: "solve_hit_rate",
        flag: Some("--solve-hit-rate"),
        value: "number",
        default: "—",
        meaning: "Command line only (an error in a study): a study evaluates its cache sizes.",
    },
    KeyDoc {
        key: "method",
        flag: Some("--method"),
        value: "sim|analytic, or a list",
        default: "sim",
        meaning: "sim (simulate the trace) and/or analytic (closed form; lru and static-topk of a Zipf source): one row per policy and method.",
    },
];

/// Older scenario keys still read: (old, new). `batches` (of the study before it took the
/// command line's keys) is not: write `accesses` = batch × batches × tables.
pub const RENAMED_KEYS: &[(&str, &str)] =
    &[("methods", "method"), ("fetch_bw_bytes_per_s", "fetch_bw")];

/// One validated grid point.
struct Point {
    params: Params,
    /// `sim` and/or `analytic`.
    methods: Vec<&'static str>,
    /// The Zipf generator's tables and exponent, for the closed forms.
    zipf: Option<(Vec<u64>, f64)>,
    /// Index into the study's distinct sources.
    trace: usize,
}

/// A distinct trace source of the study, and whether its points name their own `seed` (else the
/// scenario's seeds the generator).
#[derive(Debug, Clone, PartialEq)]
struct Source {
    spec: SourceSpec,
    seed_given: bool,
}

/// The embcache study.
pub struct EmbcacheStudy {
    spec: StudySpec,
    points: Vec<Point>,
    sources: Vec<Source>,
}

impl EmbcacheStudy {
    /// Validates every point through [`Spec::resolve`].
    ///
    /// # Errors
    /// The first invalid point, naming the study.
    pub fn new(spec: StudySpec, cat: &Catalog) -> Result<Self> {
        let mut points = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let wrap = |e: Error| Error::parse(&spec.path, None, format!("study '{}': {e}", spec.name));
        let dir = spec
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        for pt in spec.grid() {
            let mut ps: Spec = spec.point(&pt)?;
            if let Some(t) = ps.trace.as_mut() {
                if t.is_relative() {
                    *t = dir.join(&*t);
                }
            }
            if ps.solve_hit_rate.is_some() {
                return Err(wrap(Error::range(
                    "solve_hit_rate",
                    "given in a study",
                    "absent: a study evaluates its cache sizes (`perfcast embcache --solve-hit-rate` solves for one)",
                )));
            }
            let mut methods = Vec::new();
            for m in &ps.method {
                match m.as_str() {
                    "sim" => methods.push("sim"),
                    "analytic" => methods.push("analytic"),
                    other => {
                        return Err(Error::range(
                            format!("study '{}'.method", spec.name),
                            other,
                            "sim or analytic",
                        ))
                    }
                }
            }
            if methods.is_empty() {
                methods.push("sim");
            }
            let params = ps.resolve(cat).map_err(wrap)?;
            let zipf = params.source.zipf_spec().map_err(wrap)?;
            if zipf.is_none() && methods.contains(&"analytic") {
                return Err(wrap(Error::range(
                    "method",
                    "analytic",
                    "sim only for a trace file (the closed forms need a Zipf source: zipf, rows or profile, accesses)",
                )));
            }
            if params.source.trace.is_none() && zipf.is_none() {
                return Err(wrap(Error::range(
                    "trace",
                    "missing",
                    "trace = \"FILE\", or zipf, rows (or profile) and accesses",
                )));
            }
            let source = Source {
                spec: params.source.clone(),
                seed_given: pt.contains_key("seed"),
            };
            let trace = match sources.iter().position(|s| *s == source) {
                Some(i) => i,
                None => {
                    sources.push(source);
                    sources.len() - 1
                }
            };
            points.push(Point {
                zipf: zipf.map(|z| (z.tables, z.s)),
                params,
                methods,
                trace,
            });
        }
        Ok(EmbcacheStudy {
            spec,
            points,
            sources,
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
        let sources = self.prepare(ctx, |spec| {
            let (src, z) = spec.stream_source()?;
            let desc = src.describe();
            // One pass remaps the source into a spool of dense rows, which every later pass
            // reads instead of generating or parsing the source again.
            let (src, accesses, unique) = match stream::spool_rows(&src, spec.batch)? {
                Some(r) => {
                    let (a, u) = (r.accesses, u64::from(r.rows));
                    (stream::Source::Rows(std::sync::Arc::new(r)), a, u)
                }
                None => {
                    let (a, u) = stream::count(&src)?;
                    (src, a, u)
                }
            };
            let data = Data::Stream {
                src,
                batch: spec.batch,
                memo: stream::Memo::default(),
            };
            Ok((data, z.map(|z| z.seed), accesses, unique, desc))
        })?;
        self.run_on(ctx, &sources)
    }
}

/// One distinct source of a study, ready for its points: how it is simulated and what the rows
/// need from it (its size, its description, the generator's seed).
struct Prepared {
    data: Data,
    /// Seed of a generated trace.
    seed: Option<u64>,
    /// Table rows the source declares.
    table_rows: Option<u64>,
    accesses: u64,
    unique: u64,
    desc: String,
}

/// How a study's source is simulated.
enum Data {
    /// Streamed again by every point ([`stream::simulate_memo`]): memory bounded by the distinct
    /// rows (and lookahead's window), not the trace's length; the points share the passes that do
    /// not depend on the cache size (`memo`). The source is read once, into a spool of its dense
    /// rows ([`stream::spool_rows`]: 4 bytes per access in an unnamed temporary file, on disk, not
    /// in memory) that the points' passes read back instead of the source.
    Stream {
        src: stream::Source,
        batch: u64,
        memo: stream::Memo,
    },
    /// Loaded once and shared by the points (the in-memory simulator, [`super::simulate`]): what
    /// the study did before it streamed, kept to test that the two give the same report.
    #[cfg(test)]
    Memory(DenseTrace),
}

impl Prepared {
    /// The simulated row of `kind` with `rows` rows.
    fn sim(
        &self,
        kind: PolicyKind,
        rows: usize,
        pipe: Option<&super::pipeline::Pipeline>,
        sizes: Sizes,
    ) -> Result<Row> {
        match &self.data {
            Data::Stream { src, batch, memo } => {
                stream_row(src, *batch, kind, rows, self.seed, pipe, sizes, memo)
            }
            #[cfg(test)]
            Data::Memory(t) => super::spec::sim_row(t, kind, rows, self.seed, pipe, sizes),
        }
    }

    /// Lookahead's largest two-batch working set.
    fn min_feasible_rows(&self) -> Result<usize> {
        match &self.data {
            Data::Stream { src, batch, memo } => memo.min_feasible_rows(src, *batch),
            #[cfg(test)]
            Data::Memory(t) => Ok(super::policy::lookahead::Lookahead::min_feasible_rows(t)),
        }
    }
}

impl EmbcacheStudy {
    /// Every distinct source, generated ones seeded with the scenario seed (unless the points
    /// name theirs) so every policy sees the same lookups; `open` reads it (or its size) once,
    /// and returns how it is simulated, the seed, its accesses, its distinct rows and its
    /// description. Errors name the study.
    fn prepare(
        &self,
        ctx: &RunContext,
        open: impl Fn(&SourceSpec) -> Result<(Data, Option<u64>, u64, u64, String)>,
    ) -> Result<Vec<Prepared>> {
        self.sources
            .iter()
            .map(|s| {
                let source = if s.seed_given {
                    s.spec.clone()
                } else {
                    SourceSpec {
                        seed: ctx.seed,
                        ..s.spec.clone()
                    }
                };
                let (data, seed, accesses, unique, desc) = open(&source).map_err(|e| {
                    Error::parse(
                        &self.spec.path,
                        None,
                        format!("study '{}': {e}", self.spec.name),
                    )
                })?;
                Ok(Prepared {
                    data,
                    seed,
                    table_rows: source.declared_table_rows()?,
                    accesses,
                    unique,
                    desc,
                })
            })
            .collect()
    }

    /// The study's report from its prepared sources.
    fn run_on(&self, ctx: &RunContext, traces: &[Prepared]) -> Result<StudyReport> {
        let progress = Progress::new(self.points.len() as u64, &self.spec.name, ctx.progress);
        let results: Vec<Vec<Out>> = par_map(&self.points, &progress, |_, p| {
            let t = &traces[p.trace];
            let rows = p.params.cache.resolve(&SizeBasis {
                unique: usize::try_from(t.unique).unwrap_or(usize::MAX),
                table_rows: t.table_rows,
                row_bytes: p.params.row_bytes,
                cache_of: p.params.cache_of,
            })?;
            let sizes = Sizes {
                row_bytes: p.params.row_bytes,
                table_rows: t.table_rows,
            };
            let mut out = Vec::new();
            for &kind in &p.params.kinds {
                for &m in &p.methods {
                    if m == "sim" {
                        match t.sim(kind, rows, p.params.pipe.as_ref(), sizes) {
                            Ok(Row { metrics, times }) => out.push(Out {
                                m: metrics,
                                times,
                                trace: t.desc.clone(),
                            }),
                            // Lookahead below its two-batch working set: reported in the summary
                            // (any other error, such as a spool that cannot be written, is one).
                            Err(_)
                                if matches!(kind, PolicyKind::Lookahead { .. })
                                    && rows < t.min_feasible_rows()? => {}
                            Err(e) => return Err(e),
                        }
                    } else if let Some((tables, s)) = &p.zipf {
                        let basis = Basis::Trace {
                            accesses: t.accesses,
                            unique: t.unique,
                        };
                        if let Some(r) =
                            analytic_row(kind, tables, *s, rows, basis, p.params.row_bytes)?
                        {
                            out.push(Out {
                                m: r.metrics,
                                times: None,
                                trace: t.desc.clone(),
                            });
                        }
                    }
                }
            }
            Ok(out)
        })?;
        progress.finish();
        let flat: Vec<Out> = results.into_iter().flatten().collect();
        let multi = self.points.iter().any(|p| {
            p.params
                .pipe
                .is_some_and(|p| p.trainers > 1 || p.dense_sync_s > 0.0)
        });
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
        // The summary's lookahead note (only written when a point runs lookahead).
        let min_la = if self.has_lookahead() {
            traces
                .iter()
                .map(Prepared::min_feasible_rows)
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let unique = traces
            .first()
            .map_or(1, |t| usize::try_from(t.unique).unwrap_or(usize::MAX));
        Ok(StudyReport {
            plots: self.plots(&flat),
            summary_md: self.summary(&flat, min_la, unique),
            rows,
        })
    }
}

impl EmbcacheStudy {
    /// Whether a point runs lookahead.
    fn has_lookahead(&self) -> bool {
        self.points
            .iter()
            .flat_map(|p| &p.params.kinds)
            .any(|k| matches!(k, PolicyKind::Lookahead { .. }))
    }

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
        let mut plots = vec![mk(
            "hit-rate",
            "hit rate per access",
            "hit rate (fraction of accesses)",
            hit,
        )];
        // Iteration times exist only with the pipeline model (`compute_s`).
        if !speed.is_empty() {
            plots.push(mk(
                "speedup",
                "iteration speedup over no cache",
                "speedup (×)",
                speed,
            ));
        }
        plots
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
            let (iter, speedup) = match o.times {
                Some(t) => (
                    format!("{:.3}", 1e3 * t.iter_s),
                    format!("{:.2}", t.speedup),
                ),
                None => ("—".to_string(), "—".to_string()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.4} | {:.4} | {:.0} | {iter} | {speedup} |",
                o.m.policy,
                o.m.cache_rows,
                100.0 * o.m.cache_fraction_of_unique,
                o.m.hit_rate,
                o.m.batch_unique_hit_rate.unwrap_or(f64::NAN),
                o.m.prefetch_rows_per_batch.unwrap_or(f64::NAN),
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
        if self.has_lookahead() {
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
        if let Some(p) = self.points.first().and_then(|p| p.params.pipe) {
            let _ = writeln!(
                s,
                "\nPipeline assumptions: {} ms dense compute per batch, {} bytes per row, {} GB/s fetch bandwidth, {} µs per transfer; without a cache every unique row of a batch is fetched and written back on the critical path.",
                1e3 * p.compute_s,
                p.row_bytes,
                p.fetch_bw_bytes_per_s / 1e9,
                1e6 * p.fetch_latency_s
            );
            if p.trainers > 1 || p.dense_sync_s > 0.0 {
                let _ = writeln!(
                    s,
                    "{} trainers share that bandwidth (each fetches at 1/{} of it) and all-reduce their dense parameters in {} ms per iteration (the shared collective model), on the critical path with the compute.",
                    p.trainers,
                    p.trainers,
                    1e3 * p.dense_sync_s
                );
            }
        }
        s
    }
}

#[cfg(test)]
impl EmbcacheStudy {
    /// [`Study::run`] on traces loaded whole ([`SourceSpec::load`]) and the in-memory simulator:
    /// what the study did before it streamed.
    fn run_in_memory(&self, ctx: &RunContext) -> Result<StudyReport> {
        let sources = self.prepare(ctx, |spec| {
            let (t, z) = spec.load()?;
            let (accesses, unique, desc) = (t.len() as u64, t.n_rows() as u64, t.source.clone());
            Ok((Data::Memory(t), z.map(|z| z.seed), accesses, unique, desc))
        })?;
        self.run_on(ctx, &sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The study of the scenario `text` (one `[[study]]`), written in `dir`.
    fn study(dir: &Path, text: &str) -> EmbcacheStudy {
        let cat = Catalog::embedded().unwrap();
        let path = dir.join("s.toml");
        let mut built = None;
        crate::scenario::parse(text, &path, |spec| {
            built = Some(EmbcacheStudy::new(spec.clone(), &cat)?);
            Ok(Box::new(EmbcacheStudy::new(spec, &cat)?))
        })
        .unwrap();
        built.unwrap()
    }

    /// The report's records without the timing columns (`sim_s` and the rate over it, which
    /// differ from run to run).
    fn timeless(r: &StudyReport) -> Vec<serde_json::Map<String, serde_json::Value>> {
        r.rows
            .records
            .iter()
            .map(|rec| {
                let mut rec = rec.clone();
                for k in ["sim_s", "sim_requests_per_s"] {
                    assert!(
                        rec.remove(k).is_some() || rec["method"] == "analytic",
                        "{k}"
                    );
                }
                rec
            })
            .collect()
    }

    /// The streaming study and the in-memory one give the same report: every row (but the
    /// simulation time), the plots and the summary, for LRU, FIFO, LFU, static top-k (whole
    /// trace and a 10 % profile), Belady and lookahead, at batch 1 and batch > 1, on a generated
    /// trace (two tables, with the closed forms and the pipeline model) and on a text file;
    /// lookahead's cache sizes below its two-batch working set are left out by both.
    #[test]
    fn streaming_study_equals_the_in_memory_one() {
        let d = tempfile::tempdir().unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let ids: String = (0..6000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Skewed: small ids far more often.
                format!("{}\n", (x % 997) * (x >> 50) % 500)
            })
            .collect();
        std::fs::write(d.path().join("ids.log"), ids).unwrap();
        let all =
            "policy = [\"lru\", \"fifo\", \"lfu\", \"static-topk\", \"belady\", \"lookahead\"]";
        let cases = [
            // Generated, batch 1, closed forms and the pipeline model.
            format!(
                "seed = 3\n[[study]]\nname = \"g1\"\ntechnique = \"embcache\"\nzipf = 1.0\n\
                 rows = 1500\ntables = 2\naccesses = 20000\nbatch = 1\nwindow = 3\n\
                 cache_of = \"unique\"\ncompute_s = 1e-4\nmethod = [\"sim\", \"analytic\"]\n\
                 {all}\n[study.sweep]\ncache = [\"0.5%\", \"5%\", \"30%\"]\n"
            ),
            // Generated, batch 16, several windows, a partial static profile, sizes in rows
            // (the smallest below lookahead's working set).
            format!(
                "[[study]]\nname = \"g16\"\ntechnique = \"embcache\"\nzipf = 1.1\n\
                 rows = 3000\naccesses = 24000\nbatch = 16\nprofile_fraction = 0.1\n\
                 compute_s = 2e-4\n{all}\n\
                 [study.sweep]\nwindow = [1, 4]\ncache = [8, 60, 400]\n"
            ),
            // A text file, batch 7.
            format!(
                "[[study]]\nname = \"f7\"\ntechnique = \"embcache\"\ntrace = \"ids.log\"\n\
                 trace_format = \"text\"\nbatch = 7\ncache_of = \"unique\"\ncompute_s = 1e-4\n\
                 {all}\n[study.sweep]\ncache = [\"5%\", \"40%\"]\n"
            ),
        ];
        let ctx = RunContext {
            seed: 11,
            progress: false,
        };
        for text in &cases {
            let s = study(d.path(), text);
            let streamed = s.run(&ctx).unwrap();
            let loaded = s.run_in_memory(&ctx).unwrap();
            let name = &s.spec.name;
            let rows = timeless(&streamed);
            assert_eq!(rows, timeless(&loaded), "{name}");
            assert_eq!(streamed.summary_md, loaded.summary_md, "{name}");
            assert_eq!(streamed.plots, loaded.plots, "{name}");
            // Every policy has rows, and the sizes below lookahead's working set are left out.
            for pol in ["lru", "fifo", "lfu", "static-topk", "belady", "lookahead"] {
                assert!(rows.iter().any(|r| r["policy"] == pol), "{name} {pol}");
            }
            if name == "g16" {
                assert!(
                    !rows
                        .iter()
                        .any(|r| r["policy"] == "lookahead" && r["cache_rows"] == 8),
                    "{name}"
                );
                assert!(streamed.summary_md.contains("Lookahead needs room"));
            }
        }
    }
}
