//! specdec's measurement rows (`validation/results/<set>.csv`, read through the contract,
//! [`crate::measure`], `docs/measurements.md`) as the typed points calibration and validation
//! consume: a `forward` row is one forward's median latency (the calibration grid),
//! `acceptance` rows are a speculative run's survival curve S(i), and an `e2e` row is
//! end-to-end decoding throughput (validation only).
//!
//! Files are read record by record (memory holds the typed points, never the file text), and
//! every problem is a one-line [`Error::Parse`] naming the file and line.
//!
//! **Separation guarantee.** [`ForwardPoint`]s can only be built from `forward` rows (their
//! constructor is private to this module and checks the kind), and the fit in
//! [`super::fit`] accepts nothing else; so no end-to-end or acceptance number can enter a
//! calibrated parameter.

use crate::error::{Error, Result};
pub use crate::measure::{Origin, Provenance, Source};
use crate::specdec::{Acceptance, Shape};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The columns of the committed specdec files (the contract's columns before `params`).
pub const HEADER: [&str; 21] = crate::measure::LEGACY_COLUMNS;

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One forward's latency (calibration input).
    Forward,
    /// One position of a survival curve.
    Acceptance,
    /// End-to-end decoding throughput (validation only).
    E2e,
}

impl Kind {
    /// The name used in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Forward => "forward",
            Kind::Acceptance => "acceptance",
            Kind::E2e => "e2e",
        }
    }
}

/// One parsed, range-checked row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// File and line.
    pub origin: Origin,
    /// Technique (`specdec`).
    pub technique: String,
    /// Measurement set.
    pub set: String,
    /// Kind of row.
    pub kind: Kind,
    /// Model (target for speculative rows).
    pub model: String,
    /// Draft (`none`, a catalog model, `layerskip:E=<n>`, `synthetic`), when given.
    pub draft: Option<String>,
    /// Lookahead γ, when given.
    pub gamma: Option<u32>,
    /// Sequences per batch.
    pub batch: Option<u32>,
    /// New tokens per sequence (per forward, or generated per sequence for e2e).
    pub new_tokens: Option<u32>,
    /// Tokens already in the KV cache (mean during decoding for e2e).
    pub context_tokens: Option<f64>,
    /// Survival position i (1..=γ) for acceptance rows.
    pub position: Option<u32>,
    /// Metric name (`forward_s`, `survival`, `tokens_per_s`).
    pub metric: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// Timed repeats (or observed (sequence, step) pairs for acceptance).
    pub repeats: u64,
    /// (p90 − p10)/median, fraction, when given.
    pub spread: Option<f64>,
    /// Unit (`s`, `fraction`, `tokens/s`).
    pub unit: String,
    /// Provenance.
    pub provenance: Provenance,
}

impl Row {
    /// A contract row checked as a specdec row: technique `specdec`, a specdec kind, a value > 0
    /// for every kind but acceptance, and at least one new token in a forward.
    ///
    /// # Errors
    /// One-line [`Error::Parse`] at `origin` naming the column, the value and what is allowed.
    pub fn from_measured(origin: Origin, r: crate::measure::Row) -> Result<Row> {
        if r.technique != "specdec" {
            return Err(origin.err(format!(
                "technique = '{}': this reader takes specdec rows only (`perfcast calibrate` and `validate` route each technique's rows to it)",
                r.technique
            )));
        }
        let kind = match r.kind.as_str() {
            "forward" => Kind::Forward,
            "acceptance" => Kind::Acceptance,
            "e2e" => Kind::E2e,
            other => {
                return Err(origin.err(format!(
                    "kind = '{other}': must be forward, acceptance or e2e"
                )))
            }
        };
        if kind != Kind::Acceptance && r.value <= 0.0 {
            return Err(origin.err(format!(
                "value = {}: a {} measurement must be > 0",
                r.value,
                kind.as_str()
            )));
        }
        if kind == Kind::Forward && r.new_tokens == Some(0) {
            return Err(
                origin.err("column 'new_tokens' = '0': a forward processes at least one token")
            );
        }
        Ok(Row {
            origin,
            technique: r.technique,
            set: r.set,
            kind,
            model: r.model,
            draft: r.draft,
            gamma: r.gamma,
            batch: r.batch,
            new_tokens: r.new_tokens,
            context_tokens: r.context_tokens,
            position: r.position,
            metric: r.metric,
            value: r.value,
            repeats: r.repeats,
            spread: r.spread,
            unit: r.unit,
            provenance: r.provenance,
        })
    }
}

