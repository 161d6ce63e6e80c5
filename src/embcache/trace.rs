//! Embedding-lookup traces: streaming readers, seeded generators, writers, and the dense form the
//! simulators run on.
//!
//! A trace is a sequence of [`Access`]es `(group, table, id)`. Readers are iterators that hold a
//! fixed-size buffer, so their memory does not grow with the trace length. Batching: formats with
//! an explicit batch column (CSV `batch,table,id`) keep their batches; for the others `group` is
//! the sample number (a line of a Criteo TSV or MovieLens file, one record of a text or
//! oracleGeneral file) and a batch is `batch` consecutive samples.
//!
//! [`DenseTrace`] remaps `(table, id)` keys to dense row indices `0..n_rows` once (by first
//! appearance), so every policy indexes flat arrays instead of hashing per access. It stores one
//! `u32` per access: lookahead and static top-k (from the whole trace), the miss-ratio curve,
//! the solver, the study and calibration use it. `perfcast embcache` with LRU, FIFO, LFU or Belady
//! does not: [`super::stream`] simulates them in one pass with memory bounded by the distinct rows.

pub mod criteo;
pub mod csv;
pub mod lcs_csv;
pub mod movielens;
pub mod oracle;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod profile;
pub mod text;
pub mod writer;
pub mod zipf;

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

/// One embedding lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Batch number (formats with a batch column) or sample number (all others).
    pub group: u64,
    /// Embedding table (0 when the format has one table).
    pub table: u32,
    /// Row id within the table.
    pub id: u64,
}

/// A trace file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// One decimal id per line (table 0); `#` comments and blank lines skipped.
    Text,
    /// CSV with the header `batch,table,id`.
    Csv,
    /// libCacheSim oracleGeneral: 24-byte little-endian records
    /// `{u32 clock_time; u64 obj_id; u32 obj_size; i64 next_access_vtime}` (table 0).
    OracleGeneral,
    /// Criteo Kaggle TSV: label, 13 integer and 26 categorical hex columns; table = column.
    Criteo,
    /// MovieLens ratings (`userId,movieId,rating,timestamp` CSV, ml-1m `::`, ml-100k `u.data`
    /// tab-separated): table 0 users, table 1 movies.
    MovieLens,
    /// libCacheSim CSV: one request per line, the object id in a named or given column
    /// (table 0; see [`lcs_csv`]).
    LcsCsv,
    /// Parquet with integer columns `batch`, `table`, `id` (the `parquet` cargo feature).
    Parquet,
}

