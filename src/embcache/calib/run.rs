//! embcache's side of `perfcast calibrate` and `perfcast validate` ([`Embcache`], registered in
//! [`crate::techniques`]).
//!
//! - `calibrate` fits [`super::Calibration`] from the micro rows (kinds `gather`, `fetch`,
//!   `dense`; `params` `op=…;rows=…`, batch = samples) and writes it as TOML
//!   (`models/calibration/<gpu>-embcache.toml` unless `--out`).
//! - `validate` predicts every `e2e` row's `iter_s`: the trace is regenerated from the row's
//!   `params` (Zipf generator with its seed, or the named trace file, looked up as given and then
//!   under `traces/`), the simulator's policy is driven over it ([`super::move_counts`]) and the
//!   pipeline model gives the time. The calibration comes from the micro rows among the input
//!   when there are any (same machine), else from the calibration file (a fresh machine). It
//!   also checks that each row's `batch_hit_rate` equals the simulator's.

use super::{fit, move_counts, predict_iter_s, predict_resident_s, Calibration, MicroPoint};
use crate::embcache::policy::PolicyKind;
use crate::embcache::trace::{self, Access, DenseTrace, TraceFormat};
use crate::error::{Error, Result};
use crate::measure::{Measurements, Origin, Row};
use crate::report::{write_atomic, Format};
use crate::validate::{
    record_sets, rel_err, sets_json, CalibrateRequest, ErrorStats, Report, SetSummary, Technique,
    Tolerance, ValidateRequest,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// embcache as a calibrated technique.
#[derive(Debug, Clone, Copy, Default)]
pub struct Embcache;

impl Technique for Embcache {
    fn name(&self) -> &'static str {
        "embcache"
    }

    fn calibrate(&self, rows: Measurements, req: &CalibrateRequest) -> Result<Report> {
        // The what-if's step is the graph-replayed one when a graph-timed micro set exists
        // (as production steps capture theirs), else the eager one.
        let execs = micro_execs(&rows);
        let exec = if execs.values().any(|e| e == GRAPHS) {
            GRAPHS
        } else {
            EAGER
        };
        let (_, pts) = micro_points_of(&rows, &execs, exec)?;
        let cal = fit(&pts)?;
        // `--out` names specdec's file; embcache writes `<gpu>-embcache.toml` beside it, never
        // over it.
        let path = match &req.out {
            Some(o) => o
                .parent()
                .unwrap_or(Path::new("."))
                .join(format!("{}-embcache.toml", req.gpu)),
            None => default_path(&req.gpu),
        };
        let text = to_toml(&cal, &req.gpu, &req.command, pts.len(), exec);
        if !req.dry_run {
            write_atomic(&path, text.as_bytes())?;
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "embcache: fitted {} micro points{}",
            pts.len(),
            if req.dry_run {
                " (dry run: nothing written)".to_string()
            } else {
                format!(" -> {}", path.display())
            }
        );
        s.push_str(&text);
        Ok(Report {
            stdout: s,
            pass: true,
        })
    }

    /// Issue 16's goal: iteration time MAPE ≤ 10%, max ≤ 15%.
    fn goal(&self) -> Tolerance {
        Tolerance {
            mape: 0.10,
            max_abs_pct_err: 0.15,
        }
    }

    fn validate(&self, rows: Measurements, req: &ValidateRequest) -> Result<Report> {
        let execs = micro_execs(&rows);
        let mut wanted: Vec<&str> = rows
            .rows
            .iter()
            .filter(|(_, r)| r.kind == "e2e")
            .map(|(_, r)| step_exec(r))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut cals = BTreeMap::new();
        for exec in wanted {
            let (set, pts) = micro_points_of(&rows, &execs, exec)?;
            let (cal, source) = if pts.is_empty() {
                let p = default_path(&req.gpu);
                let table = read_table(&p)?;
                let file_exec = step_exec_of(&table);
                if file_exec != exec {
                    return Err(Error::Unsupported(format!(
                        "embcache e2e rows with step_exec={exec} and no micro rows of that step: {} calibrates the {file_exec} step",
                        p.display()
                    )));
                }
                (from_table(&table, &p)?, p.display().to_string())
            } else {
                (
                    fit(&pts)?,
                    format!(
                        "fitted from {} micro points of the input (the newest {exec} micro set, {})",
                        pts.len(),
                        set.unwrap_or_default()
                    ),
                )
            };
            cals.insert(exec.to_string(), (cal, source));
        }
        validate(&rows, &cals, req)
    }
}

/// `step_exec` of an eager step (rows without the parameter).
pub const EAGER: &str = "eager";
/// `step_exec` of a step replayed as a CUDA graph (`perfcast-gpu embcache … --step-exec graphs`).
pub const GRAPHS: &str = "graphs";

/// How the row's dense step ran: its `step_exec` parameter, [`EAGER`] without one.
pub fn step_exec(r: &Row) -> &str {
    r.params.get("step_exec").unwrap_or(EAGER)
}