/// A forward-latency measurement: the only input the latency fit accepts.
///
/// The private field makes [`ForwardPoint::from_row`] (which checks `kind = forward`) the only
/// constructor outside this module: `#[non_exhaustive]` would still allow struct literals
/// elsewhere in the crate.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardPoint {
    /// File and line.
    pub origin: Origin,
    /// Measurement set.
    pub set: String,
    /// Catalog model name (without any `@layers=` suffix).
    pub model: String,
    /// For a partial forward (`<model>@layers=A-B`), layers [A, B) without the LM head.
    pub layers: Option<(u32, u32)>,
    /// Shape of the forward.
    pub shape: Shape,
    /// Median measured time, seconds.
    pub measured_s: f64,
    /// Timed repeats.
    pub repeats: u64,
    /// Spread (p90 − p10)/median.
    pub spread: Option<f64>,
    _only_from_forward_rows: (),
}

impl ForwardPoint {
    /// Converts a `forward` row.
    ///
    /// # Errors
    /// Any other kind (this is what keeps e2e data out of the fit), a missing shape field, or a
    /// malformed `@layers=A-B` suffix.
    pub fn from_row(r: &Row) -> Result<Self> {
        Self::from_row_metric(r, "forward_s")
    }

    /// Converts a `forward` row whose metric is `metric` (`forward_s` or `forward_sync_s`).
    ///
    /// # Errors
    /// As [`ForwardPoint::from_row`].
    pub fn from_row_metric(r: &Row, metric: &str) -> Result<Self> {
        if r.kind != Kind::Forward {
            return Err(r.origin.err(format!("a {} row cannot be used as a forward measurement (only kind=forward rows are fitted)", r.kind.as_str())));
        }
        need_metric(r, metric, "s")?;
        let (model, layers) = match r.model.split_once("@layers=") {
            None => (r.model.clone(), None),
            Some((m, range)) => {
                let parsed = range.split_once('-').and_then(|(a, b)| {
                    Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
                });
                match parsed {
                    Some((a, b)) if a < b => (m.to_string(), Some((a, b))),
                    _ => {
                        return Err(r.origin.err(format!(
                        "model = '{}': the layer range must be '@layers=A-B' with integers A < B",
                        r.model
                    )))
                    }
                }
            }
        };
        Ok(ForwardPoint {
            origin: r.origin.clone(),
            set: r.set.clone(),
            model,
            layers,
            shape: Shape {
                batch: f64::from(need(r, "batch", r.batch)?),
                new_tokens: f64::from(need(r, "new_tokens", r.new_tokens)?),
                context_tokens: need(r, "context_tokens", r.context_tokens)?,
            },
            measured_s: r.value,
            repeats: r.repeats,
            spread: r.spread,
            _only_from_forward_rows: (),
        })
    }
}

/// Key of a speculative run: (set, target, draft key, γ, batch). The draft key is the draft
/// column, except for `synthetic` rows, where the draft model named in the command
/// (`--draft X`) is appended (`synthetic:X`) so runs with different drafts do not mix.
pub type RunKey = (String, String, String, u32, u32);

/// The drafts named in a command line: `--draft X`, `--draft=X`, `--draft-model X`, or the
/// comma-separated list of `--drafts a,b,c` (the harness's `perfcast-gpu e2e`).
pub fn drafts_from_command(cmd: &str) -> Vec<String> {
    let toks: Vec<&str> = cmd.split_whitespace().collect();
    let clean = |v: &str| -> Vec<String> {
        v.trim_matches(|c| c == '\'' || c == '"')
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    for (i, t) in toks.iter().enumerate() {
        for flag in ["--draft", "--drafts", "--draft-model"] {
            if *t == flag {
                if let Some(v) = toks.get(i + 1) {
                    return clean(v);
                }
            } else if let Some(v) = t.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return clean(v);
            }
        }
    }
    Vec::new()
}

