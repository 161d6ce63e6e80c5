//! # perfcast-measure: the measurement contract
//!
//! One tidy CSV row per measured quantity, written by a GPU harness (perfcast's own
//! `perfcast-gpu`, or a user's script) and read by `perfcast calibrate` and `perfcast validate`.
//! The public description, with units, the kinds of each technique and a worked example, is
//! `docs/measurements.md`; this crate is its one implementation, shared by the library and the
//! harness so the schema is defined once.
//!
//! - [`COLUMNS`]: the 22 columns, in the order [`Writer`] writes them. [`Reader`] matches columns
//!   **by name**, so files written before `params` existed (the 21 [`LEGACY_COLUMNS`]) read
//!   unchanged, and a column order other than this one is accepted.
//! - [`Row`]: one typed row. Only generic ranges are checked here (integers ≥ 0, batch and
//!   repeats ≥ 1, finite non-negative numbers, non-empty names); each technique checks its own
//!   `kind`s, metrics and units when it consumes the rows.
//! - [`Params`]: technique-specific point parameters, `key=value` pairs joined by `;`
//!   (`seq=128;k=6;policy=fixed`), in the order given.
//! - [`Provenance`], [`utc_now`], [`iso8601`]: where and when a row was measured.
//!
//! Every error is one line naming the file and line, the column, the value and the allowed
//! range ([`Error`]).

#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The columns of a measurement CSV, in the order [`Writer`] writes them.
pub const COLUMNS: [&str; 22] = [
    "technique",
    "set",
    "kind",
    "model",
    "draft",
    "gamma",
    "batch",
    "new_tokens",
    "context_tokens",
    "position",
    "params",
    "metric",
    "value",
    "repeats",
    "spread",
    "unit",
    "date",
    "gpu",
    "driver",
    "cuda",
    "commit",
    "command",
];

/// The columns of files written before `params` existed (every committed specdec file): the
/// same as [`COLUMNS`] without `params`. [`Reader`] reads them unchanged, and [`Writer`] can
/// append to such a file ([`Writer::with_columns`]).
pub const LEGACY_COLUMNS: [&str; 21] = [
    "technique",
    "set",
    "kind",
    "model",
    "draft",
    "gamma",
    "batch",
    "new_tokens",
    "context_tokens",
    "position",
    "metric",
    "value",
    "repeats",
    "spread",
    "unit",
    "date",
    "gpu",
    "driver",
    "cuda",
    "commit",
    "command",
];

/// The only optional column: a file without it reads as if every row's `params` were empty.
pub const OPTIONAL_COLUMNS: [&str; 1] = ["params"];

/// An error reading or writing measurements. Renders as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening, reading or writing a file failed.
    #[error("{}: {}", esc(&path.display().to_string()), esc(&source.to_string()))]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A field's value is outside its allowed range.
    #[error("{}:{line}: column '{field}' = '{}': must be {allowed}", esc(&path.display().to_string()), esc(value))]
    Field {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// Column name.
        field: &'static str,
        /// The value as written.
        value: String,
        /// The allowed range in words.
        allowed: &'static str,
    },
    /// The file's shape is wrong: header, field count, an empty required column, bad CSV.
    #[error("{}{}: {}", esc(&path.display().to_string()), line.map(|l| format!(":{l}")).unwrap_or_default(), esc(message))]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
}

/// `s` with control characters escaped (`\n`, `\u{1b}`), so an error stays one line whatever a
/// file holds (a quoted CSV field may hold a newline).
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().collect()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