impl TraceFormat {
    /// Every format name accepted by `--trace-format`.
    pub const NAMES: &'static [&'static str] = &[
        "text",
        "csv",
        "oracle-general",
        "criteo",
        "movielens",
        "lcs-csv",
        "parquet",
    ];

    /// Parses a format name.
    ///
    /// # Errors
    /// [`Error::UnknownName`] for other names.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "text" | "txt" => TraceFormat::Text,
            "csv" => TraceFormat::Csv,
            "oracle-general" | "oraclegeneral" | "oracle" => TraceFormat::OracleGeneral,
            "criteo" | "criteo-tsv" => TraceFormat::Criteo,
            "movielens" => TraceFormat::MovieLens,
            "lcs-csv" | "libcachesim-csv" | "lcs" => TraceFormat::LcsCsv,
            "parquet" => TraceFormat::Parquet,
            _ => {
                return Err(Error::unknown(
                    "trace format",
                    name,
                    Self::NAMES.iter().copied(),
                ))
            }
        })
    }

    /// The format implied by a file name's extension (`.txt`, `.csv`, `.oracleGeneral`/`.bin`,
    /// `.tsv`, `.parquet`), if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".oraclegeneral")
            || name.ends_with(".oraclegeneral.bin")
            || name.ends_with(".bin")
        {
            Some(TraceFormat::OracleGeneral)
        } else if name.ends_with(".txt") {
            Some(TraceFormat::Text)
        } else if name.contains("ratings") && name.ends_with(".csv") {
            Some(TraceFormat::MovieLens)
        } else if name.ends_with(".csv") {
            Some(TraceFormat::Csv)
        } else if name.ends_with(".tsv") {
            Some(TraceFormat::Criteo)
        } else if name.ends_with(".parquet") {
            Some(TraceFormat::Parquet)
        } else {
            None
        }
    }

    /// The format of an input file, from its name and, where the name is ambiguous, its first
    /// line: MovieLens `u.data` (and its `u1.base` … splits) and `ratings.dat` by name; a `.csv`
    /// by its header (`batch,table,id`; `userId,…` MovieLens; a header naming an object-id
    /// column, such as libCacheSim's `version,time,op,size,lbn`); a file of another extension
    /// whose first line is four tab-separated integers (the ml-100k layout) is MovieLens.
    /// Otherwise as [`TraceFormat::from_path`].
    pub fn detect(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let ml_split = |n: &str| {
            n.starts_with('u') && n.len() <= 8 && (n.ends_with(".base") || n.ends_with(".test"))
        };
        if name == "u.data" || name == "ratings.dat" || ml_split(&name) {
            return Some(TraceFormat::MovieLens);
        }
        let by_name = Self::from_path(path);
        let first = || -> Option<String> {
            use std::io::BufRead;
            let f = std::fs::File::open(path).ok()?;
            let mut r = std::io::BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).ok()? == 0 {
                    return None;
                }
                let t = line.trim().trim_start_matches('\u{feff}');
                if !t.is_empty() {
                    return Some(t.to_string());
                }
            }
        };
        match by_name {
            Some(TraceFormat::Csv) => {
                let Some(h) = first() else { return by_name };
                let compact: String = h.chars().filter(|c| !c.is_whitespace()).collect();
                if compact.eq_ignore_ascii_case(csv::HEADER) {
                    Some(TraceFormat::Csv)
                } else if compact.to_ascii_lowercase().starts_with("userid") {
                    Some(TraceFormat::MovieLens)
                } else if lcs_csv::Layout::header_names_an_id(&h) {
                    Some(TraceFormat::LcsCsv)
                } else {
                    by_name
                }
            }
            Some(_) => by_name,
            None => {
                let h = first()?;
                let f: Vec<&str> = h.split('\t').collect();
                (f.len() == 4 && f.iter().all(|x| x.trim().parse::<u64>().is_ok()))
                    .then_some(TraceFormat::MovieLens)
            }
        }
    }

    /// Whether `group` is an explicit batch number (otherwise a sample number).
    pub fn has_batches(self) -> bool {
        matches!(self, TraceFormat::Csv | TraceFormat::Parquet)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Text => "text",
            TraceFormat::Csv => "csv",
            TraceFormat::OracleGeneral => "oracle-general",
            TraceFormat::Criteo => "criteo",
            TraceFormat::MovieLens => "movielens",
            TraceFormat::LcsCsv => "lcs-csv",
            TraceFormat::Parquet => "parquet",
        }
    }
}

/// A boxed streaming reader.
pub type Reader = Box<dyn Iterator<Item = Result<Access>> + Send>;

/// Format-specific reading options (`--order`, `--lookups`, `--csv-params`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadOptions {
    /// MovieLens: replay order (default by time).
    pub order: Option<movielens::Order>,
    /// MovieLens: lookups per rating (default both).
    pub lookups: Option<movielens::Lookups>,
    /// libCacheSim CSV: the column layout (default: from the header).
    pub csv: Option<lcs_csv::Layout>,
}

impl ReadOptions {
    /// Checks that every option given applies to `format`.
    ///
    /// # Errors
    /// `--order` or `--lookups` for a format other than MovieLens; `--csv-params` for a format
    /// other than libCacheSim CSV.
    pub fn check(&self, format: TraceFormat) -> Result<()> {
        let only = |flag: &str, fmt: &str| {
            Err(Error::range(
                flag,
                format!("given for a {} trace", format.name()),
                format!("only with {fmt} traces"),
            ))
        };
        if format != TraceFormat::MovieLens {
            if self.order.is_some() {
                return only("--order", "movielens");
            }
            if self.lookups.is_some() {
                return only("--lookups", "movielens");
            }
        }
        if format != TraceFormat::LcsCsv && self.csv.is_some() {
            return only("--csv-params", "lcs-csv (libCacheSim CSV)");
        }
        Ok(())
    }
}