/// Which draft of a multi-draft synthetic command the rows belong to, from the harness's row
/// order: per batch, each draft's γ groups (acceptance rows, position 1 first, then the e2e row)
/// in increasing γ; a γ that does not increase starts the next draft.
#[derive(Debug, Default, Clone)]
struct SyntheticCursor {
    batch: Option<u32>,
    index: usize,
    gamma: Option<u32>,
}

impl SyntheticCursor {
    fn group_start(&mut self, batch: u32, gamma: u32) {
        if self.batch != Some(batch) {
            *self = SyntheticCursor {
                batch: Some(batch),
                index: 0,
                gamma: Some(gamma),
            };
        } else {
            if self.gamma.is_some_and(|g| gamma <= g) {
                self.index += 1;
            }
            self.gamma = Some(gamma);
        }
    }
}

/// An end-to-end throughput measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct E2ePoint {
    /// File and line.
    pub origin: Origin,
    /// Measurement set.
    pub set: String,
    /// Target model.
    pub model: String,
    /// Draft (`none` for autoregressive decoding).
    pub draft: String,
    /// Lookahead (0 for autoregressive).
    pub gamma: u32,
    /// Sequences per batch.
    pub batch: u32,
    /// Mean context tokens during decoding.
    pub context_tokens: f64,
    /// Tokens generated per sequence.
    pub new_tokens: u32,
    /// Measured tokens/s over the whole batch (never used by the predictor).
    pub measured_tokens_per_s: f64,
    /// Timed repeats.
    pub repeats: u64,
    /// Spread (p90 − p10)/median.
    pub spread: Option<f64>,
    /// The command that produced the row.
    pub command: String,
    /// The drafter that ran: the draft column, or for `synthetic` rows the draft model (or
    /// `layerskip:E=n`) the command ran.
    pub draft_run: String,
}

impl E2ePoint {
    /// The key of the survival curve measured with this point.
    pub fn run_key(&self) -> RunKey {
        (
            self.set.clone(),
            self.model.clone(),
            run_draft_key(&self.draft, &self.draft_run),
            self.gamma,
            self.batch,
        )
    }
}

fn run_draft_key(draft: &str, run: &str) -> String {
    if draft == run {
        draft.to_string()
    } else {
        format!("{draft}:{run}")
    }
}

/// A measured survival curve S(1..=γ). Several runs with the same key (e.g. the same
/// speculative configuration at several contexts) are pooled, each weighted by its observed
/// (sequence, step) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// File and line of its first row.
    pub origin: Origin,
    /// Σ repeats·S(i) and Σ repeats by position i = 1..=γ (index i − 1).
    pub sums: Vec<(f64, u64)>,
}

impl Curve {
    fn new(origin: Origin, gamma: u32) -> Self {
        Curve {
            origin,
            sums: vec![(0.0, 0); gamma as usize],
        }
    }

    fn add(&mut self, pos: u32, value: f64, repeats: u64) {
        let slot = &mut self.sums[pos as usize - 1];
        slot.0 += value * repeats as f64;
        slot.1 += repeats;
    }

    /// (sequence, step) pairs observed (smallest over positions).
    pub fn observations(&self) -> u64 {
        self.sums.iter().map(|s| s.1).min().unwrap_or(0)
    }

    /// The validated (pooled) survival curve.
    ///
    /// # Errors
    /// A missing position or an invalid curve (outside [0, 1] or increasing), naming the file.
    pub fn acceptance(&self) -> Result<Acceptance> {
        let mut s = Vec::with_capacity(self.sums.len());
        for (i, (sum, w)) in self.sums.iter().enumerate() {
            if *w == 0 {
                return Err(self
                    .origin
                    .err(format!("survival curve has no row for position {}", i + 1)));
            }
            s.push(sum / *w as f64);
        }
        Acceptance::survival(s).map_err(|e| self.origin.err(format!("survival curve: {e}")))
    }
}

