//! Calibration tables as catalog data: `calibration/<gpu>.toml` (the fitted latency-model
//! parameters, written by `perfcast calibrate`) and `calibration/<gpu>-validation.toml` (the
//! measured error per set, written by `perfcast validate --record`). Like every catalog file
//! they are embedded and `--catalog DIR` replaces them.
//!
//! Data only: the fit that writes them lives with its technique (`specdec::calib`).

use super::{parse_toml_str, Catalog, LatencyDefaults, LlmArch, EMBEDDED};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The latency parameters of one GPU: the pooled fit (or catalog defaults) and per-architecture
/// refits.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuLatency {
    /// Parameters for any architecture without its own refit.
    pub pooled: LatencyDefaults,
    /// Refits by catalog model name.
    pub per_model: BTreeMap<String, LatencyDefaults>,
    /// Leave-one-architecture-out fits by catalog model name (validation only).
    pub held_out: BTreeMap<String, LatencyDefaults>,
}

impl GpuLatency {
    /// The parameters for `arch`: its refit when calibrated, else the pooled ones. Takes the
    /// catalog entry (not a user-typed name) so lookups use the catalog's spelling.
    pub fn for_model(&self, arch: &LlmArch) -> &LatencyDefaults {
        self.per_model.get(&arch.name).unwrap_or(&self.pooled)
    }

    /// Whether `arch` has its own refit.
    pub fn has_model(&self, arch: &LlmArch) -> bool {
        self.per_model.contains_key(&arch.name)
    }

    /// The parameters of a fit that never saw `arch`'s measurements: its leave-one-out fit when
    /// recorded, else the pooled fit ([`GpuLatency::has_held_out`] tells which).
    pub fn held_out_for(&self, arch: &LlmArch) -> &LatencyDefaults {
        self.held_out.get(&arch.name).unwrap_or(&self.pooled)
    }

    /// Whether a leave-one-out fit of `arch` is recorded.
    pub fn has_held_out(&self, arch: &LlmArch) -> bool {
        self.held_out.contains_key(&arch.name)
    }
}

/// One set's measured error as `validate --record` stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSet {
    /// Technique (`specdec`).
    pub technique: String,
    /// Set name.
    pub set: String,
    /// The technique's cost source of the prediction (specdec: `roofline`, `pooled`,
    /// `heldout`, `profile`).
    #[serde(default = "default_costs")]
    pub costs: String,
    /// End-to-end points.
    pub points: usize,
    /// Mean absolute relative error of the end-to-end metric, fraction.
    pub mape: f64,
    /// Largest |relative error|, fraction.
    pub max_abs_pct_err: f64,
    /// Whether the set met its tolerance.
    pub pass: bool,
}

fn default_costs() -> String {
    "roofline".into()
}

/// One results file read, as calibration and validation files record it.
pub use crate::measure::Source;

/// The file `perfcast validate --record` writes (`models/calibration/<gpu>-validation.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// Catalog GPU name.
    pub gpu: String,
    /// Tool and version that wrote the file.
    pub generated_by: String,
    /// When it was written (ISO 8601 UTC).
    pub date: String,
    /// Whether the latency model was calibrated for this GPU.
    pub calibrated: bool,
    /// Per-set errors.
    pub set: Vec<RecordedSet>,
    /// The results files validated.
    pub source: Vec<Source>,
}

#[derive(Deserialize)]
struct CalibHead {
    /// The catalog GPU the file was measured on.
    #[serde(default)]
    gpu: Option<String>,
    latency: LatencyDefaults,
    #[serde(default)]
    fitted_kinds: Option<Vec<String>>,
    #[serde(default)]
    model: BTreeMap<String, ModelHead>,
    #[serde(flatten)]
    _rest: toml::Table,
}