impl Error {
    /// The file, the line (when known) and the message without them (control characters not
    /// escaped: the caller's own error type escapes what it prints): for callers that
    /// re-wrap the error in their own type.
    pub fn parts(&self) -> (&Path, Option<u64>, String) {
        match self {
            Error::Io { path, source } => (path, None, source.to_string()),
            Error::Field {
                path,
                line,
                field,
                value,
                allowed,
            } => (
                path,
                Some(*line),
                format!("column '{field}' = '{value}': must be {allowed}"),
            ),
            Error::Format {
                path,
                line,
                message,
            } => (path, *line, message.clone()),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Technique-specific parameters of a point: `key=value` pairs in the order given, written as
/// `k=v;k=v` in the `params` column (empty when there are none).
///
/// Keys are non-empty and hold none of `=`, `;`, `,`, whitespace; values hold no `;`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// Adds (or replaces, keeping its place) `key`, builder style.
    ///
    /// # Panics
    /// When `key` or `value` is not allowed (see the type's docs): a programming error in the
    /// harness, not user input.
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds (or replaces, keeping its place) `key`.
    ///
    /// # Panics
    /// As [`Params::with`].
    pub fn insert(&mut self, key: &str, value: impl fmt::Display) {
        let value = value.to_string();
        assert!(valid_key(key), "params key '{key}' is not allowed");
        assert!(!value.contains(';'), "params value '{value}' holds ';'");
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k
            .chars()
            .any(|c| c == '=' || c == ';' || c == ',' || c.is_whitespace())
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// The error of [`Params::from_str`]: the offending pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("params pair '{0}': must be key=value (key without '=', ';', ',' or spaces; pairs separated by ';')")]
pub struct ParamsError(pub String);

impl FromStr for Params {
    type Err = ParamsError;
    fn from_str(s: &str) -> Result<Self, ParamsError> {
        let mut p = Params::new();
        for pair in s.split(';').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ParamsError(pair.to_string()))?;
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) || p.get(k).is_some() {
                return Err(ParamsError(pair.to_string()));
            }
            p.0.push((k.to_string(), v.to_string()));
        }
        Ok(p)
    }
}

/// Provenance columns: where and when a row was measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// ISO 8601 UTC date of the measurement, seconds (`2026-11-29T04:05:06Z`, [`utc_now`]).
    pub date: String,
    /// GPU name as `nvidia-smi --query-gpu=name` reports it (`NVIDIA H200`), or `cpu`.
    pub gpu: String,
    /// Driver version (`nvidia-smi`).
    pub driver: String,
    /// CUDA version.
    pub cuda: String,
    /// Git commit of the harness source.
    pub commit: String,
    /// The command line that produced the row.
    pub command: String,
}

impl Provenance {
    /// From the environment (`PERFCAST_GPU`, `PERFCAST_DRIVER`, `PERFCAST_CUDA`, set by the run
    /// script from nvidia-smi; `PERFCAST_COMMIT` unless `commit` is given, e.g. baked in at
    /// build time), the process's arguments, and the date left empty ([`Writer`] stamps each
    /// row with [`utc_now`] when it is empty). Unset variables read `unknown`.
    pub fn from_env(commit: Option<&str>) -> Provenance {
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "unknown".to_string());
        Provenance {
            date: String::new(),
            gpu: env("PERFCAST_GPU"),
            driver: env("PERFCAST_DRIVER"),
            cuda: env("PERFCAST_CUDA"),
            commit: commit
                .map(str::to_string)
                .unwrap_or_else(|| env("PERFCAST_COMMIT")),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
}

/// One measurement row. Columns that do not apply are `None` (or empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Technique (`specdec`, `freeze`, `embcache`, `gradcomp`): which calibration and predictor
    /// take the row.
    pub technique: String,
    /// Measurement set (usually the file's stem): the unit errors are reported by.
    pub set: String,
    /// What the row measures; each technique defines its kinds (docs/measurements.md).
    pub kind: String,
    /// Model: a catalog name, or what the technique's kind names there.
    pub model: String,
    /// Draft (specdec: `none`, a catalog model, `layerskip:E=<n>`, `synthetic`).
    pub draft: Option<String>,
    /// Lookahead γ (specdec).
    pub gamma: Option<u32>,
    /// Sequences (or samples, or ranks) per batch, ≥ 1.
    pub batch: Option<u32>,
    /// New tokens per sequence (per forward, or generated per sequence end to end).
    pub new_tokens: Option<u32>,
    /// Tokens in the KV cache (mean during decoding for end-to-end rows).
    pub context_tokens: Option<f64>,
    /// Position within a curve (specdec survival position i, 1..=γ).
    pub position: Option<u32>,
    /// Technique-specific point parameters.
    pub params: Params,
    /// Metric name, with its unit as a suffix where it has one (`forward_s`, `tokens_per_s`).
    pub metric: String,
    /// The measured value, in `unit`; finite and ≥ 0.
    pub value: f64,
    /// Timed repeats behind `value` (or observations, for acceptance rows), ≥ 1.
    pub repeats: u64,
    /// (p90 − p10)/median of the repeats, fraction, when measured.
    pub spread: Option<f64>,
    /// Unit of `value` (`s`, `tokens/s`, `fraction`, `bytes/s`, `rounds`).
    pub unit: String,
    /// Where and when.
    pub provenance: Provenance,
}