/// Opens `path` as a streaming reader of `format`.
///
/// # Errors
/// The file cannot be opened; `parquet` without the `parquet` feature.
pub fn open(path: &Path, format: TraceFormat) -> Result<Reader> {
    Ok(match format {
        TraceFormat::Text => Box::new(text::TextReader::open(path)?),
        TraceFormat::Csv => Box::new(csv::CsvReader::open(path)?),
        TraceFormat::OracleGeneral => Box::new(oracle::OracleReader::open(path)?),
        TraceFormat::Criteo => Box::new(criteo::CriteoReader::open(path)?),
        TraceFormat::MovieLens => Box::new(movielens::MovieLensReader::open(path)?),
        TraceFormat::LcsCsv => Box::new(lcs_csv::LcsCsvReader::open(
            path,
            lcs_csv::Layout::default(),
        )?),
        #[cfg(feature = "parquet")]
        TraceFormat::Parquet => Box::new(parquet::ParquetReader::open(path)?),
        #[cfg(not(feature = "parquet"))]
        TraceFormat::Parquet => {
            return Err(Error::Unsupported(format!(
                "{}: Parquet traces need perfcast built with `--features parquet`",
                path.display()
            )))
        }
    })
}

/// FxHash-style multiplicative hasher for the one-time id remap (std's SipHash is 3× slower and
/// the keys are not attacker-controlled).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
}

/// Hash map with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A trace with ids remapped to dense rows, split into batches.
#[derive(Debug, Clone, Default)]
pub struct DenseTrace {
    /// Dense row of every access, `< n_rows`.
    pub rows: Vec<u32>,
    /// Start index (into `rows`) of every batch, followed by `rows.len()`.
    pub batch_starts: Vec<usize>,
    /// `(table, id)` of every dense row, in order of first appearance.
    pub keys: Vec<(u32, u64)>,
    /// Where the trace came from (file path or generator description).
    pub source: String,
    /// What the reader had to ignore (e.g. object sizes of a byte-sized trace); every output
    /// row built from this trace repeats them in its `note`.
    pub warnings: Vec<String>,
}

impl DenseTrace {
    /// Builds the dense trace from a stream. `batch` is in samples (ignored when `has_batches`).
    ///
    /// # Errors
    /// The first reader error; an empty trace; more than 2³¹ accesses or rows.
    pub fn from_stream(
        stream: impl Iterator<Item = Result<Access>>,
        batch: u64,
        has_batches: bool,
        source: &str,
    ) -> Result<Self> {
        let batch = batch.max(1);
        let mut map: FxMap<(u32, u64), u32> = FxMap::default();
        let mut t = DenseTrace {
            source: source.to_string(),
            ..Default::default()
        };
        let mut cur: Option<u64> = None;
        let mut tick = crate::sweep::Ticker::default();
        for a in stream {
            let a = a?;
            tick.add(1);
            let b = if has_batches {
                a.group
            } else {
                a.group / batch
            };
            if cur != Some(b) {
                t.batch_starts.push(t.rows.len());
                cur = Some(b);
            }
            let next = t.keys.len() as u32;
            let r = *map.entry((a.table, a.id)).or_insert_with(|| {
                t.keys.push((a.table, a.id));
                next
            });
            t.rows.push(r);
            if t.rows.len() >= (1usize << 31) {
                return Err(Error::parse(
                    source,
                    None,
                    "trace longer than 2^31 accesses; split it",
                ));
            }
        }
        if t.rows.is_empty() {
            return Err(Error::parse(source, None, "empty trace: no accesses"));
        }
        t.batch_starts.push(t.rows.len());
        Ok(t)
    }

    /// Reads a trace file.
    ///
    /// # Errors
    /// See [`open`] and [`DenseTrace::from_stream`].
    pub fn load(path: &Path, format: TraceFormat, batch: u64) -> Result<Self> {
        Self::load_with(path, format, batch, &ReadOptions::default())
    }

    /// Reads a trace file with format options (MovieLens order and lookups, libCacheSim CSV
    /// columns). Object sizes a byte-sized trace carries are ignored and said in
    /// [`DenseTrace::warnings`].
    ///
    /// # Errors
    /// Options that do not apply to `format`; see [`open`] and [`DenseTrace::from_stream`].
    pub fn load_with(
        path: &Path,
        format: TraceFormat,
        batch: u64,
        opts: &ReadOptions,
    ) -> Result<Self> {
        opts.check(format)?;
        let name = path.display().to_string();
        if format == TraceFormat::MovieLens {
            let r = movielens::open(
                path,
                opts.order.unwrap_or_default(),
                opts.lookups.unwrap_or_default(),
            )?;
            return Self::from_stream(r, batch, false, &name);
        }
        if format == TraceFormat::LcsCsv {
            let layout = opts.csv.clone().unwrap_or_default();
            let mut r = lcs_csv::LcsCsvReader::open(path, layout)?;
            let mut t = Self::from_stream(r.by_ref(), batch, false, &name)?;
            t.warnings.extend(r.sizes().warning());
            return Ok(t);
        }
        if format == TraceFormat::OracleGeneral {
            // Read directly so the object sizes it saw can be reported once the stream ends.
            let mut r = oracle::OracleReader::open(path)?;
            let mut t = Self::from_stream(r.by_ref(), batch, false, &name)?;
            t.warnings.extend(r.sizes().warning());
            return Ok(t);
        }
        let r = open(path, format)?;
        Self::from_stream(r, batch, format.has_batches(), &name)
    }