#[derive(Deserialize)]
struct ModelHead {
    latency: LatencyDefaults,
    #[serde(default)]
    held_out_latency: Option<LatencyDefaults>,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// Calibration tables resolved per GPU, each once (on first use), shared by clones of the
/// catalog. Lock-free: a `OnceLock` per catalog GPU.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    by_gpu: BTreeMap<String, OnceLock<Result<GpuLatency>>>,
    /// Stack files by path, each parsed once (a study resolves its stack once per point).
    files: std::sync::Mutex<BTreeMap<std::path::PathBuf, StackFile>>,
}

/// A parsed stack file: its terms and the GPU it names as measured on.
type StackFile = Result<(GpuLatency, Option<String>)>;

impl Resolved {
    pub(super) fn new(gpus: &[super::Gpu]) -> Self {
        Resolved {
            by_gpu: gpus
                .iter()
                .map(|g| (g.name.clone(), OnceLock::new()))
                .collect(),
            files: Default::default(),
        }
    }
}

/// A copy of an error kept in the catalog (the I/O source is copied by kind and message).
fn copy_err(e: &Error) -> Error {
    match e {
        Error::OutOfRange {
            field,
            value,
            allowed,
        } => Error::OutOfRange {
            field: field.clone(),
            value: value.clone(),
            allowed: allowed.clone(),
        },
        Error::UnknownName {
            kind,
            name,
            suggestion,
            known,
        } => Error::UnknownName {
            kind,
            name: name.clone(),
            suggestion: suggestion.clone(),
            known: known.clone(),
        },
        Error::Output { path, reason } => Error::Output {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::Parse {
            path,
            line,
            message,
        } => Error::Parse {
            path: path.clone(),
            line: *line,
            message: message.clone(),
        },
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Unsupported(m) => Error::Unsupported(m.clone()),
    }
}

impl Catalog {
    /// The latency-model parameters of `gpu`: its calibration file when the catalog has one
    /// (pooled fit and per-architecture refits), else the catalog defaults. Each GPU's file is
    /// parsed once per loaded catalog; later edits need a fresh [`Catalog::load`].
    ///
    /// # Errors
    /// Unknown GPU, or a calibration file that exists but is malformed or out of range.
    pub fn latency(&self, gpu: &str) -> Result<&GpuLatency> {
        let g = self.gpu(gpu)?;
        let cell = self
            .resolved
            .by_gpu
            .get(&g.name)
            .ok_or_else(|| Error::Unsupported(format!("gpu {} added after load", g.name)))?;
        cell.get_or_init(|| self.resolve_latency(g))
            .as_ref()
            .map_err(copy_err)
    }

    fn resolve_latency(&self, g: &super::Gpu) -> Result<GpuLatency> {
        let rel = format!("calibration/{}.toml", g.name);
        if !self.has_file(&rel) {
            return Ok(GpuLatency {
                pooled: g.latency,
                per_model: BTreeMap::new(),
                held_out: BTreeMap::new(),
            });
        }
        let head: std::sync::Arc<CalibHead> = self.parse_shared(&rel)?;
        let path = self.source_of(&rel);
        Ok(self.check_latency(&head, &path)?.0)
    }

    /// Where `models/<rel>` is read from, as [`Catalog::read_text`] names it (without reading).
    fn source_of(&self, rel: &str) -> std::path::PathBuf {
        if self.memory_files().any(|m| m == rel) {
            format!("<memory models/{rel}>").into()
        } else if let Some(d) = self.dir.as_ref().filter(|d| d.join(rel).exists()) {
            d.join(rel)
        } else {
            format!("<embedded models/{rel}>").into()
        }
    }

    /// The terms of a stack file (calibration format; see [`super::stack`]) and the GPU it was
    /// measured on, if it says. Each path is read once per loaded catalog.
    ///
    /// # Errors
    /// The file cannot be read or is malformed (as a calibration file).
    pub(super) fn stack_file(&self, p: &std::path::Path) -> Result<(GpuLatency, Option<String>)> {
        let mut files = self
            .resolved
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = files.entry(p.to_path_buf()).or_insert_with(|| {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Error::io(
                    p,
                    std::io::Error::new(
                        e.kind(),
                        format!("--stack: {e} (allowed: harness, datasheet or a stack file)"),
                    ),
                )
            })?;
            let (lat, gpu) = self.parse_latency(&text, p)?;
            if let Some(g) = &gpu {
                self.gpu(g)?;
            }
            Ok((lat, gpu))
        });
        r.as_ref().map(Clone::clone).map_err(copy_err)
    }

    /// Parses a calibration-format file: pooled terms, per-architecture refits, the GPU named.
    fn parse_latency(
        &self,
        text: &str,
        path: &std::path::Path,
    ) -> Result<(GpuLatency, Option<String>)> {
        let f: CalibHead = parse_toml_str(text, path)?;
        self.check_latency(&f, path)
    }

    /// Checks a parsed calibration-format file (ranges, fitted kinds, model names) and returns
    /// its pooled terms, per-architecture refits and the GPU it names.
    fn check_latency(
        &self,
        f: &CalibHead,
        path: &std::path::Path,
    ) -> Result<(GpuLatency, Option<String>)> {
        f.latency.validate(&format!("{}.latency", path.display()))?;
        if let Some(k) = &f.fitted_kinds {
            if k.iter().any(|k| k != "forward") {
                return Err(Error::parse(
                    path,
                    None,
                    format!("fitted_kinds = {k:?}: a calibration may be fitted from forward rows only (end-to-end rows are for validation)"),
                ));
            }
        }
        let mut per_model = BTreeMap::new();
        let mut held_out = BTreeMap::new();
        for (name, m) in &f.model {
            if self.llm(name).map(|a| &a.name != name).unwrap_or(true) {
                return Err(Error::parse(
                    path,
                    None,
                    format!(
                        "[model.{name}]: not a catalog model name (spelled as in models/llms*.toml)"
                    ),
                ));
            }
            m.latency
                .validate(&format!("{}.model.{name}.latency", path.display()))?;
            if let Some(h) = m.held_out_latency {
                h.validate(&format!("{}.model.{name}.held_out_latency", path.display()))?;
                held_out.insert(name.clone(), h);
            }
            per_model.insert(name.clone(), m.latency);
        }
        Ok((
            GpuLatency {
                pooled: f.latency,
                per_model,
                held_out,
            },
            f.gpu.clone(),
        ))
    }

    /// Whether a calibration file exists for `gpu` (catalog spelling).
    pub fn is_calibrated(&self, gpu: &str) -> bool {
        // Without reading it: the embedded H200 file is 0.5 MB, and sweeps ask once per point.
        self.has_file(&format!("calibration/{gpu}.toml"))
    }

    /// The recorded validation of `gpu` (`calibration/<gpu>-validation.toml`), if the catalog
    /// has one.
    ///
    /// # Errors
    /// A file that exists but is malformed.
    pub fn recorded_validation(&self, gpu: &str) -> Result<Option<ValidationRecord>> {
        let rel = format!("calibration/{gpu}-validation.toml");
        if !self.has_file(&rel) {
            return Ok(None);
        }
        self.parse_toml(&rel).map(Some)
    }

    /// Every recorded validation of this catalog (`calibration/*-validation.toml`: the embedded
    /// files and those of the `--catalog` directory, which replace embedded ones of the same
    /// name), sorted by file name. Unreadable or malformed files are skipped.
    pub fn validation_records(&self) -> Vec<ValidationRecord> {
        let is_record = |n: &str| n.starts_with("calibration/") && n.ends_with("-validation.toml");
        let mut names: Vec<String> = EMBEDDED
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| is_record(n))
            .collect();
        for n in self.memory_files() {
            if is_record(n) && !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
        if let Some(d) = &self.dir {
            if let Ok(rd) = std::fs::read_dir(d.join("calibration")) {
                for e in rd.flatten() {
                    let n = format!("calibration/{}", e.file_name().to_string_lossy());
                    if is_record(&n) && !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        names.sort();
        names
            .iter()
            .filter_map(|n| self.parse_toml(n).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_dir_calibration_is_used_and_validated() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("calibration")).unwrap();
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "source = \"x\"\n[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        let c = Catalog::load(Some(d.path())).unwrap();
        assert_eq!(c.latency("a10g").unwrap().pooled.bw_efficiency, 0.5);
        assert!(c.is_calibrated("a10g"));
        // A loaded catalog resolves each GPU's calibration once; later edits need a fresh load.
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "[latency]\nflops_efficiency = 1.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        assert_eq!(c.latency("a10g").unwrap().pooled.flops_efficiency, 0.5);
        let c = Catalog::load(Some(d.path())).unwrap();
        assert!(c
            .latency("a10g")
            .unwrap_err()
            .to_string()
            .contains("flops_efficiency = 1.5"));
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            "fitted_kinds = [\"forward\", \"e2e\"]\n[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n",
        )
        .unwrap();
        // The previous load cached its (error) result; a fresh load sees the new file.
        let c = Catalog::load(Some(d.path())).unwrap();
        assert!(c
            .latency("a10g")
            .unwrap_err()
            .to_string()
            .contains("forward rows only"));
        // Per-architecture refits: used for that architecture only, held-out fits only by
        // held_out_for, and every table validated by name.
        let base = "[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n";
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            format!("{base}[model.llama-2-7b]\npoints = 40\n[model.llama-2-7b.latency]\nflops_efficiency = 0.7\nbw_efficiency = 0.6\nlayer_overhead_s = 2e-5\nstep_overhead_s = 1e-4\n[model.llama-2-7b.held_out_latency]\nflops_efficiency = 0.4\nbw_efficiency = 0.4\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n"),
        )
        .unwrap();
        let c = Catalog::load(Some(d.path())).unwrap();
        let l = c.latency("a10g").unwrap();
        let (a7, a13) = (c.llm("llama-2-7b").unwrap(), c.llm("LLAMA-2-13B").unwrap());
        assert_eq!(l.for_model(a7).bw_efficiency, 0.6);
        assert_eq!(l.for_model(a13).bw_efficiency, 0.5);
        assert_eq!(l.held_out_for(a7).bw_efficiency, 0.4);
        assert_eq!(l.held_out_for(a13).bw_efficiency, 0.5);
        assert!(l.has_model(a7) && !l.has_model(a13));
        assert!(l.has_held_out(a7) && !l.has_held_out(a13));
        std::fs::write(
            d.path().join("calibration/a10g.toml"),
            format!("{base}[model.llama-2-7b.latency]\nflops_efficiency = 0.7\nbw_efficiency = 0.6\nlayer_overhead_s = -2e-5\nstep_overhead_s = 1e-4\n"),
        )
        .unwrap();
        let c = Catalog::load(Some(d.path())).unwrap();
        let e = c.latency("a10g").unwrap_err().to_string();
        assert!(
            e.contains("model.llama-2-7b.latency.layer_overhead_s"),
            "{e}"
        );
    }

    #[test]
    fn validation_records_come_from_the_catalog_dir_too() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("calibration")).unwrap();
        std::fs::write(
            d.path().join("calibration/a10g-validation.toml"),
            "gpu = \"a10g\"\ngenerated_by = \"t\"\ndate = \"2026-11-29T00:00:00Z\"\ncalibrated = true\nsource = []\n[[set]]\ntechnique = \"freeze\"\nset = \"x\"\npoints = 3\nmape = 0.5\nmax_abs_pct_err = 0.6\npass = false\n",
        )
        .unwrap();
        let embedded = Catalog::embedded().unwrap().validation_records();
        let c = Catalog::load(Some(d.path())).unwrap();
        let r = c.validation_records();
        assert_eq!(r.len(), embedded.len() + 1);
        assert!(r
            .iter()
            .any(|r| r.gpu == "a10g" && r.set[0].costs == "roofline"));
    }
}
