//! Timing statistics and the measurement CSV (contract: `validation/README.md`, columns
//! `technique,set,kind,model,draft,gamma,batch,new_tokens,context_tokens,position,metric,value,
//! repeats,spread,unit,date,gpu,driver,cuda,commit,command`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Header of every measurement CSV.
pub const HEADER: &str = "technique,set,kind,model,draft,gamma,batch,new_tokens,context_tokens,position,metric,value,repeats,spread,unit,date,gpu,driver,cuda,commit,command";

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

/// Provenance columns shared by every row of one run.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// GPU name (`nvidia-smi --query-gpu=name`) or `cpu`.
    pub gpu: String,
    /// Driver version.
    pub driver: String,
    /// CUDA version.
    pub cuda: String,
    /// Git commit of the harness source.
    pub commit: String,
    /// The command line that produced the rows.
    pub command: String,
}

impl Provenance {
    /// From the environment (`PERFCAST_GPU`, `PERFCAST_DRIVER`, `PERFCAST_CUDA`, set by the run
    /// script from nvidia-smi), the commit baked in at build time (`PERFCAST_GIT_COMMIT`, else
    /// the `PERFCAST_COMMIT` environment variable) and the process's arguments.
    pub fn from_env() -> Provenance {
        let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let commit = option_env!("PERFCAST_GIT_COMMIT")
            .map(str::to_string)
            .unwrap_or_else(|| env("PERFCAST_COMMIT", "unknown"));
        Provenance {
            gpu: env("PERFCAST_GPU", "unknown"),
            driver: env("PERFCAST_DRIVER", "unknown"),
            cuda: env("PERFCAST_CUDA", "unknown"),
            commit,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
}

/// One row of the tidy CSV. Empty strings for columns that do not apply.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// `set`.
    pub set: String,
    /// `forward`, `acceptance` or `e2e`.
    pub kind: String,
    /// Model (catalog name).
    pub model: String,
    /// Draft.
    pub draft: String,
    /// γ.
    pub gamma: String,
    /// Batch.
    pub batch: String,
    /// New tokens.
    pub new_tokens: String,
    /// Context tokens.
    pub context_tokens: String,
    /// Position.
    pub position: String,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Repeats.
    pub repeats: usize,
    /// Spread (empty when not applicable).
    pub spread: Option<f64>,
    /// Unit.
    pub unit: String,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// ISO 8601 UTC timestamp (seconds) of now.
pub fn now_iso() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends rows to `<dir>/<set>.csv`, writing the header when the file is new. Rows are flushed
/// as they come so a run cut short keeps every finished point.
pub struct Sink {
    technique: String,
    path: PathBuf,
    prov: Provenance,
    file: std::fs::File,
    /// Rows written.
    pub rows: usize,
}

impl Sink {
    /// Opens (appending) `<dir>/<set>.csv`.
    pub fn open(dir: &Path, set: &str, prov: Provenance) -> std::io::Result<Sink> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{set}.csv"));
        let new = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        if new {
            writeln!(file, "{HEADER}")?;
        }
        Ok(Sink {
            technique: "specdec".to_string(),
            path,
            prov,
            file,
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

    /// Writes one row with provenance.
    pub fn write(&mut self, r: &Row) -> std::io::Result<()> {
        let p = &self.prov;
        let spread = r.spread.map(|s| format!("{s:.6}")).unwrap_or_default();
        let fields = [
            self.technique.clone(),
            r.set.clone(),
            r.kind.clone(),
            r.model.clone(),
            r.draft.clone(),
            r.gamma.clone(),
            r.batch.clone(),
            r.new_tokens.clone(),
            r.context_tokens.clone(),
            r.position.clone(),
            r.metric.clone(),
            format!("{:.9e}", r.value),
            r.repeats.to_string(),
            spread,
            r.unit.clone(),
            now_iso(),
            p.gpu.clone(),
            p.driver.clone(),
            p.cuda.clone(),
            p.commit.clone(),
            p.command.clone(),
        ];
        let line = fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",");
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
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
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x"), "x");
    }

    #[test]
    fn sink_writes_header_once_and_all_columns() {
        let dir = std::env::temp_dir().join(format!("pcg-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let prov = Provenance {
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
        assert_eq!(lines[0], HEADER);
        // 21 columns; the quoted command holds one comma.
        assert_eq!(lines[1].split(',').count(), 22);
        assert!(lines[1].ends_with("\"x --a 1,2\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