/// Everything read from a set of results files, split by kind.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Forward-latency points (calibration input).
    pub forward: Vec<ForwardPoint>,
    /// Forward latencies timed between two device synchronizations (`forward_sync_s`, the
    /// harness's second timing of each grid point); not fitted, kept for comparison.
    pub forward_sync: Vec<ForwardPoint>,
    /// Survival curves by run (pooled over contexts).
    pub curves: BTreeMap<RunKey, Curve>,
    /// Measured speculation rounds of a run's static batch (mean over repeats of the rounds the
    /// batch ran until its slowest sequence had `new_tokens`): an acceptance outcome, no time.
    pub rounds: BTreeMap<RunKey, f64>,
    /// Survival curves by run and context, for acceptance rows that state their context
    /// (key: the context's `f64::to_bits`).
    pub curves_at_context: BTreeMap<(RunKey, u64), Curve>,
    /// End-to-end points.
    pub e2e: Vec<E2ePoint>,
    /// The files read.
    pub sources: Vec<Source>,
    cursors: BTreeMap<(Arc<Path>, String), SyntheticCursor>,
    /// Distinct GPU names in the provenance columns.
    pub gpus: Vec<String>,
}

impl Dataset {
    /// Reads and checks `paths` (in order).
    ///
    /// # Errors
    /// I/O errors, and one-line [`Error::Parse`] errors naming file and line for any malformed
    /// row, duplicate survival position, or e2e point without its survival curve.
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut ds = Dataset::default();
        for p in paths {
            let mut rows = 0u64;
            let src = crate::measure::for_each_row(p, |o, r| {
                rows += 1;
                ds.add(Row::from_measured(o, r)?)
            })?;
            ds.sources.push(Source { rows, ..src });
        }
        ds.finish()
    }

    /// The dataset of specdec rows already read (routed by [`crate::measure::read_by_technique`]).
    ///
    /// # Errors
    /// As [`Dataset::load`].
    pub fn from_measurements(m: crate::measure::Measurements) -> Result<Self> {
        let mut ds = Dataset {
            sources: m.sources,
            ..Dataset::default()
        };
        for (o, r) in m.rows {
            ds.add(Row::from_measured(o, r)?)?;
        }
        ds.finish()
    }

    fn finish(self) -> Result<Self> {
        let ds = self;
        for e in &ds.e2e {
            if e.gamma > 0 && ds.curve_for(e).is_none() {
                return Err(e.origin.err(format!(
                    "e2e point (set {}, model {}, draft {}, gamma {}, batch {}) has no matching acceptance rows",
                    e.set, e.model, e.draft, e.gamma, e.batch
                )));
            }
        }
        for c in ds.curves.values().chain(ds.curves_at_context.values()) {
            c.acceptance()?;
        }
        Ok(ds)
    }

    /// Checks that every GPU named in the provenance columns is `gpu` (its catalog name appears
    /// in the `nvidia-smi` name, case and spaces ignored); empty names are not checked.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the mismatching GPU.
    pub fn check_gpu(&self, gpu: &crate::catalog::Gpu) -> Result<()> {
        let norm = |s: &str| s.to_ascii_lowercase().replace([' ', '-', '_'], "");
        let want = norm(&gpu.name);
        for g in self.gpus.iter().filter(|g| !g.trim().is_empty()) {
            if !norm(g).contains(&want) {
                return Err(Error::range(
                    "gpu (results provenance)",
                    g,
                    format!("the GPU given with --gpu ({}, {})", gpu.name, gpu.full_name),
                ));
            }
        }
        Ok(())
    }

    /// The survival curve measured with `e`: the one at its context when the acceptance rows
    /// state contexts and one matches, else the run's curve pooled over contexts.
    pub fn curve_for(&self, e: &E2ePoint) -> Option<&Curve> {
        self.curves_at_context
            .get(&(e.run_key(), e.context_tokens.to_bits()))
            .or_else(|| self.curves.get(&e.run_key()))
    }

    /// The `*.csv` files of `dir`, sorted by name.
    ///
    /// # Errors
    /// [`Error::Io`] when `dir` cannot be read.
    pub fn csv_files(dir: &Path) -> Result<Vec<PathBuf>> {
        crate::measure::csv_files(dir)
    }

    /// The drafter a row's run used (see [`E2ePoint::draft_run`]).
    fn draft_run(&self, r: &Row, draft: &str, batch: u32, gamma: u32) -> Result<String> {
        if draft != "synthetic" {
            return Ok(draft.to_string());
        }
        let drafts = drafts_from_command(&r.provenance.command);
        let index = match drafts.len() {
            0 => return Err(r.origin.err("draft = 'synthetic': the command column names no draft that was run (--draft <model> or --drafts a,b)")),
            1 => 0,
            _ => {
                let c = self.cursors.get(&(r.origin.file.clone(), r.provenance.command.clone()));
                match c {
                    Some(c) if c.batch == Some(batch) && c.gamma == Some(gamma) => c.index,
                    _ => return Err(r.origin.err(format!("draft = 'synthetic' with several --drafts: cannot tell which one ran this row (batch {batch}, gamma {gamma}) from the row order"))),
                }
            }
        };
        drafts.get(index).cloned().ok_or_else(|| {
            r.origin.err(format!(
                "draft = 'synthetic': row order implies draft #{} but the command names {} ({})",
                index + 1,
                drafts.len(),
                drafts.join(",")
            ))
        })
    }

    /// The run an acceptance row belongs to (see [`RunKey`]).
    fn run_key(&self, r: &Row, draft: &str, batch: u32, gamma: u32) -> Result<RunKey> {
        let run = self.draft_run(r, draft, batch, gamma)?;
        Ok((
            r.set.clone(),
            r.model.clone(),
            run_draft_key(draft, &run),
            gamma,
            batch,
        ))
    }

    fn add(&mut self, r: Row) -> Result<()> {
        if !self.gpus.contains(&r.provenance.gpu) {
            self.gpus.push(r.provenance.gpu.clone());
        }
        match r.kind {
            Kind::Forward if r.metric == "forward_sync_s" => self
                .forward_sync
                .push(ForwardPoint::from_row_metric(&r, "forward_sync_s")?),
            Kind::Forward => self.forward.push(ForwardPoint::from_row(&r)?),
            Kind::Acceptance if r.metric == "rounds" || r.metric == "seq_rounds" => {
                need_metric(&r, &r.metric, "rounds")?;
                let draft = need(&r, "draft", r.draft.clone())?;
                let gamma = need(&r, "gamma", r.gamma)?;
                let batch = need(&r, "batch", r.batch)?;
                if r.value.is_nan() || r.value < 1.0 {
                    return Err(r
                        .origin
                        .err(format!("value = {}: a round count is >= 1", r.value)));
                }
                if r.metric == "rounds" {
                    let key = self.run_key(&r, &draft, batch, gamma)?;
                    if self.rounds.insert(key, r.value).is_some() {
                        return Err(r.origin.err("duplicate rounds row for this run"));
                    }
                }
            }
            Kind::Acceptance => {
                need_metric(&r, "survival", "fraction")?;
                let draft = need(&r, "draft", r.draft.clone())?;
                let gamma = need(&r, "gamma", r.gamma)?;
                let batch = need(&r, "batch", r.batch)?;
                let pos = need(&r, "position", r.position)?;
                if gamma == 0 || pos == 0 || pos > gamma {
                    return Err(r
                        .origin
                        .err(format!("position = {pos}: must be in [1, gamma = {gamma}]")));
                }
                if !(0.0..=1.0).contains(&r.value) {
                    return Err(r.origin.err(format!(
                        "value = {}: a survival fraction must be in [0, 1]",
                        r.value
                    )));
                }
                if pos == 1 && draft == "synthetic" {
                    self.cursors
                        .entry((r.origin.file.clone(), r.provenance.command.clone()))
                        .or_default()
                        .group_start(batch, gamma);
                }
                let key = self.run_key(&r, &draft, batch, gamma)?;
                if let Some(ctx) = r.context_tokens {
                    self.curves_at_context
                        .entry((key.clone(), ctx.to_bits()))
                        .or_insert_with(|| Curve::new(r.origin.clone(), gamma))
                        .add(pos, r.value, r.repeats);
                }
                self.curves
                    .entry(key)
                    .or_insert_with(|| Curve::new(r.origin.clone(), gamma))
                    .add(pos, r.value, r.repeats);
            }
            Kind::E2e => {
                need_metric(&r, "tokens_per_s", "tokens/s")?;
                let draft = need(&r, "draft", r.draft.clone())?;
                let gamma = need(&r, "gamma", r.gamma)?;
                if (draft == "none") != (gamma == 0) {
                    return Err(r.origin.err(format!("draft = '{draft}', gamma = {gamma}: autoregressive points have draft 'none' and gamma 0, speculative ones gamma >= 1")));
                }
                let batch = need(&r, "batch", r.batch)?;
                let draft_run = self.draft_run(&r, &draft, batch, gamma)?;
                self.e2e.push(E2ePoint {
                    origin: r.origin.clone(),
                    set: r.set.clone(),
                    model: r.model.clone(),
                    draft,
                    gamma,
                    batch,
                    context_tokens: need(&r, "context_tokens", r.context_tokens)?,
                    new_tokens: need(&r, "new_tokens", r.new_tokens)?,
                    measured_tokens_per_s: r.value,
                    repeats: r.repeats,
                    spread: r.spread,
                    command: r.provenance.command.clone(),
                    draft_run,
                });
            }
        }
        Ok(())
    }
}