impl Row {
    /// The value of column `name` as the writer writes it (None for an unknown name).
    fn field(&self, name: &str) -> Option<String> {
        let opt = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
        let p = &self.provenance;
        Some(match name {
            "technique" => self.technique.clone(),
            "set" => self.set.clone(),
            "kind" => self.kind.clone(),
            "model" => self.model.clone(),
            "draft" => self.draft.clone().unwrap_or_default(),
            "gamma" => opt(self.gamma),
            "batch" => opt(self.batch),
            "new_tokens" => opt(self.new_tokens),
            "context_tokens" => self
                .context_tokens
                .map(|c| c.to_string())
                .unwrap_or_default(),
            "position" => opt(self.position),
            "params" => self.params.to_string(),
            "metric" => self.metric.clone(),
            "value" => format!("{:.9e}", self.value),
            "repeats" => self.repeats.to_string(),
            "spread" => self.spread.map(|s| format!("{s:.6}")).unwrap_or_default(),
            "unit" => self.unit.clone(),
            "date" => {
                if p.date.is_empty() {
                    utc_now()
                } else {
                    p.date.clone()
                }
            }
            "gpu" => p.gpu.clone(),
            "driver" => p.driver.clone(),
            "cuda" => p.cuda.clone(),
            "commit" => p.commit.clone(),
            "command" => p.command.clone(),
            _ => return None,
        })
    }
}

/// The current UTC time as ISO 8601 with whole seconds (`2026-11-29T04:05:06Z`).
pub fn utc_now() -> String {
    format_ts(jiff::Timestamp::now())
}

/// Seconds since the Unix epoch as ISO 8601 UTC (`1970-01-01T00:00:00Z`); seconds beyond
/// jiff's range (year 9999) print as that limit.
pub fn iso8601(secs: u64) -> String {
    let s = i64::try_from(secs).unwrap_or(i64::MAX);
    let ts = jiff::Timestamp::from_second(s).unwrap_or(jiff::Timestamp::MAX);
    format_ts(ts)
}

fn format_ts(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Where each known column sits in a file's header.
#[derive(Debug, Clone)]
struct Layout {
    index: Vec<Option<usize>>, // by COLUMNS position
    len: usize,
}

impl Layout {
    fn from_header(got: &[&str], path: &Path) -> Result<Layout> {
        let bad = |detail: String| Error::Format {
            path: path.to_path_buf(),
            line: Some(1),
            message: format!("not a measurement CSV header ({detail}; see docs/measurements.md)"),
        };
        for (i, name) in got.iter().enumerate() {
            if !COLUMNS.contains(name) {
                return Err(bad(format!(
                    "column {} is '{name}', not a measurement column",
                    i + 1
                )));
            }
            if got[..i].contains(name) {
                return Err(bad(format!("column '{name}' appears twice")));
            }
        }
        let index: Vec<Option<usize>> = COLUMNS
            .iter()
            .map(|c| got.iter().position(|g| g == c))
            .collect();
        if let Some(missing) = COLUMNS
            .iter()
            .zip(&index)
            .find(|(c, i)| i.is_none() && !OPTIONAL_COLUMNS.contains(c))
        {
            return Err(bad(format!(
                "missing column '{}'; {} columns, expected {}",
                missing.0,
                got.len(),
                COLUMNS.len()
            )));
        }
        Ok(Layout {
            index,
            len: got.len(),
        })
    }
}

/// A streaming reader of one measurement CSV: the header is checked on construction, then
/// rows are parsed one record at a time (memory does not grow with the file).
pub struct Reader<R: Read> {
    rdr: csv::Reader<R>,
    path: PathBuf,
    layout: Layout,
    rec: csv::StringRecord,
    /// Line of the last record read (the header's is 1). The csv crate counts lines by `\n`
    /// only, so in a file whose lines end in a bare `\r` every record would be at line 1;
    /// [`Reader::line_of`] keeps the lines increasing.
    last_line: u64,
}

impl Reader<std::io::BufReader<std::fs::File>> {
    /// Opens `path` and checks its header.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be opened; as [`Reader::new`].
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Reader::new(std::io::BufReader::new(f), path)
    }
}