/// Each micro set's step execution: [`GRAPHS`] when any of its rows ran the step as a graph.
/// A set's row-path measurements (gather, fetch, …) do not depend on it, but they belong to
/// the same machine and run as its step measurements, so a calibration takes whole sets.
pub fn micro_execs(rows: &Measurements) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for (_, r) in &rows.rows {
        if r.kind == "e2e" {
            continue;
        }
        let e = m.entry(r.set.clone()).or_insert_with(|| EAGER.to_string());
        if step_exec(r) == GRAPHS {
            *e = GRAPHS.to_string();
        }
    }
    m
}

/// The newest micro set whose step ran as `exec` ([`micro_execs`]): the latest `date` of its
/// rows (ties: the larger set name). A calibration is one machine's micro set, re-measured
/// when the harness changes (run 31 replaced run 29's cache-resident host paths), so older sets
/// of the same step are history, not extra samples.
pub fn newest_micro_set(
    rows: &Measurements,
    execs: &BTreeMap<String, String>,
    exec: &str,
) -> Option<String> {
    let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, r) in &rows.rows {
        if r.kind == "e2e" || execs.get(&r.set).is_none_or(|e| e != exec) {
            continue;
        }
        let d = latest.entry(r.set.as_str()).or_insert("");
        let date = r.provenance.date.as_str();
        if date > *d {
            *d = date;
        }
    }
    latest
        .into_iter()
        .max_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
        .map(|(s, _)| s.to_string())
}

/// The newest micro set whose step ran as `exec` ([`newest_micro_set`]) and its
/// [`micro_points`] (none without such a set).
///
/// # Errors
/// As [`micro_points`].
pub fn micro_points_of(
    rows: &Measurements,
    execs: &BTreeMap<String, String>,
    exec: &str,
) -> Result<(Option<String>, Vec<MicroPoint>)> {
    let newest = newest_micro_set(rows, execs, exec);
    let pts = micro_points_where(rows, |r| newest.as_deref() == Some(r.set.as_str()))?;
    Ok((newest, pts))
}

/// `models/calibration/<gpu>-embcache.toml`.
pub fn default_path(gpu: &str) -> PathBuf {
    PathBuf::from(format!("models/calibration/{gpu}-embcache.toml"))
}

fn param_f(row: &Row, origin: &Origin, key: &str) -> Result<f64> {
    row.params
        .get(key)
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| origin.err(format!("embcache row needs a numeric params `{key}`")))
}

/// The micro points of `rows` (medians of `<op>_s`, `overlap_fraction`, and the synchronized
/// step `overlap_compute_s`, sized by its batch).
///
/// # Errors
/// A micro row without its size parameter.
pub fn micro_points(rows: &Measurements) -> Result<Vec<MicroPoint>> {
    micro_points_where(rows, |_| true)
}

/// [`micro_points`] of the rows `keep` accepts.
fn micro_points_where(rows: &Measurements, keep: impl Fn(&Row) -> bool) -> Result<Vec<MicroPoint>> {
    let mut v = Vec::new();
    for (o, r) in &rows.rows {
        if r.kind == "e2e" || !keep(r) {
            continue;
        }
        let Some(op) = r.params.get("op") else {
            continue;
        };
        let synced = r.metric == "overlap_compute_s";
        let wanted = r.metric == format!("{op}_s") || r.metric == "overlap_fraction" || synced;
        if !wanted {
            continue;
        }
        let size = if op == "compute" || synced {
            f64::from(
                r.batch
                    .ok_or_else(|| o.err(format!("embcache {} row needs batch", r.metric)))?,
            )
        } else {
            param_f(r, o, "rows")?
        };
        v.push(MicroPoint {
            op: op.to_string(),
            size,
            metric: r.metric.clone(),
            value: r.value,
            tables: r.params.get("tables").and_then(|t| t.parse().ok()),
        });
    }
    Ok(v)
}