fn need<T>(r: &Row, col: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| {
        r.origin.err(format!(
            "column '{col}' is empty: a {} row needs it",
            r.kind.as_str()
        ))
    })
}

fn need_metric(r: &Row, metric: &str, unit: &str) -> Result<()> {
    if r.metric != metric || r.unit != unit {
        return Err(r.origin.err(format!(
            "metric = '{}', unit = '{}': a {} row has metric '{metric}' in unit '{unit}'",
            r.metric,
            r.unit,
            r.kind.as_str()
        )));
    }
    Ok(())
}

/// Test-only constructors.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A forward point built directly (unit tests of the fit).
    pub(crate) fn forward_point(
        model: &str,
        layers: Option<(u32, u32)>,
        b: f64,
        n: f64,
        c: f64,
        measured_s: f64,
    ) -> ForwardPoint {
        ForwardPoint {
            origin: Origin {
                file: Arc::from(Path::new("test.csv")),
                line: 2,
            },
            set: "test".into(),
            model: model.into(),
            layers,
            shape: Shape {
                batch: b,
                new_tokens: n,
                context_tokens: c,
            },
            measured_s,
            repeats: 1,
            spread: None,
            _only_from_forward_rows: (),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "technique,set,kind,model,draft,gamma,batch,new_tokens,context_tokens,position,metric,value,repeats,spread,unit,date,gpu,driver,cuda,commit,command\n";
    const PROV: &str = "2026-11-29T04:00:00Z,NVIDIA H200,580.1,13.0,abc,perfcast-gpu x";

    fn load(body: &str) -> Result<Dataset> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.csv");
        std::fs::write(&p, format!("{H}{body}")).unwrap();
        Dataset::load(&[p])
    }

    #[test]
    fn reads_all_kinds_and_pairs_curves() {
        let body = format!(
            "specdec,s,forward,llama-3.2-1b,,,4,2,100,,forward_s,0.01,10,0.02,s,{PROV}\n\
             specdec,s,acceptance,llama-3.2-1b,tinyllama-1.1b,2,4,,,1,survival,0.8,100,,fraction,{PROV}\n\
             specdec,s,acceptance,llama-3.2-1b,tinyllama-1.1b,2,4,,,2,survival,0.5,100,,fraction,{PROV}\n\
             specdec,s,e2e,llama-3.2-1b,tinyllama-1.1b,2,4,128,300,,tokens_per_s,900,5,0.01,tokens/s,{PROV}\n\
             specdec,s,e2e,llama-3.2-1b,none,0,4,128,300,,tokens_per_s,500,5,,tokens/s,{PROV}\n"
        );
        let ds = load(&body).unwrap();
        assert_eq!(ds.forward.len(), 1);
        assert_eq!(
            ds.forward[0].shape,
            Shape {
                batch: 4.0,
                new_tokens: 2.0,
                context_tokens: 100.0
            }
        );
        assert_eq!(ds.e2e.len(), 2);
        let c = ds.curve_for(&ds.e2e[0]).unwrap();
        assert_eq!(c.acceptance().unwrap().expected_tokens(2), 2.3);
        assert_eq!(ds.sources[0].rows, 5);
        assert_eq!(ds.sources[0].sha256.len(), 64);
    }

    #[test]
    fn e2e_rows_can_never_become_forward_points() {
        let r = Row {
            origin: Origin {
                file: Arc::from(Path::new("x.csv")),
                line: 2,
            },
            technique: "specdec".into(),
            set: "s".into(),
            kind: Kind::E2e,
            model: "m".into(),
            draft: Some("none".into()),
            gamma: Some(0),
            batch: Some(1),
            new_tokens: Some(1),
            context_tokens: Some(1.0),
            position: None,
            metric: "forward_s".into(),
            value: 1.0,
            repeats: 1,
            spread: None,
            unit: "s".into(),
            provenance: Provenance::default(),
        };
        let e = ForwardPoint::from_row(&r).unwrap_err().to_string();
        assert!(
            e.starts_with("x.csv:2:") && e.contains("only kind=forward rows are fitted"),
            "{e}"
        );
    }

    #[test]
    fn draft_is_read_from_the_command() {
        assert_eq!(
            drafts_from_command(
                "perfcast-gpu e2e --target val-t --draft val-d2 --accept synthetic"
            ),
            ["val-d2"]
        );
        assert_eq!(drafts_from_command("x --draft=val-d1 y"), ["val-d1"]);
        assert_eq!(drafts_from_command("x --draft-model 'val-d3'"), ["val-d3"]);
        assert_eq!(
            drafts_from_command("x --drafts val-d2,layerskip:E=8 --gammas 1,2"),
            ["val-d2", "layerskip:E=8"]
        );
        assert!(drafts_from_command("x --target val-t").is_empty());
    }

    #[test]
    fn multi_draft_synthetic_rows_are_attributed_by_row_order() {
        // The harness writes, per batch: AR row, then per draft and per increasing γ the
        // acceptance rows and the e2e row. Two drafts × γ ∈ {1, 2} at batch 4.
        let cmd = "perfcast-gpu e2e --target m --drafts da,db --gammas 1,2 --accept synthetic";
        let prov = format!("2026-11-29T04:00:00Z,NVIDIA H200,580.1,13.0,abc,\"{cmd}\"");
        let mut body =
            format!("specdec,s,e2e,m,none,0,4,64,544,,tokens_per_s,100,3,,tokens/s,{prov}\n");
        for (d, s1) in [("da", 0.9), ("db", 0.5)] {
            for g in [1u32, 2] {
                for i in 1..=g {
                    body.push_str(&format!("specdec,s,acceptance,m,synthetic,{g},4,,,{i},survival,{},50,,fraction,{prov}\n", s1 / f64::from(i)));
                }
                body.push_str(&format!(
                    "specdec,s,e2e,m,synthetic,{g},4,64,544,,tokens_per_s,{},3,,tokens/s,{prov}\n",
                    if d == "da" { 200 } else { 150 }
                ));
            }
        }
        let ds = load(&body).unwrap();
        let runs: Vec<(&str, u32)> = ds
            .e2e
            .iter()
            .map(|e| (e.draft_run.as_str(), e.gamma))
            .collect();
        assert_eq!(
            runs,
            [("none", 0), ("da", 1), ("da", 2), ("db", 1), ("db", 2)]
        );
        let s1 = |i: usize| {
            ds.curve_for(&ds.e2e[i])
                .unwrap()
                .acceptance()
                .unwrap()
                .survival_at(1)
        };
        assert_eq!((s1(1), s1(3)), (0.9, 0.5));
    }

    #[test]
    fn curves_pool_by_repeats_and_prefer_the_points_context() {
        // Two runs of the same configuration at contexts 100 and 300: S(1) = 0.8 (100 obs) and
        // 0.6 (300 obs). The e2e point at context 300 uses its own curve; a point at another
        // context uses the pooled (0.8·100 + 0.6·300)/400 = 0.65.
        let body = format!(
            "specdec,s,acceptance,m,d,1,2,,100,1,survival,0.8,100,,fraction,{PROV}\n\
             specdec,s,acceptance,m,d,1,2,,300,1,survival,0.6,300,,fraction,{PROV}\n\
             specdec,s,e2e,m,d,1,2,64,300,,tokens_per_s,9,5,,tokens/s,{PROV}\n\
             specdec,s,e2e,m,d,1,2,64,200,,tokens_per_s,9,5,,tokens/s,{PROV}\n"
        );
        let ds = load(&body).unwrap();
        let s1 = |i: usize| {
            ds.curve_for(&ds.e2e[i])
                .unwrap()
                .acceptance()
                .unwrap()
                .survival_at(1)
        };
        assert!((s1(0) - 0.6).abs() < 1e-12);
        assert!((s1(1) - 0.65).abs() < 1e-12);
        assert_eq!(ds.curve_for(&ds.e2e[1]).unwrap().observations(), 400);
    }

    #[test]
    fn malformed_files_give_one_line_errors_with_file_and_line() {
        let cases: Vec<(String, &str)> = vec![
            (format!("specdec,s,forward,m,,,x,2,100,,forward_s,0.01,10,,s,{PROV}\n"), "r.csv:2: column 'batch' = 'x'"),
            (format!("specdec,s,forward,m,,,1,2,100,,forward_s,-1,10,,s,{PROV}\n"), "r.csv:2: column 'value' = '-1'"),
            (format!("specdec,s,forward,m,,,1,2,100,,forward_s,0.1,0,,s,{PROV}\n"), "r.csv:2: column 'repeats' = '0'"),
            (format!("specdec,s,bogus,m,,,1,2,100,,forward_s,0.1,3,,s,{PROV}\n"), "r.csv:2: kind = 'bogus'"),
            (format!("specdec,s,forward,m,,,1,,100,,forward_s,0.1,3,,s,{PROV}\n"), "r.csv:2: column 'new_tokens' is empty"),
            (format!("specdec,s,forward,m,,,1,2,100,,tokens_per_s,0.1,3,,s,{PROV}\n"), "r.csv:2: metric = 'tokens_per_s'"),
            ("specdec,s,forward,m\n".to_string(), "r.csv:2: 4 fields, expected 21"),
            (format!("specdec,s,acceptance,m,d,2,1,,,3,survival,0.5,9,,fraction,{PROV}\n"), "r.csv:2: position = 3"),
            (format!("specdec,s,e2e,m,d,2,1,9,100,,tokens_per_s,50,3,,tokens/s,{PROV}\n"), "r.csv:2: e2e point"),
            (format!("specdec,s,e2e,m,none,2,1,9,100,,tokens_per_s,50,3,,tokens/s,{PROV}\n"), "r.csv:2: draft = 'none', gamma = 2"),
            (
                format!(
                    "specdec,s,acceptance,m,d,2,1,,,1,survival,0.5,9,,fraction,{PROV}\nspecdec,s,acceptance,m,d,2,1,,,2,survival,0.7,9,,fraction,{PROV}\n"
                ),
                "r.csv:2: survival curve: survival[2] = 0.7",
            ),
            (format!("gradcomp,s,forward,m,,,1,2,100,,forward_s,0.1,3,,s,{PROV}\n"), "r.csv:2: technique = 'gradcomp'"),
        ];
        for (body, want) in cases {
            let e = load(&body).unwrap_err().to_string();
            assert!(e.contains(want), "got {e:?}, want {want:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.csv");
        std::fs::write(&p, "technique,set,kind\n").unwrap();
        let e = Dataset::load(&[p]).unwrap_err().to_string();
        assert!(e.contains("h.csv:1: not a measurement CSV header"), "{e}");
    }
}