impl<R: Read> Reader<R> {
    /// Reads the header of `r`; `path` names the source in errors.
    ///
    /// # Errors
    /// [`Error::Format`] at line 1 for an empty file, an unknown or duplicate column, or a
    /// missing required one.
    pub fn new(r: R, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(r);
        let mut rec = csv::StringRecord::new();
        if !rdr.read_record(&mut rec).map_err(|e| csv_err(&path, &e))? {
            return Err(Error::Format {
                path,
                line: Some(1),
                message: "empty file: expected the measurement CSV header".into(),
            });
        }
        let got: Vec<&str> = rec.iter().map(str::trim).collect();
        let layout = Layout::from_header(&got, &path)?;
        Ok(Reader {
            rdr,
            path,
            layout,
            rec,
            last_line: 1,
        })
    }

    /// The file named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file has the `params` column.
    pub fn has_params(&self) -> bool {
        self.layout.index[10].is_some()
    }

    /// The underlying reader (e.g. to finish a digest after the last row).
    pub fn into_inner(self) -> R {
        self.rdr.into_inner()
    }

    /// The next row and its 1-based line, or None at the end of the file. Blank lines are
    /// skipped.
    ///
    /// # Errors
    /// [`Error::Format`] for malformed CSV, a wrong number of fields or an empty required
    /// column; [`Error::Field`] for a value outside its range.
    pub fn next_row(&mut self) -> Option<Result<(u64, Row)>> {
        loop {
            match self.rdr.read_record(&mut self.rec) {
                Err(e) => {
                    let mut err = csv_err(&self.path, &e);
                    if let Error::Format { line: Some(l), .. } = &mut err {
                        *l = self.line_of(*l);
                    }
                    return Some(Err(err));
                }
                Ok(false) => return None,
                Ok(true) => {}
            }
            let line = self.line_of(self.rec.position().map_or(0, |p| p.line()));
            self.last_line = line;
            if self.rec.len() == 1 && self.rec.get(0).is_some_and(|s| s.trim().is_empty()) {
                continue;
            }
            return Some(self.parse(line).map(|r| (line, r)));
        }
    }

    /// The 1-based line of a record the csv crate places at `csv_line`: at least one past the
    /// previous record's (a bare `\r` ends a record without a `\n` for the crate to count).
    fn line_of(&self, csv_line: u64) -> u64 {
        csv_line.max(self.last_line + 1)
    }

