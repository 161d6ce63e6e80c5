//! Timing statistics, and the measurement CSV through the shared contract crate
//! (`perfcast-measure`, documented in `docs/measurements.md`): [`Row`], [`Provenance`] and the
//! writer are the library's own, so the harness writes exactly what `perfcast calibrate` and
//! `perfcast validate` read.

use std::path::{Path, PathBuf};

pub use perfcast_measure::{Params, Provenance, Row, COLUMNS};

/// Header of every new measurement CSV (the contract's [`COLUMNS`], comma-joined).
pub fn header() -> String {
    COLUMNS.join(",")
}

/// Median, 10th and 90th percentile (nearest-rank on the sorted sample).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Sample size.
    pub n: usize,
}

impl Stats {
    /// Statistics of `xs` (non-empty).
    pub fn of(xs: &[f64]) -> Stats {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let q = |f: f64| v[((f * (n - 1) as f64).round() as usize).min(n - 1)];
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Stats {
            median,
            p10: q(0.1),
            p90: q(0.9),
            n,
        }
    }

    /// `(p90 − p10) / median`.
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.p90 - self.p10) / self.median
        }
    }
}

/// Provenance of this process: `PERFCAST_GPU`, `PERFCAST_DRIVER`, `PERFCAST_CUDA` (set by the
/// run script from nvidia-smi), the commit baked in at build time (`PERFCAST_GIT_COMMIT`, else
/// the `PERFCAST_COMMIT` environment variable) and the process's arguments; each row is dated
/// when written.
pub fn provenance() -> Provenance {
    Provenance::from_env(option_env!("PERFCAST_GIT_COMMIT"))
}

/// ISO 8601 UTC timestamp (seconds) of now.
pub fn now_iso() -> String {
    perfcast_measure::utc_now()
}

/// A count as a contract column (`None` past `u32::MAX`, which no batch, token or γ reaches).
pub fn n(x: usize) -> Option<u32> {
    u32::try_from(x).ok()
}

/// Appends rows to `<dir>/<set>.csv`, writing the header when the file is new; a file that
/// exists keeps its own header's column layout (the 21-column files written before `params`).
/// Rows are flushed as they come so a run cut short keeps every finished point.
pub struct Sink {
    technique: String,
    path: PathBuf,
    prov: Provenance,
    w: perfcast_measure::Writer<std::fs::File>,
    /// Rows written.
    pub rows: usize,
}

impl Sink {
    /// Opens (appending) `<dir>/<set>.csv`.
    pub fn open(dir: &Path, set: &str, prov: Provenance) -> std::io::Result<Sink> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{set}.csv"));
        let existing = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .filter(|h| !h.trim().is_empty());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let w = match existing {
            Some(h) => {
                let cols: Vec<&str> = h.split(',').map(str::trim).collect();
                perfcast_measure::Writer::with_columns(file, &cols)?
            }
            None => perfcast_measure::Writer::new(file)?,
        };
        Ok(Sink {
            technique: "specdec".to_string(),
            path,
            prov,
            w,
            rows: 0,
        })
    }

    /// Sets the `technique` column (default `specdec`).
    pub fn with_technique(mut self, technique: &str) -> Sink {
        self.technique = technique.to_string();
        self
    }

    /// Path written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one row with this sink's technique and provenance (dated now).
    pub fn write(&mut self, r: &Row) -> std::io::Result<()> {
        let row = Row {
            technique: self.technique.clone(),
            provenance: self.prov.clone(),
            ..r.clone()
        };
        self.w.write(&row)?;
        self.rows += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_hand_worked() {
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.median, 6.0);
        assert_eq!(s.p10, 2.0); // rank round(0.1·10) = 1
        assert_eq!(s.p90, 10.0);
        assert!((s.spread() - 8.0 / 6.0).abs() < 1e-12);
        assert_eq!(Stats::of(&[1.0, 3.0]).median, 2.0);
    }

    #[test]
    fn iso_date_shape_and_quoting() {
        let d = now_iso();
        assert_eq!(d.len(), 20);
        assert!(d.starts_with("20") && d.ends_with('Z'));
        let mut w =
            perfcast_measure::Writer::with_columns(Vec::new(), &perfcast_measure::LEGACY_COLUMNS)
                .unwrap();
        w.write(&Row {
            set: "a,b".into(),
            model: "x".into(),
            ..Default::default()
        })
        .unwrap();
        let line = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(line.starts_with(",\"a,b\",,x,"), "{line}");
    }

    #[test]
    fn sink_writes_header_once_and_all_columns() {
        let dir = std::env::temp_dir().join(format!("pcg-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let prov = Provenance {
            date: String::new(),
            gpu: "g".into(),
            driver: "d".into(),
            cuda: "c".into(),
            commit: "abc".into(),
            command: "x --a 1,2".into(),
        };
        for _ in 0..2 {
            let mut s = Sink::open(&dir, "set1", prov.clone()).unwrap();
            s.write(&Row {
                set: "set1".into(),
                kind: "forward".into(),
                value: 0.5,
                repeats: 3,
                spread: Some(0.1),
                unit: "s".into(),
                ..Default::default()
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(dir.join("set1.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], header());
        // 22 columns; the quoted command holds one comma.
        assert_eq!(lines[1].split(',').count(), 23);
        assert!(lines[1].ends_with("\"x --a 1,2\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