    /// From raw dense rows (tests): batches of `batch` accesses.
    pub fn from_rows(rows: &[u32], batch: usize) -> Self {
        let stream = rows.iter().enumerate().map(|(i, &r)| {
            Ok(Access {
                group: i as u64,
                table: 0,
                id: u64::from(r),
            })
        });
        Self::from_stream(stream, batch as u64, false, "<rows>").unwrap_or_default()
    }

    /// Number of accesses.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no accesses.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of distinct rows.
    pub fn n_rows(&self) -> usize {
        self.keys.len()
    }

    /// Number of batches.
    pub fn n_batches(&self) -> usize {
        self.batch_starts.len().saturating_sub(1)
    }

    /// The accesses of batch `b`.
    pub fn batch(&self, b: usize) -> &[u32] {
        &self.rows[self.batch_starts[b]..self.batch_starts[b + 1]]
    }

    /// `next[t]`: position of the next access to the same row after `t`, or `u32::MAX`.
    pub fn next_use(&self) -> Vec<u32> {
        let mut last = vec![u32::MAX; self.n_rows()];
        let mut next = vec![u32::MAX; self.len()];
        for t in (0..self.len()).rev() {
            let r = self.rows[t] as usize;
            next[t] = last[r];
            last[r] = t as u32;
        }
        next
    }

    /// Position of every row's first access.
    pub fn first_use(&self) -> Vec<u32> {
        let mut first = vec![u32::MAX; self.n_rows()];
        for (t, &r) in self.rows.iter().enumerate().rev() {
            first[r as usize] = t as u32;
        }
        first
    }

    /// Access count of every row in the first `prefix` accesses.
    pub fn counts(&self, prefix: usize) -> Vec<u32> {
        let mut c = vec![0u32; self.n_rows()];
        for &r in &self.rows[..prefix.min(self.len())] {
            c[r as usize] += 1;
        }
        c
    }

    /// Back to the original accesses (group = batch number).
    pub fn accesses(&self) -> impl Iterator<Item = Access> + '_ {
        (0..self.n_batches()).flat_map(move |b| {
            self.batch(b).iter().map(move |&r| {
                let (table, id) = self.keys[r as usize];
                Access {
                    group: b as u64,
                    table,
                    id,
                }
            })
        })
    }
}

/// Wraps an I/O error on `path`.
pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(PathBuf::from(path), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_remap_and_batches() {
        let t = DenseTrace::from_rows(&[10, 20, 10, 30, 20, 10, 40], 3);
        assert_eq!(t.rows, vec![0, 1, 0, 2, 1, 0, 3]);
        assert_eq!(t.batch_starts, vec![0, 3, 6, 7]);
        assert_eq!(t.n_rows(), 4);
        assert_eq!(
            t.next_use(),
            vec![2, 4, 5, u32::MAX, u32::MAX, u32::MAX, u32::MAX]
        );
        assert_eq!(t.first_use(), vec![0, 1, 3, 6]);
        let e = DenseTrace::from_stream(std::iter::empty(), 1, false, "x.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.txt") && e.contains("empty"), "{e}");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(
            TraceFormat::parse("oracleGeneral").unwrap(),
            TraceFormat::OracleGeneral
        );
        assert!(TraceFormat::parse("parket")
            .unwrap_err()
            .to_string()
            .contains("did you mean 'parquet'"));
        assert_eq!(
            TraceFormat::from_path(Path::new("a/b.oracleGeneral")),
            Some(TraceFormat::OracleGeneral)
        );
        assert_eq!(
            TraceFormat::from_path(Path::new("ml/ratings.csv")),
            Some(TraceFormat::MovieLens)
        );
    }
}
