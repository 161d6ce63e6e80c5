//! libCacheSim's CSV traces: one request per line, the object id (and optionally its size and
//! time) in given columns, so the same file runs in both tools.
//!
//! The column options are libCacheSim's (`cachesim TRACE csv ALGO SIZE -t "…"`, documented in
//! its `doc/quickstart_cachesim.md`): `time-col=N`, `obj-id-col=N`, `obj-size-col=N` (1-based
//! columns), `delimiter=C`, `has-header=true|false`, `obj-id-is-num=true|false`; for example its
//! sample `data/trace.csv` (header `version,time,op,size,lbn`) is read with
//! `time-col=2, obj-id-col=5, obj-size-col=4`. Pass them with `--csv-params`. Without them the
//! header names the columns: the id is the first of `obj_id`, `obj-id`, `object_id`, `id`, `key`,
//! `lbn`, `lba`, `block`, `block_id`, `addr`; the size `obj_size`, `obj-size`, `size`, `bytes`;
//! the delimiter is the first of `,`, tab, `;`, space that the header contains.
//!
//! Every request is table 0 and one sample. Ids that are not integers are hashed (FNV-1a,
//! 64 bit) as libCacheSim hashes string ids; `obj-id-is-num=true` makes a non-integer id an error
//! instead. Sizes are counted for the warning that perfcast's caches ignore them
//! ([`super::oracle::SizeStats`]); the time column is accepted and not used (perfcast replays
//! requests in file order, as libCacheSim does).

use super::oracle::SizeStats;
use super::text::short;
use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Column names that hold the object id, in order of preference.
pub const ID_NAMES: &[&str] = &[
    "obj_id",
    "obj-id",
    "object_id",
    "id",
    "key",
    "lbn",
    "lba",
    "block",
    "block_id",
    "addr",
];
/// Column names that hold the object size.
pub const SIZE_NAMES: &[&str] = &["obj_size", "obj-size", "size", "bytes"];
/// Column names that hold the request time.
pub const TIME_NAMES: &[&str] = &["time", "timestamp", "ts", "clock_time"];

/// The reader's column layout (0-based columns).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Object-id column.
    pub id_col: Option<usize>,
    /// Object-size column.
    pub size_col: Option<usize>,
    /// Time column (accepted, unused).
    pub time_col: Option<usize>,
    /// Field delimiter.
    pub delimiter: Option<u8>,
    /// Whether the first line is a header.
    pub has_header: Option<bool>,
    /// Whether ids must be integers (`Some(false)`: always hash; `None`: hash non-integers).
    pub id_is_num: Option<bool>,
}

