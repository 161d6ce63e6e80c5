//! MovieLens ratings: `userId,movieId,rating,timestamp` with a header (ml-latest, ml-20m, ml-25m),
//! `user::movie::rating::time` (ml-1m `ratings.dat`) or tab-separated without a header (ml-100k
//! `u.data`, and its splits `u1.base` … `ub.test`). Each rating is one sample with up to two
//! lookups ([`Lookups`]): table 0 the user, table 1 the movie.
//!
//! Order ([`Order`]): MovieLens files are not in time order (ml-latest is sorted by user, ml-100k
//! is unsorted), so by default ratings are replayed by timestamp (a stable sort: equal times
//! keep file order). A file already in time order streams; otherwise the reader holds 16 bytes
//! per rating (time, user, movie) to sort them. `--order file` streams in file order.

use super::text::short;
use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Which lookups a rating makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookups {
    /// The user's row (table 0), then the movie's (table 1).
    #[default]
    Both,
    /// Only the movie's row (table 1): an item-embedding cache.
    Items,
    /// Only the user's row (table 0).
    Users,
}

impl std::str::FromStr for Lookups {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "both" => Ok(Lookups::Both),
            "items" => Ok(Lookups::Items),
            "users" => Ok(Lookups::Users),
            other => Err(Error::range("--lookups", other, "items, users or both")),
        }
    }
}

/// The order ratings are replayed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// By timestamp (stable: equal times keep file order).
    #[default]
    Time,
    /// As the file lists them.
    File,
}

impl std::str::FromStr for Order {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "time" => Ok(Order::Time),
            "file" => Ok(Order::File),
            other => Err(Error::range("--order", other, "time or file")),
        }
    }
}

/// One parsed rating: user, movie, timestamp (absent when the line has no fourth column).
type Rating = (u64, u64, Option<u64>);

/// A rating and its line number.
type NumberedRating = (u64, u64, Option<u64>, u64);

/// Parses one non-empty line; `Ok(None)` for a header.
fn parse_line(s: &str, line_no: u64) -> std::result::Result<Option<Rating>, String> {
    if line_no == 1 && s.to_ascii_lowercase().starts_with("userid") {
        return Ok(None);
    }
    let f: Vec<&str> = if s.contains("::") {
        s.split("::").collect()
    } else {
        s.split([',', '\t']).collect()
    };
    let num = |i: usize, name: &str| -> std::result::Result<u64, String> {
        let v = f.get(i).map(|v| v.trim()).ok_or_else(|| {
            format!("missing {name} column (expected userId,movieId,rating,timestamp)")
        })?;
        v.parse::<u64>()
            .map_err(|_| format!("{name} '{}' is not a non-negative integer", short(v)))
    };
    let (u, m) = (num(0, "userId")?, num(1, "movieId")?);
    let t = match f.get(3) {
        Some(_) => Some(num(3, "timestamp")?),
        None => None,
    };
    Ok(Some((u, m, t)))
}

/// Streaming reader of a MovieLens ratings file, in file order.
pub struct MovieLensReader {
    path: PathBuf,
    inner: BufReader<File>,
    line: String,
    line_no: u64,
    sample: u64,
    lookups: Lookups,
    pending: Option<Access>,
    done: bool,
}

impl MovieLensReader {
    /// Opens `path` (both lookups per rating, file order).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Lookups::Both)
    }

    /// Opens `path` with the given lookups per rating, file order.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open_with(path: &Path, lookups: Lookups) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(MovieLensReader {
            path: path.into(),
            inner: BufReader::with_capacity(1 << 16, f),
            line: String::new(),
            line_no: 0,
            sample: 0,
            lookups,
            pending: None,
            done: false,
        })
    }

    /// The next rating (user, movie, timestamp, line number).
    fn next_rating(&mut self) -> Option<Result<NumberedRating>> {
        while !self.done {
            self.line.clear();
            match self.inner.read_line(&mut self.line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_no += 1;
                    let s = self.line.trim();
                    if s.is_empty() {
                        continue;
                    }
                    match parse_line(s, self.line_no) {
                        Ok(None) => continue,
                        Ok(Some((u, m, t))) => return Some(Ok((u, m, t, self.line_no))),
                        Err(e) => {
                            self.done = true;
                            return Some(Err(Error::parse(&self.path, Some(self.line_no), e)));
                        }
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::parse(
                        &self.path,
                        Some(self.line_no + 1),
                        format!("unreadable line: {e}"),
                    )));
                }
            }
        }
        None
    }
}