    fn parse(&self, line: u64) -> Result<Row> {
        if self.rec.len() != self.layout.len {
            return Err(self.format(
                line,
                format!("{} fields, expected {}", self.rec.len(), self.layout.len),
            ));
        }
        let get = |name: &str| -> &str {
            let i = COLUMNS
                .iter()
                .position(|c| *c == name)
                .expect("known column");
            self.layout.index[i]
                .and_then(|j| self.rec.get(j))
                .unwrap_or("")
                .trim()
        };
        let field = |field: &'static str, value: &str, allowed: &'static str| Error::Field {
            path: self.path.clone(),
            line,
            field,
            value: value.to_string(),
            allowed,
        };
        let text = |name: &'static str| -> Result<String> {
            let v = get(name);
            if v.is_empty() {
                Err(self.format(line, format!("column '{name}' is empty")))
            } else {
                Ok(v.to_string())
            }
        };
        let opt_u32 = |name: &'static str, min: u32| -> Result<Option<u32>> {
            let v = get(name);
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<u32>() {
                Ok(x) if x >= min => Ok(Some(x)),
                _ if min == 0 => Err(field(name, v, "an integer >= 0")),
                _ => Err(field(name, v, "an integer >= 1")),
            }
        };
        let opt_f64 = |name: &'static str| -> Result<Option<f64>> {
            let v = get(name);
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(field(name, v, "a finite number >= 0")),
            }
        };
        let technique = text("technique")?;
        let kind = text("kind")?;
        let value =
            opt_f64("value")?.ok_or_else(|| self.format(line, "column 'value' is empty"))?;
        let repeats_text = get("repeats");
        let repeats = repeats_text
            .parse::<u64>()
            .ok()
            .filter(|r| *r >= 1)
            .ok_or_else(|| field("repeats", repeats_text, "an integer >= 1"))?;
        let batch = opt_u32("batch", 1)?;
        let params_text = get("params");
        let params = params_text.parse::<Params>().map_err(|_| {
            field(
                "params",
                params_text,
                "key=value pairs separated by ';' (keys unique, without '=', ',' or spaces)",
            )
        })?;
        Ok(Row {
            technique,
            set: text("set")?,
            kind,
            model: text("model")?,
            draft: Some(get("draft").to_string()).filter(|s| !s.is_empty()),
            gamma: opt_u32("gamma", 0)?,
            batch,
            new_tokens: opt_u32("new_tokens", 0)?,
            context_tokens: opt_f64("context_tokens")?,
            position: opt_u32("position", 0)?,
            params,
            metric: text("metric")?,
            value,
            repeats,
            spread: opt_f64("spread")?,
            unit: text("unit")?,
            provenance: Provenance {
                date: get("date").to_string(),
                gpu: get("gpu").to_string(),
                driver: get("driver").to_string(),
                cuda: get("cuda").to_string(),
                commit: get("commit").to_string(),
                command: get("command").to_string(),
            },
        })
    }

    fn format(&self, line: u64, message: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.clone(),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<(u64, Row)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

fn csv_err(path: &Path, e: &csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_string(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    Error::Format {
        path: path.to_path_buf(),
        line,
        message: message.replace('\n', " "),
    }
}

/// Writes rows in the tidy CSV format: `value` as `{:.9e}`, `spread` as `{:.6}`, empty cells
/// for `None`, fields quoted only when they hold a comma, quote or newline (csv crate).
pub struct Writer<W: Write> {
    w: csv::Writer<W>,
    columns: Vec<&'static str>,
}

impl<W: Write> Writer<W> {
    /// A writer that first writes the [`COLUMNS`] header.
    ///
    /// # Errors
    /// I/O errors of `w`.
    pub fn new(w: W) -> std::io::Result<Self> {
        let mut me = Writer {
            w: csv::WriterBuilder::new().from_writer(w),
            columns: COLUMNS.to_vec(),
        };
        me.w.write_record(COLUMNS).map_err(into_io)?;
        Ok(me)
    }

    /// A writer that appends rows to a file whose header is `header` (already written): rows
    /// follow its columns, so a file with the [`LEGACY_COLUMNS`] header stays in that layout.
    ///
    /// # Errors
    /// [`std::io::ErrorKind::InvalidData`] when `header` names an unknown column or lacks a
    /// required one.
    pub fn with_columns(w: W, header: &[&str]) -> std::io::Result<Self> {
        Layout::from_header(header, Path::new("(header)"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let columns = header
            .iter()
            .map(|h| *COLUMNS.iter().find(|c| *c == h).expect("checked above"))
            .collect();
        Ok(Writer {
            w: csv::WriterBuilder::new().from_writer(w),
            columns,
        })
    }

    /// Writes one row and flushes, so a run cut short keeps every finished row. An empty
    /// `provenance.date` is stamped with [`utc_now`].
    ///
    /// # Errors
    /// I/O errors; [`std::io::ErrorKind::InvalidInput`] when the row has `params` but the
    /// file's header has no `params` column.
    pub fn write(&mut self, row: &Row) -> std::io::Result<()> {
        if !row.params.is_empty() && !self.columns.contains(&"params") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "params = '{}': this file's header has no params column (write a new file)",
                    row.params
                ),
            ));
        }
        let fields: Vec<String> = self
            .columns
            .iter()
            .map(|c| row.field(c).expect("known column"))
            .collect();
        self.w.write_record(&fields).map_err(into_io)?;
        self.w.flush()
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// I/O errors of the final flush.
    pub fn into_inner(self) -> std::io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

fn into_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            technique: "specdec".into(),
            set: "s".into(),
            kind: "forward".into(),
            model: "m".into(),
            batch: Some(4),
            new_tokens: Some(2),
            context_tokens: Some(100.0),
            metric: "forward_s".into(),
            value: 0.0125,
            repeats: 10,
            spread: Some(0.02),
            unit: "s".into(),
            provenance: Provenance {
                date: "2026-11-29T04:00:00Z".into(),
                gpu: "NVIDIA H200".into(),
                command: "x --a 1,2".into(),
                ..Provenance::default()
            },
            ..Row::default()
        }
    }

    fn read_all(text: &str) -> Result<Vec<(u64, Row)>> {
        Reader::new(text.as_bytes(), "r.csv")?.collect()
    }

    #[test]
    fn iso8601_hand_values() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC = 951827696 s.
        assert_eq!(iso8601(951_827_696), "2000-02-29T12:34:56Z");
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }

    #[test]
    fn writer_round_trips_through_the_reader_with_the_new_header() {
        let mut r2 = row();
        r2.kind = "layer".into();
        r2.technique = "freeze".into();
        r2.params = "seq=128;k=6;policy=fixed".parse().unwrap();
        r2.provenance.date.clear();
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write(&row()).unwrap();
        w.write(&r2).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "specdec,s,forward,m,,,4,2,100,,,forward_s,1.250000000e-2,10,0.020000,s,2026-11-29T04:00:00Z,NVIDIA H200,,,,\"x --a 1,2\""
        );
        let rows = read_all(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].0, &rows[0].1), (2, &row()));
        assert_eq!(rows[1].1.params.get("k"), Some("6"));
        assert_eq!(rows[1].1.params.to_string(), "seq=128;k=6;policy=fixed");
        assert_eq!(rows[1].1.provenance.date.len(), 20, "date stamped");
    }

    /// Lines ending in a bare `\r` (the csv crate's terminator too, but not counted as a line
    /// by it): rows at lines 2 and 3 and an error on the fourth line named at line 4, not all
    /// at line 1 (fuzz finding of 2026-11-30); `\r\n` and `\n` files unchanged.
    #[test]
    fn lines_ending_in_a_bare_cr_are_counted() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write(&row()).unwrap();
        w.write(&row()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        for eol in ["\r", "\r\n", "\n"] {
            let t = text.replace('\n', eol);
            let rows = read_all(&t).unwrap();
            let lines: Vec<u64> = rows.iter().map(|r| r.0).collect();
            assert_eq!(lines, vec![2, 3], "{eol:?}");
            let bad = format!("{t}specdec,s{eol}");
            let e = read_all(&bad).unwrap_err().to_string();
            assert!(e.contains("r.csv:4:"), "{eol:?}: {e}");
        }
    }

    #[test]
    fn legacy_header_reads_and_appends_unchanged() {
        let legacy = format!(
            "{}\nspecdec,s,forward,m,,,4,2,100,,forward_s,1.250000000e-2,10,0.020000,s,2026-11-29T04:00:00Z,NVIDIA H200,,,,\"x --a 1,2\"\n",
            LEGACY_COLUMNS.join(",")
        );
        let rows = read_all(&legacy).unwrap();
        assert_eq!(rows[0].1, row());
        let mut w = Writer::with_columns(Vec::new(), &LEGACY_COLUMNS).unwrap();
        w.write(&row()).unwrap();
        let appended = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(appended, legacy.lines().nth(1).unwrap().to_string() + "\n");
        let mut w = Writer::with_columns(Vec::new(), &LEGACY_COLUMNS).unwrap();
        let mut p = row();
        p.params.insert("k", 6);
        let e = w.write(&p).unwrap_err().to_string();
        assert!(e.contains("no params column"), "{e}");
        // Columns in another order read by name.
        let swapped = "set,technique,kind,model,draft,gamma,batch,new_tokens,context_tokens,position,metric,value,repeats,spread,unit,date,gpu,driver,cuda,commit,command\ns,specdec,e2e,m,none,0,1,9,100,,tokens_per_s,50,3,,tokens/s,,,,,,\n";
        let r = &read_all(swapped).unwrap()[0].1;
        assert_eq!((r.technique.as_str(), r.kind.as_str()), ("specdec", "e2e"));
    }

    #[test]
    fn bad_input_gives_one_line_errors_naming_file_line_field_value_and_range() {
        let h = COLUMNS.join(",");
        let p = "2026-11-29T04:00:00Z,g,d,c,abc,cmd";
        let cases = [
            (
                format!("{h}\nt,s,k,m,,,x,2,100,,,f,0.01,10,,s,{p}\n"),
                "r.csv:2: column 'batch' = 'x': must be an integer >= 1",
            ),
            (
                format!("{h}\nt,s,k,m,,,0,2,100,,,f,0.01,10,,s,{p}\n"),
                "r.csv:2: column 'batch' = '0': must be an integer >= 1",
            ),
            (
                format!("{h}\nt,s,k,m,,-1,1,2,100,,,f,0.01,10,,s,{p}\n"),
                "r.csv:2: column 'gamma' = '-1': must be an integer >= 0",
            ),
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,,f,-1,10,,s,{p}\n"),
                "r.csv:2: column 'value' = '-1': must be a finite number >= 0",
            ),
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,,f,NaN,10,,s,{p}\n"),
                "r.csv:2: column 'value' = 'NaN'",
            ),
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,,f,0.1,0,,s,{p}\n"),
                "r.csv:2: column 'repeats' = '0': must be an integer >= 1",
            ),
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,k6,f,0.1,3,,s,{p}\n"),
                "r.csv:2: column 'params' = 'k6'",
            ),
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,k=6;k=7,f,0.1,3,,s,{p}\n"),
                "r.csv:2: column 'params' = 'k=6;k=7'",
            ),
            (
                format!("{h}\nt,,k,m,,,1,2,100,,,f,0.1,3,,s,{p}\n"),
                "r.csv:2: column 'set' is empty",
            ),
            (format!("{h}\nt,s,k,m\n"), "r.csv:2: 4 fields, expected 22"),
            (
                "technique,set,kind\n".to_string(),
                "r.csv:1: not a measurement CSV header (missing column 'model'",
            ),
            (
                format!("{h},extra\n"),
                "r.csv:1: not a measurement CSV header (column 23 is 'extra'",
            ),
            (String::new(), "r.csv:1: empty file"),
            // Found by the measure_csv fuzz target: a quoted field holding a newline (or any
            // control character) is echoed escaped, so the error stays one line.
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,\"k=1;a\nb\",f,0.1,3,,s,{p}\n"),
                "r.csv:2: column 'params' = 'k=1;a\\nb'",
            ),
            (
                format!("{h}\nt,s,k,m,,,1,2,100,,,f,0.1,\"\u{1b}[31m\",,s,{p}\n"),
                "r.csv:2: column 'repeats' = '\\u{1b}[31m'",
            ),
        ];
        for (text, want) in cases {
            let e = read_all(&text).unwrap_err().to_string();
            assert!(e.starts_with(want), "got {e:?}, want {want:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn params_parse_print_and_reject() {
        let p: Params = " seq=128 ; k=6;policy=fixed;tier=gpu;dtype=bf16"
            .parse()
            .unwrap();
        assert_eq!(
            p.to_string(),
            "seq=128;k=6;policy=fixed;tier=gpu;dtype=bf16"
        );
        assert_eq!(p.len(), 5);
        assert!("".parse::<Params>().unwrap().is_empty());
        assert!("=3".parse::<Params>().is_err());
        assert!("a b=3".parse::<Params>().is_err());
        let p = Params::new().with("a", 1).with("b", "x").with("a", 2);
        assert_eq!(p.to_string(), "a=2;b=x");
    }
}