impl Layout {
    /// Parses libCacheSim's `-t` string, e.g. `time-col=2, obj-id-col=5, obj-size-col=4,
    /// delimiter=,, has-header=true` (`delimiter=,,` is a comma delimiter; `\t` a tab).
    ///
    /// # Errors
    /// An unknown key, a column < 1, a value that is not a number or boolean.
    pub fn parse(params: &str) -> Result<Self> {
        let mut l = Layout::default();
        let pieces: Vec<&str> = params.split(',').collect();
        let mut i = 0;
        while i < pieces.len() {
            let p = pieces[i].trim();
            i += 1;
            if p.is_empty() {
                continue;
            }
            let (k, v) = p.split_once('=').ok_or_else(|| {
                Error::range("--csv-params", p, "key=value pairs such as obj-id-col=5")
            })?;
            let k = k.trim().to_ascii_lowercase().replace('_', "-");
            let v = v.trim();
            let col = |v: &str| -> Result<Option<usize>> {
                match v.parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(Some(n - 1)),
                    _ => Err(Error::range(
                        format!("--csv-params {k}"),
                        v,
                        "a column number ≥ 1 (the first column is 1)",
                    )),
                }
            };
            let flag = |v: &str| -> Result<Option<bool>> {
                match v.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(Some(true)),
                    "false" | "0" | "no" => Ok(Some(false)),
                    _ => Err(Error::range(
                        format!("--csv-params {k}"),
                        v,
                        "true or false",
                    )),
                }
            };
            match k.as_str() {
                "obj-id-col" => l.id_col = col(v)?,
                "obj-size-col" => l.size_col = col(v)?,
                "time-col" => l.time_col = col(v)?,
                // Columns libCacheSim reads that perfcast does not need.
                "op-col" | "ttl-col" | "cnt-col" | "tenant-col" | "next-access-col" => {
                    col(v)?;
                }
                "has-header" => l.has_header = flag(v)?,
                "obj-id-is-num" => l.id_is_num = flag(v)?,
                "delimiter" => {
                    l.delimiter = Some(match v {
                        // `delimiter=,,`: the comma was taken by the split.
                        "" => {
                            if pieces.get(i).is_some_and(|n| n.trim().is_empty()) {
                                i += 1;
                            }
                            b','
                        }
                        "\\t" | "tab" => b'\t',
                        "space" => b' ',
                        v if v.len() == 1 => v.as_bytes()[0],
                        v => {
                            return Err(Error::range(
                                "--csv-params delimiter",
                                v,
                                "one character (\\t for a tab)",
                            ))
                        }
                    })
                }
                _ => {
                    return Err(Error::range(
                        "--csv-params",
                        k,
                        "one of obj-id-col, obj-size-col, time-col, op-col, ttl-col, delimiter, has-header, obj-id-is-num",
                    ))
                }
            }
        }
        Ok(l)
    }

    /// Completes the layout from the file's first line: delimiter, header and, from the header's
    /// names, the id and size columns not given.
    ///
    /// # Errors
    /// No id column given and none named in the header.
    fn complete(&mut self, first: &str, path: &Path) -> Result<()> {
        let d = *self.delimiter.get_or_insert_with(|| {
            [b',', b'\t', b';', b' ']
                .into_iter()
                .find(|&c| first.as_bytes().contains(&c))
                .unwrap_or(b',')
        });
        let names: Vec<String> = first
            .split(char::from(d))
            .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let find = |set: &[&str]| set.iter().find_map(|n| names.iter().position(|x| x == n));
        let header = *self.has_header.get_or_insert_with(|| {
            // A header names its columns: the id column (if known) is not a number.
            let probe = self.id_col.or_else(|| find(ID_NAMES)).unwrap_or(0);
            names.get(probe).is_some_and(|f| f.parse::<u64>().is_err())
        });
        if header {
            if self.id_col.is_none() {
                self.id_col = find(ID_NAMES);
            }
            if self.size_col.is_none() {
                self.size_col = find(SIZE_NAMES);
            }
            if self.time_col.is_none() {
                self.time_col = find(TIME_NAMES);
            }
        }
        if self.id_col.is_none() {
            return Err(Error::parse(
                path,
                Some(1),
                format!(
                    "no object-id column: the header '{}' names none of {} (give --csv-params obj-id-col=N, as libCacheSim's -t)",
                    short(first),
                    ID_NAMES.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Whether the first line of `path` looks like a libCacheSim CSV header (names an id column).
    pub fn header_names_an_id(first: &str) -> bool {
        let mut l = Layout::default();
        l.complete(first, Path::new("")).is_ok() && l.has_header == Some(true)
    }
}

/// FNV-1a, 64 bit: the id of a string object id.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Streaming reader of a libCacheSim CSV trace (one line buffer).
pub struct LcsCsvReader {
    path: PathBuf,
    inner: BufReader<File>,
    layout: Layout,
    line: String,
    line_no: u64,
    sample: u64,
    started: bool,
    done: bool,
    sizes: SizeStats,
}

impl LcsCsvReader {
    /// Opens `path` with `layout` (completed from the first line when the reading starts).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path, layout: Layout) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(LcsCsvReader {
            path: path.into(),
            inner: BufReader::with_capacity(1 << 16, f),
            layout,
            line: String::new(),
            line_no: 0,
            sample: 0,
            started: false,
            done: false,
            sizes: SizeStats::default(),
        })
    }

    /// The object sizes of the requests read so far.
    pub fn sizes(&self) -> SizeStats {
        self.sizes
    }

    fn fail(&mut self, msg: String) -> Option<Result<Access>> {
        self.done = true;
        Some(Err(Error::parse(&self.path, Some(self.line_no), msg)))
    }
}

impl Iterator for LcsCsvReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            match self.inner.read_line(&mut self.line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_no += 1;
                    let s = self.line.trim_end_matches(['\n', '\r']);
                    if s.trim().is_empty() {
                        continue;
                    }
                    if !self.started {
                        self.started = true;
                        let first = s.trim_start_matches('\u{feff}').to_string();
                        if let Err(e) = self.layout.complete(&first, &self.path) {
                            self.done = true;
                            return Some(Err(e));
                        }
                        if self.layout.has_header == Some(true) {
                            continue;
                        }
                    }
                    let d = char::from(self.layout.delimiter.unwrap_or(b','));
                    let id_col = self.layout.id_col.unwrap_or(0);
                    let (mut id, mut size) = (None, None);
                    for (i, f) in s.split(d).enumerate() {
                        if i == id_col {
                            id = Some(f.trim().trim_matches('"'));
                        } else if Some(i) == self.layout.size_col {
                            size = Some(f.trim());
                        }
                    }
                    let Some(id) = id else {
                        let m = format!(
                            "missing object-id column {} ({} columns)",
                            id_col + 1,
                            s.split(d).count()
                        );
                        return self.fail(m);
                    };
                    let id = match (id.parse::<u64>(), self.layout.id_is_num) {
                        (Ok(n), None | Some(true)) => n,
                        (Err(_), Some(true)) => {
                            let m = format!(
                                "object id '{}' is not a non-negative integer (obj-id-is-num=true)",
                                short(id)
                            );
                            return self.fail(m);
                        }
                        _ => fnv1a(id.as_bytes()),
                    };
                    if let Some(sz) = size {
                        match sz.parse::<u64>() {
                            Ok(b) => self.sizes.add(b),
                            Err(_) => {
                                let m = format!(
                                    "object size '{}' is not a non-negative integer",
                                    short(sz)
                                );
                                return self.fail(m);
                            }
                        }
                    }
                    let a = Access {
                        group: self.sample,
                        table: 0,
                        id,
                    };
                    self.sample += 1;
                    return Some(Ok(a));
                }
                Err(e) => return self.fail(format!("unreadable line: {e}")),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_as_libcachesim_writes_them() {
        let l = Layout::parse(
            "time-col=2, obj-id-col=5, obj-size-col=4, obj-id-is-num=true, delimiter=,, has-header=true",
        )
        .unwrap();
        assert_eq!(
            l,
            Layout {
                id_col: Some(4),
                size_col: Some(3),
                time_col: Some(1),
                delimiter: Some(b','),
                has_header: Some(true),
                id_is_num: Some(true),
            }
        );
        assert_eq!(
            Layout::parse("delimiter=\\t").unwrap().delimiter,
            Some(b'\t')
        );
        let e = Layout::parse("obj-id-col=0").unwrap_err().to_string();
        assert!(e.contains("column number ≥ 1"), "{e}");
        let e = Layout::parse("obj-col=3").unwrap_err().to_string();
        assert!(e.contains("one of obj-id-col"), "{e}");
    }

    #[test]
    fn header_names_the_columns() {
        let mut l = Layout::default();
        l.complete("version,time,op,size,lbn", Path::new("t.csv"))
            .unwrap();
        assert_eq!(
            (l.id_col, l.size_col, l.time_col),
            (Some(4), Some(3), Some(1))
        );
        assert_eq!((l.delimiter, l.has_header), (Some(b','), Some(true)));
        assert!(Layout::header_names_an_id("version,time,op,size,lbn"));
        assert!(!Layout::header_names_an_id("batch,table,id2"));
        assert!(!Layout::header_names_an_id("1,2,3"));
        let mut l = Layout::default();
        let e = l
            .complete("a,b,c", Path::new("t.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("obj-id-col=N"), "{e}");
    }
}