fn to_toml(c: &Calibration, gpu: &str, command: &str, points: usize, exec: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# embcache pipeline model of {gpu}, fitted by `perfcast calibrate` from {points} micro points");
    let _ = writeln!(
        s,
        "# ({command}); t(n) = alpha_s + beta_s * n for n > 0 (rows; compute: samples)."
    );
    let _ = writeln!(s, "gpu = \"{gpu}\"");
    let _ = writeln!(s, "step_exec = \"{exec}\"");
    let _ = writeln!(s, "overlap = {}", c.overlap);
    let pts: Vec<String> = c
        .compute_points
        .iter()
        .map(|(b, t)| format!("[{b:?}, {t:e}]"))
        .collect();
    let _ = writeln!(s, "compute_points = [{}]", pts.join(", "));
    let tails: Vec<String> = c
        .tail_points
        .iter()
        .map(|(b, t)| format!("[{b:?}, {t:e}]"))
        .collect();
    let _ = writeln!(
        s,
        "# device tail of a step the host waits for, [samples, s] (synchronized step − compute)"
    );
    let _ = writeln!(s, "tail_points = [{}]", tails.join(", "));
    let _ = writeln!(
        s,
        "# measured medians of the row paths, [rows, s]: predictions interpolate these (the affine fits below are reported)"
    );
    for (name, p) in [
        ("gather_points", &c.gather_points),
        ("scatter_points", &c.scatter_points),
        ("fetch_points", &c.fetch_points),
        ("writeback_points", &c.writeback_points),
    ] {
        let v: Vec<String> = p.iter().map(|(n, t)| format!("[{n:?}, {t:e}]")).collect();
        let _ = writeln!(s, "{name} = [{}]", v.join(", "));
    }
    for (name, a, r) in [
        ("compute", c.compute, c.max_rel_residual[0]),
        ("gather", c.gather, c.max_rel_residual[1]),
        ("scatter", c.scatter, c.max_rel_residual[2]),
        ("fetch", c.fetch, c.max_rel_residual[3]),
        ("writeback", c.writeback, c.max_rel_residual[4]),
    ] {
        let _ = writeln!(
            s,
            "{name} = {{ alpha_s = {:e}, beta_s = {:e}, max_rel_residual = {:.4} }}",
            a.alpha_s, a.beta_s, r
        );
    }
    for sh in &c.shapes {
        let pairs = |v: &[(f64, f64)]| -> String {
            v.iter()
                .map(|(b, t)| format!("[{b:?}, {t:e}]"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "\n# the step and its tail measured with {} lookup tables (e2e rows with that many use these)",
            sh.tables
        );
        let _ = writeln!(s, "[[shape]]\ntables = {}", sh.tables);
        let _ = writeln!(s, "compute_points = [{}]", pairs(&sh.compute_points));
        let _ = writeln!(s, "tail_points = [{}]", pairs(&sh.tail_points));
    }
    s
}

/// The `step_exec` a calibration file's table was fitted for ([`EAGER`] in files without it).
fn step_exec_of(v: &toml::Table) -> &str {
    v.get("step_exec").and_then(|x| x.as_str()).unwrap_or(EAGER)
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| Error::parse(path.display().to_string(), None, e.to_string()))
}

/// Reads a calibration written by [`Embcache::calibrate`].
///
/// # Errors
/// A missing or malformed file.
pub fn from_toml(path: &Path) -> Result<Calibration> {
    from_table(&read_table(path)?, path)
}

/// [`from_toml`] of a file already read (`path` names it in errors).
fn from_table(v: &toml::Table, path: &Path) -> Result<Calibration> {
    let bad = |k: &str| {
        Error::parse(
            path.display().to_string(),
            None,
            format!("missing or bad `{k}`"),
        )
    };
    let aff = |k: &str| -> Result<(super::Affine, f64)> {
        let t = v.get(k).and_then(|x| x.as_table()).ok_or_else(|| bad(k))?;
        let f = |n: &str| t.get(n).and_then(|x| x.as_float()).ok_or_else(|| bad(k));
        Ok((
            super::Affine {
                alpha_s: f("alpha_s")?,
                beta_s: f("beta_s")?,
            },
            f("max_rel_residual").unwrap_or(0.0),
        ))
    };
    let (compute, r0) = aff("compute")?;
    let (gather, r1) = aff("gather")?;
    let (scatter, r2) = aff("scatter")?;
    let (fetch, r3) = aff("fetch")?;
    let (writeback, r4) = aff("writeback")?;
    Ok(Calibration {
        compute,
        gather,
        scatter,
        fetch,
        writeback,
        overlap: v
            .get("overlap")
            .and_then(|x| x.as_float())
            .ok_or_else(|| bad("overlap"))?,
        max_rel_residual: [r0, r1, r2, r3, r4],
        compute_points: pairs(v, "compute_points"),
        gather_points: pairs(v, "gather_points"),
        scatter_points: pairs(v, "scatter_points"),
        fetch_points: pairs(v, "fetch_points"),
        writeback_points: pairs(v, "writeback_points"),
        tail_points: required_pairs(v, "tail_points").ok_or_else(|| bad("tail_points"))?,
        shapes: match v.get("shape") {
            None => Vec::new(),
            Some(a) => a
                .as_array()
                .ok_or_else(|| bad("shape"))?
                .iter()
                .map(|t| {
                    let t = t.as_table().ok_or_else(|| bad("shape"))?;
                    Ok(super::StepShape {
                        tables: t
                            .get("tables")
                            .and_then(|x| x.as_integer())
                            .and_then(|x| u32::try_from(x).ok())
                            .ok_or_else(|| bad("shape.tables"))?,
                        compute_points: pairs(t, "compute_points"),
                        tail_points: pairs(t, "tail_points"),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        },
    })
}

fn required_pairs(v: &toml::Table, key: &str) -> Option<Vec<(f64, f64)>> {
    v.contains_key(key).then(|| pairs(v, key))
}

fn pairs(v: &toml::Table, key: &str) -> Vec<(f64, f64)> {
    v.get(key)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((p.first()?.as_float()?, p.get(1)?.as_float()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Rebuilds the trace an e2e row ran on (exactly as the harness built it).
///
/// # Errors
/// Missing parameters, an unreadable trace file.
pub fn trace_of(row: &Row, origin: &Origin) -> Result<DenseTrace> {
    let p = |k: &str| -> Result<&str> {
        row.params
            .get(k)
            .ok_or_else(|| origin.err(format!("embcache e2e row needs params `{k}`")))
    };
    let batch = param_f(row, origin, "batch")? as usize;
    let n_batches = param_f(row, origin, "n_batches")? as usize;
    let t = param_f(row, origin, "tables")? as usize;
    let keep = batch * n_batches * t;
    // The lookups go straight into the dense trace (4 bytes each), not through a list of
    // accesses first (24 bytes each).
    let src: Box<dyn Iterator<Item = Result<Access>>> = if p("trace")? == "zipf" {
        let tables = trace::profile::tables(p("profile")?, param_f(row, origin, "scale")?)?;
        let spec = trace::zipf::ZipfSpec::new(
            param_f(row, origin, "zipf")?,
            tables,
            keep as u64,
            param_f(row, origin, "seed")? as u64,
        )?;
        Box::new(spec.stream())
    } else {
        let given = PathBuf::from(p("trace")?);
        let path = if given.exists() {
            given
        } else {
            let name = given.file_name().map(PathBuf::from).unwrap_or_default();
            PathBuf::from("traces").join(name)
        };
        let fmt = TraceFormat::from_path(&path)
            .ok_or_else(|| origin.err(format!("trace {}: unknown format", path.display())))?;
        Box::new(trace::open(&path, fmt)?)
    };
    let (read, failed) = (std::cell::Cell::new(0usize), std::cell::Cell::new(false));
    let stream = src.take(keep).enumerate().map(|(i, a)| {
        read.set(i + 1);
        failed.set(a.is_err());
        a.map(|a| Access {
            group: (i / t) as u64,
            ..a
        })
    });
    let built = DenseTrace::from_stream(stream, batch as u64, false, p("trace")?);
    if failed.get() {
        // The reader's error (the stream stopped there).
        return built;
    }
    if read.get() < keep {
        return Err(origin.err(format!(
            "trace {}: {} lookups, the row needs {keep}",
            p("trace")?,
            read.get()
        )));
    }
    built
}

/// One predicted point.
#[derive(Debug, Clone)]
pub struct Point {
    /// Set.
    pub set: String,
    /// Policy (or `resident`).
    pub policy: String,
    /// Window.
    pub window: String,
    /// Cache spelling.
    pub cache: String,
    /// Samples per batch.
    pub batch: u32,
    /// Measured iteration time, s.
    pub measured_s: f64,
    /// Predicted iteration time, s.
    pub predicted_s: f64,
    /// Measured batch hit rate minus the simulator's (0 when they agree).
    pub hit_rate_diff: f64,
}

fn predict_row(
    row: &Row,
    origin: &Origin,
    tr: &DenseTrace,
    cal: &Calibration,
) -> Result<(f64, f64)> {
    let pol = row
        .params
        .get("policy")
        .ok_or_else(|| origin.err("embcache e2e row needs params `policy`"))?;
    let batch = param_f(row, origin, "batch")?;
    // The step measured with this row's table count, when the micro rows have it.
    let shaped = cal.for_tables(param_f(row, origin, "tables")? as u32);
    let cal = &shaped;
    if pol == "resident" {
        let mc = move_counts(tr, PolicyKind::Lru, tr.n_rows().max(1))?;
        return Ok((predict_resident_s(cal, &mc.unique, batch), 1.0));
    }
    let window = row
        .params
        .get("window")
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let pf = row
        .params
        .get("profile_fraction")
        .and_then(|w| w.parse().ok())
        .unwrap_or(1.0);
    let kind = PolicyKind::parse(pol, window, pf)?;
    let slots = param_f(row, origin, "slots")? as usize;
    let mc = move_counts(tr, kind, slots)?;
    let u: f64 = mc.unique.iter().map(|&x| f64::from(x)).sum();
    let m: f64 = mc.misses.iter().map(|&x| f64::from(x)).sum();
    Ok((
        predict_iter_s(cal, &mc, batch, super::prefetches(kind)),
        1.0 - m / u.max(1.0),
    ))
}

/// Predicts every e2e `iter_s` row; writes `embcache-points.csv` under `req.out`.
///
/// # Errors
/// Malformed rows, unreadable traces, I/O.
pub fn validate(
    rows: &Measurements,
    cals: &BTreeMap<String, (Calibration, String)>,
    req: &ValidateRequest,
) -> Result<Report> {
    let mut traces: BTreeMap<String, DenseTrace> = BTreeMap::new();
    let mut done: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let hit_rates: BTreeMap<(String, String), f64> = rows
        .rows
        .iter()
        .filter(|(_, r)| r.kind == "e2e" && r.metric == "batch_hit_rate")
        .map(|(_, r)| ((r.set.clone(), r.params.to_string()), r.value))
        .collect();
    let mut points = Vec::new();
    for (o, r) in &rows.rows {
        if r.kind != "e2e" || r.metric != "iter_s" {
            continue;
        }
        let key: String = [
            "trace",
            "profile",
            "scale",
            "zipf",
            "seed",
            "batch",
            "n_batches",
            "tables",
        ]
        .iter()
        .map(|k| format!("{k}={};", r.params.get(k).unwrap_or("")))
        .collect();
        if !traces.contains_key(&key) {
            traces.insert(key.clone(), trace_of(r, o)?);
        }
        // The same point in another set (a hold-out repeats its calibration machine's grid)
        // has the same prediction: simulate it once.
        let point = format!("{};{}", r.params, r.batch.unwrap_or(0));
        let (pred, sim_hit) = match done.get(&point) {
            Some(&v) => v,
            None => {
                let exec = step_exec(r);
                let Some((cal, _)) = cals.get(exec) else {
                    return Err(o.err(format!(
                        "embcache e2e row with step_exec={exec}: no calibration of that step"
                    )));
                };
                let v = predict_row(r, o, &traces[&key], cal)?;
                done.insert(point, v);
                v
            }
        };
        let measured_hit = hit_rates
            .get(&(r.set.clone(), r.params.to_string()))
            .copied()
            .unwrap_or(f64::NAN);
        points.push(Point {
            set: r.set.clone(),
            policy: r.params.get("policy").unwrap_or("").to_string(),
            window: r.params.get("window").unwrap_or("").to_string(),
            cache: r.params.get("cache").unwrap_or("").to_string(),
            batch: r.batch.unwrap_or(0),
            measured_s: r.value,
            predicted_s: pred,
            hit_rate_diff: measured_hit - sim_hit,
        });
    }
    let mut csv = String::from(
        "set,policy,window,cache,batch,measured_s,predicted_s,rel_err,hit_rate_diff\n",
    );
    for p in &points {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:e},{:e},{:.6},{:e}",
            p.set,
            p.policy,
            p.window,
            p.cache,
            p.batch,
            p.measured_s,
            p.predicted_s,
            rel_err(p.predicted_s, p.measured_s),
            p.hit_rate_diff
        );
    }
    std::fs::create_dir_all(&req.out).map_err(|e| Error::io(&req.out, e))?;
    write_atomic(&req.out.join("embcache-points.csv"), csv.as_bytes())?;
    let mut out = String::new();
    for (exec, (_, source)) in cals {
        let _ = writeln!(out, "embcache: {exec} step: calibration {source}");
    }
    let mut pass = true;
    let mut summaries = Vec::new();
    let mut sets: Vec<&str> = points.iter().map(|p| p.set.as_str()).collect();
    sets.sort_unstable();
    sets.dedup();
    for set in sets {
        let ps: Vec<&Point> = points.iter().filter(|p| p.set == set).collect();
        let errs: Vec<f64> = ps
            .iter()
            .map(|p| rel_err(p.predicted_s, p.measured_s))
            .collect();
        let hits_bad = ps.iter().filter(|p| p.hit_rate_diff.abs() > 1e-9).count();
        let Some(st) = ErrorStats::from_rel_errs(&errs) else {
            continue;
        };
        let ok = req.tolerance.passes(&st) && hits_bad == 0;
        pass &= ok;
        summaries.push(SetSummary::calibrated(
            "embcache",
            set,
            st.points,
            (st.mape, st.max_abs_pct_err),
            ok,
            req,
        ));
        let _ = writeln!(
            out,
            "embcache {set}: {} points, iteration time MAPE {:.1}%, max {:.1}%; hit rates differing from the simulator: {hits_bad}; {}",
            st.points,
            100.0 * st.mape,
            100.0 * st.max_abs_pct_err,
            if ok { "pass" } else { "FAIL" }
        );
    }
    if let Some(path) = &req.record {
        record_sets(path, &req.gpu, &summaries)?;
    }
    if req.format == Format::Json {
        out = sets_json(&summaries);
    }
    Ok(Report { stdout: out, pass })
}

#[cfg(test)]
mod tests {
    use super::super::Affine;
    use super::*;
    use crate::catalog::Catalog;
    use crate::measure::Params;
    use crate::validate::Tolerance;
    use std::sync::Arc;

    /// The medians `fit` stores for an affine term measured at the micro rows' counts below.
    fn at_micro_rows(a: Affine) -> Vec<(f64, f64)> {
        [64.0, 4096.0, 262144.0]
            .iter()
            .map(|&n| (n, a.at(n)))
            .collect()
    }

    fn truth() -> Calibration {
        let aff = |alpha_s, beta_s| Affine { alpha_s, beta_s };
        Calibration {
            gather_points: at_micro_rows(aff(8e-6, 2e-10)),
            scatter_points: at_micro_rows(aff(9e-6, 3e-10)),
            fetch_points: at_micro_rows(aff(3e-5, 2e-8)),
            writeback_points: at_micro_rows(aff(4e-5, 2.5e-8)),
            compute: Affine {
                alpha_s: 1e-3,
                beta_s: 2e-7,
            },
            gather: Affine {
                alpha_s: 8e-6,
                beta_s: 2e-10,
            },
            scatter: Affine {
                alpha_s: 9e-6,
                beta_s: 3e-10,
            },
            fetch: Affine {
                alpha_s: 3e-5,
                beta_s: 2e-8,
            },
            writeback: Affine {
                alpha_s: 4e-5,
                beta_s: 2.5e-8,
            },
            overlap: 0.75,
            max_rel_residual: [0.0; 5],
            compute_points: vec![],
            // What `fit` derives from the synchronized step below: 1 ms more than compute at
            // 4096 samples.
            tail_points: vec![(4096.0, 1e-3)],
            shapes: vec![],
        }
    }

    fn origin(line: u64) -> Origin {
        Origin {
            file: Arc::from(Path::new("t.csv")),
            line,
        }
    }

    fn row(kind: &str, metric: &str, value: f64, batch: Option<u32>, params: Params) -> Row {
        Row {
            technique: "embcache".into(),
            set: "s".into(),
            kind: kind.into(),
            model: "m".into(),
            batch,
            params,
            metric: metric.into(),
            value,
            repeats: 3,
            unit: "s".into(),
            ..Row::default()
        }
    }

    /// Micro rows of `t`, and e2e rows whose times are `t`'s predictions (scaled by `scale`).
    fn rows(t: &Calibration, scale: f64) -> Measurements {
        let mut v = Vec::new();
        for (op, a) in [
            ("gather", t.gather),
            ("scatter", t.scatter),
            ("fetch_path", t.fetch),
            ("writeback_path", t.writeback),
        ] {
            for n in [64.0, 4096.0, 262144.0] {
                let p = Params::new().with("op", op).with("rows", n);
                v.push(row("fetch", &format!("{op}_s"), a.at(n), None, p));
            }
        }
        for b in [8u32, 4096] {
            let p = Params::new().with("op", "compute");
            v.push(row(
                "dense",
                "compute_s",
                t.compute.at(f64::from(b)),
                Some(b),
                p,
            ));
        }
        let p = Params::new().with("op", "overlap").with("rows", 4096);
        v.push(row(
            "dense",
            "overlap_fraction",
            t.overlap,
            Some(1024),
            p.clone(),
        ));
        let synced = t.compute.at(4096.0) + t.tail_s(4096.0);
        v.push(row("dense", "overlap_compute_s", synced, Some(4096), p));
        // e2e: a generated trace, two policies.
        let base = || {
            Params::new()
                .with("trace", "zipf")
                .with("profile", "criteo-kaggle")
                .with("scale", 0.0001)
                .with("zipf", 1.05)
                .with("seed", 3)
                .with("batch", 16)
                .with("tables", 26)
                .with("n_batches", 8)
        };
        let probe = row("e2e", "iter_s", 0.0, Some(16), base().with("policy", "lru"));
        let tr = trace_of(&probe, &origin(1)).unwrap();
        let wss = crate::embcache::policy::lookahead::Lookahead::min_feasible_rows(&tr);
        for (pol, w, slots) in [
            ("lru", "", 40usize),
            ("lookahead", "2", wss),
            ("resident", "", 0),
        ] {
            let p = base()
                .with("policy", pol)
                .with("window", w)
                .with("slots", slots);
            let r = row("e2e", "iter_s", 0.0, Some(16), p.clone());
            let (pred, hit) = predict_row(&r, &origin(1), &tr, t).unwrap();
            v.push(row("e2e", "iter_s", pred * scale, Some(16), p.clone()));
            v.push(row("e2e", "batch_hit_rate", hit, Some(16), p));
        }
        Measurements {
            technique: "embcache".into(),
            rows: v
                .into_iter()
                .enumerate()
                .map(|(i, r)| (origin(i as u64 + 2), r))
                .collect(),
            sources: vec![],
        }
    }

    fn vreq<'a>(cat: &'a Catalog, out: &Path) -> ValidateRequest<'a> {
        ValidateRequest {
            catalog: cat,
            gpu: "h200".into(),
            out: out.to_path_buf(),
            tolerance: Tolerance {
                mape: 0.10,
                max_abs_pct_err: 0.15,
            },
            costs: "roofline".into(),
            record: None,
            no_plots: true,
            format: Default::default(),
        }
    }

    /// An e2e row's trace from a file: its first `batch × n_batches × tables` lookups, grouped
    /// `tables` to a sample; a file too short (or empty) is an error giving both counts.
    #[test]
    fn trace_of_takes_the_rows_lookups_and_names_a_short_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ids.txt");
        std::fs::write(&path, "1\n2\n3\n1\n4\n2\n5\n1\n6\n7\n").unwrap();
        let empty = d.path().join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let params = |file: &Path, n_batches: u32| {
            Params::new()
                .with("trace", file.display())
                .with("batch", 2)
                .with("tables", 2)
                .with("n_batches", n_batches)
        };
        let tr = trace_of(
            &row("e2e", "iter_s", 0.0, None, params(&path, 2)),
            &origin(1),
        )
        .unwrap();
        // 2 batches × 2 samples × 2 tables: lookups 1 2 3 1 | 4 2 5 1.
        assert_eq!((tr.len(), tr.n_batches(), tr.n_rows()), (8, 2, 5));
        for (file, n) in [(&path, 3), (&empty, 1)] {
            let e = trace_of(
                &row("e2e", "iter_s", 0.0, None, params(file, n)),
                &origin(1),
            )
            .unwrap_err()
            .to_string();
            let have = if file == &path { 10 } else { 0 };
            assert!(
                e.contains(&format!("{have} lookups, the row needs {}", 4 * n)),
                "{e}"
            );
        }
    }

    #[test]
    fn step_shapes_round_trip_through_the_calibration_file() {
        let mut t = truth();
        t.shapes = vec![
            super::super::StepShape {
                tables: 2,
                compute_points: vec![(50.0, 4.3e-3)],
                tail_points: vec![(50.0, 2e-4)],
            },
            super::super::StepShape {
                tables: 26,
                compute_points: vec![(256.0, 3.5e-3), (4096.0, 5.4e-3)],
                tail_points: vec![],
            },
        ];
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, to_toml(&t, "h200", "test", 1, EAGER)).unwrap();
        let back = from_toml(&p).unwrap();
        assert_eq!(back.shapes, t.shapes);
        assert_eq!(back.for_tables(2).compute_s(50.0), 4.3e-3);
        // A file without shapes reads back with none.
        t.shapes.clear();
        std::fs::write(&p, to_toml(&t, "h200", "test", 1, EAGER)).unwrap();
        assert!(from_toml(&p).unwrap().shapes.is_empty());
    }

    /// Rows of `m` moved to set `set`, every row with `step_exec=graphs` when `graphs`.
    fn as_set(m: &Measurements, set: &str, graphs: bool) -> Vec<(Origin, Row)> {
        m.rows
            .iter()
            .map(|(o, r)| {
                let mut r = r.clone();
                r.set = set.into();
                if graphs {
                    r.params = r.params.clone().with("step_exec", GRAPHS);
                }
                (o.clone(), r)
            })
            .collect()
    }

    /// An eager and a graph-replayed machine side by side: each e2e set is predicted by the
    /// micro set of its own step (here the graph step is 3x cheaper), never by the pooled rows.
    #[test]
    fn each_step_execution_is_predicted_by_its_own_micro_set() {
        let cat = Catalog::embedded().unwrap();
        let d = tempfile::tempdir().unwrap();
        let eager = truth();
        let mut graphs = truth();
        graphs.compute = Affine {
            alpha_s: eager.compute.alpha_s / 3.0,
            beta_s: eager.compute.beta_s / 3.0,
        };
        let mut all = rows(&eager, 1.0);
        let g = rows(&graphs, 1.0);
        all.rows = as_set(&all, "eager-set", false);
        all.rows.extend(as_set(&g, "graph-set", true));
        let execs = micro_execs(&all);
        assert_eq!(execs["eager-set"], EAGER);
        assert_eq!(execs["graph-set"], GRAPHS);
        assert_eq!(micro_points_of(&all, &execs, GRAPHS).unwrap().1.len(), 16);
        let r = Embcache
            .validate(all.clone(), &vreq(&cat, d.path()))
            .unwrap();
        assert!(r.pass, "{}", r.stdout);
        assert!(
            r.stdout.contains(
                "graphs step: calibration fitted from 16 micro points of the input (the newest graphs micro set, graph-set)"
            ),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout.contains(
                "eager step: calibration fitted from 16 micro points of the input (the newest eager micro set, eager-set)"
            ),
            "{}",
            r.stdout
        );
        assert_eq!(
            r.stdout.matches("iteration time MAPE 0.0%").count(),
            2,
            "{}",
            r.stdout
        );
        // An older graph-step micro set of another machine (2x the step) is history: the
        // newest set by date is the calibration.
        let mut old = rows(&truth(), 1.0);
        old.rows = as_set(&old, "graph-set-old", true)
            .into_iter()
            .filter(|(_, r)| r.kind != "e2e")
            .map(|(o, mut r)| {
                r.provenance.date = "2026-01-01T00:00:00Z".into();
                if r.metric == "compute_s" || r.metric == "overlap_compute_s" {
                    r.value *= 2.0;
                }
                (o, r)
            })
            .collect();
        let mut with_old = all.clone();
        for (_, r) in with_old.rows.iter_mut() {
            r.provenance.date = "2026-06-01T00:00:00Z".into();
        }
        with_old.rows.extend(old.rows);
        let execs = micro_execs(&with_old);
        assert_eq!(
            newest_micro_set(&with_old, &execs, GRAPHS).as_deref(),
            Some("graph-set")
        );
        let r = Embcache.validate(with_old, &vreq(&cat, d.path())).unwrap();
        assert!(r.pass, "{}", r.stdout);
        // Pooled (the graph rows' tag dropped), the graph set is mispredicted.
        let mut pooled = rows(&eager, 1.0);
        pooled.rows = as_set(&pooled, "eager-set", false);
        pooled.rows.extend(as_set(&g, "graph-set", false));
        let r = Embcache.validate(pooled, &vreq(&cat, d.path())).unwrap();
        assert!(!r.pass, "{}", r.stdout);
    }

    /// Without micro rows the committed calibration file is used, but only for the step it was
    /// fitted for (h200's: the graph-replayed step): eager e2e rows are refused in one line.
    #[test]
    fn the_calibration_file_serves_only_its_own_step_execution() {
        let cat = Catalog::embedded().unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = default_path("h200");
        assert_eq!(step_exec_of(&read_table(&p).unwrap()), GRAPHS);
        let m = rows(&truth(), 1.0);
        let e2e_only = |graphs: bool| Measurements {
            technique: m.technique.clone(),
            rows: as_set(&m, "s", graphs)
                .into_iter()
                .filter(|(_, r)| r.kind == "e2e")
                .collect(),
            sources: m.sources.clone(),
        };
        let e = Embcache
            .validate(e2e_only(false), &vreq(&cat, d.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("step_exec=eager") && e.contains("calibrates the graphs step"),
            "{e}"
        );
        let r = Embcache
            .validate(e2e_only(true), &vreq(&cat, d.path()))
            .unwrap();
        assert!(
            r.stdout
                .contains("graphs step: calibration models/calibration/h200-embcache.toml"),
            "{}",
            r.stdout
        );
    }

    #[test]
    fn calibrate_then_validate_round_trips_on_synthetic_rows() {
        let cat = Catalog::embedded().unwrap();
        let d = tempfile::tempdir().unwrap();
        let t = truth();
        let m = rows(&t, 1.0);
        let pts = micro_points(&m).unwrap();
        assert_eq!(pts.len(), 12 + 2 + 1 + 1);
        let r = Embcache.validate(m.clone(), &vreq(&cat, d.path())).unwrap();
        assert!(r.pass, "{}", r.stdout);
        assert!(
            r.stdout.contains("3 points, iteration time MAPE 0.0%"),
            "{}",
            r.stdout
        );
        let csv = std::fs::read_to_string(d.path().join("embcache-points.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4);
        // 20% slower measurements: the set fails the 10% MAPE bound and says so.
        let r = Embcache
            .validate(rows(&t, 1.2), &vreq(&cat, d.path()))
            .unwrap();
        assert!(!r.pass && r.stdout.contains("FAIL"), "{}", r.stdout);
        // The calibration file reads back as fitted.
        let path = d.path().join("cal.toml");
        let creq = CalibrateRequest {
            catalog: &cat,
            gpu: "h200".into(),
            out: Some(path.clone()),
            dry_run: false,
            robust: false,
            format: Default::default(),
            files: 1,
            command: "test".into(),
        };
        Embcache.calibrate(m, &creq).unwrap();
        // `--out` names specdec's file: embcache writes `<gpu>-embcache.toml` beside it.
        assert!(!path.exists());
        let back = from_toml(&d.path().join("h200-embcache.toml")).unwrap();
        assert!((back.fetch.beta_s / t.fetch.beta_s - 1.0).abs() < 1e-9);
        assert_eq!(back.overlap, t.overlap);
        assert_eq!(back.compute_points.len(), 2);
        assert!((back.compute_s(16.0) / t.compute.at(16.0) - 1.0).abs() < 1e-9);
        assert_eq!(back.tail_points.len(), 1);
        assert!((back.tail_s(2048.0) / 0.5e-3 - 1.0).abs() < 1e-9);
        // The row paths' medians read back, and price rows as the truth does.
        assert_eq!(back.fetch_points, t.fetch_points);
        assert_eq!(back.writeback_points, t.writeback_points);
        assert_eq!(back.gather_points, t.gather_points);
        assert_eq!(back.scatter_points, t.scatter_points);
        for n in [1.0, 64.0, 1000.0, 300000.0] {
            assert!((back.fetch_s(n) / t.fetch_s(n) - 1.0).abs() < 1e-12);
        }
    }
}