/// The accesses of rating number `sample`.
fn lookups_of(lookups: Lookups, sample: u64, user: u64, movie: u64) -> (Access, Option<Access>) {
    let a = |table, id| Access {
        group: sample,
        table,
        id,
    };
    match lookups {
        Lookups::Both => (a(0, user), Some(a(1, movie))),
        Lookups::Items => (a(1, movie), None),
        Lookups::Users => (a(0, user), None),
    }
}

impl Iterator for MovieLensReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(a) = self.pending.take() {
            return Some(Ok(a));
        }
        let (u, m, _, _) = match self.next_rating()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let (first, second) = lookups_of(self.lookups, self.sample, u, m);
        self.sample += 1;
        self.pending = second;
        Some(Ok(first))
    }
}

/// Opens `path` replayed in `order` with `lookups` per rating. Time order streams when the file is
/// already in time order (one pass to check it, a second to read); otherwise it reads every
/// rating (16 bytes each) and sorts them by time, stably.
///
/// # Errors
/// The file cannot be opened; time order and a line without a timestamp (naming it), a
/// malformed line, a user or movie id above 2³² − 1 when sorting.
pub fn open(path: &Path, order: Order, lookups: Lookups) -> Result<super::Reader> {
    if order == Order::File {
        return Ok(Box::new(MovieLensReader::open_with(path, lookups)?));
    }
    let no_time = |line: u64| {
        Error::parse(
            path,
            Some(line),
            "no timestamp column (4th) to replay in time order; use --order file",
        )
    };
    // Pass 1: already in time order?
    let mut r = MovieLensReader::open_with(path, lookups)?;
    let mut last = 0u64;
    let mut sorted = true;
    while let Some(x) = r.next_rating() {
        let (_, _, t, line) = x?;
        let t = t.ok_or_else(|| no_time(line))?;
        if t < last {
            sorted = false;
            break;
        }
        last = t;
    }
    if sorted {
        return Ok(Box::new(MovieLensReader::open_with(path, lookups)?));
    }
    let mut r = MovieLensReader::open_with(path, lookups)?;
    let mut all: Vec<(u64, u32, u32)> = Vec::new();
    while let Some(x) = r.next_rating() {
        let (u, m, t, line) = x?;
        let t = t.ok_or_else(|| no_time(line))?;
        let id32 = |v: u64, name: &str| {
            u32::try_from(v).map_err(|_| {
                Error::parse(
                    path,
                    Some(line),
                    format!("{name} {v} above 2^32-1: cannot sort by time; use --order file"),
                )
            })
        };
        all.push((t, id32(u, "userId")?, id32(m, "movieId")?));
    }
    all.sort_by_key(|x| x.0);
    Ok(Box::new(all.into_iter().enumerate().flat_map(
        move |(i, (_, u, m))| {
            let (a, b) = lookups_of(lookups, i as u64, u64::from(u), u64::from(m));
            std::iter::once(Ok(a)).chain(b.map(Ok))
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(path: &Path, order: Order, lookups: Lookups) -> Vec<(u64, u32, u64)> {
        open(path, order, lookups)
            .unwrap()
            .map(|a| a.map(|a| (a.group, a.table, a.id)).unwrap())
            .collect()
    }

    #[test]
    fn time_order_and_lookups() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("u.data");
        std::fs::write(
            &p,
            "1\t10\t5\t300\n2\t20\t3\t100\n3\t30\t4\t300\n4\t40\t1\t200\n",
        )
        .unwrap();
        // By time: 100 (2), 200 (4), 300 (1, then 3: file order among equal times).
        assert_eq!(
            ids(&p, Order::Time, Lookups::Items),
            vec![(0, 1, 20), (1, 1, 40), (2, 1, 10), (3, 1, 30)]
        );
        assert_eq!(
            ids(&p, Order::File, Lookups::Users),
            vec![(0, 0, 1), (1, 0, 2), (2, 0, 3), (3, 0, 4)]
        );
        let both = ids(&p, Order::Time, Lookups::Both);
        assert_eq!(&both[..2], &[(0, 0, 2), (0, 1, 20)]);
        assert_eq!(both.len(), 8);
        // Without a timestamp, time order names the line.
        std::fs::write(&p, "1,10\n").unwrap();
        let e = open(&p, Order::Time, Lookups::Both)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(":1: no timestamp") && e.contains("--order file"),
            "{e}"
        );
        assert_eq!(ids(&p, Order::File, Lookups::Both).len(), 2);
    }
}
