//! The catalog: hardware, model architectures and scenarios known to the binary.
//!
//! Hardware terms (datasheet peaks and bandwidths, [`Gpu`]) and software-stack terms (kernel
//! efficiencies and fixed overheads, [`Stack`]) are separate entries, so a stack calibrated on one
//! GPU can be applied to another ([`stack`]).
//!
//! Every file under `models/` that the library needs is embedded with `include_str!`, so the binary
//! works from any directory. `--catalog DIR` replaces any embedded file with `DIR/<same path>` when
//! that file exists there, and [`Catalog::load_with`] replaces files by text held in memory.
//!
//! Embedded files are parsed once per process ([`Catalog::parse_shared`]): they cannot change,
//! so a process that loads many catalogs (a test suite, the `catalog` fuzz target) pays for
//! each embedded file once, not once per catalog.

mod calibration;
mod gpu;
mod llm;
pub mod stack;

pub use calibration::{GpuLatency, RecordedSet, Source, ValidationRecord};
pub use gpu::{Gpu, LatencyDefaults};
pub use llm::{LlmArch, NormKind};
pub use stack::{Stack, StackName, DEFAULT_STACK, HARNESS_REFERENCE_GPU};

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Files of `models/` embedded in the binary, by their path relative to `models/`.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("gpus.toml", include_str!("../models/gpus.toml")),
    ("llms.toml", include_str!("../models/llms.toml")),
    (
        "llms-validation.toml",
        include_str!("../models/llms-validation.toml"),
    ),
    ("dnn/models.toml", include_str!("../models/dnn/models.toml")),
    (
        "calibration/h200.toml",
        include_str!("../models/calibration/h200.toml"),
    ),
    (
        "calibration/h200-freeze.toml",
        include_str!("../models/calibration/h200-freeze.toml"),
    ),
    (
        "calibration/h200-gradcomp.toml",
        include_str!("../models/calibration/h200-gradcomp.toml"),
    ),
    (
        "calibration/h200-validation.toml",
        include_str!("../models/calibration/h200-validation.toml"),
    ),
    (
        "scenarios/default.toml",
        include_str!("../models/scenarios/default.toml"),
    ),
];

/// The loaded catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// GPUs, in file order.
    pub gpus: Vec<Gpu>,
    /// LLM architectures, in file order.
    pub llms: Vec<LlmArch>,
    /// Directory overriding embedded files, if any.
    pub dir: Option<PathBuf>,
    /// File texts held in memory ([`Catalog::load_with`]), by path relative to `models/`; they
    /// replace both `dir`'s files and the embedded ones. Shared by clones.
    texts: Arc<BTreeMap<String, String>>,
    /// Calibration tables resolved per GPU on first use ([`Catalog::latency`]), so a sweep
    /// parses each calibration file once, not once per point. Shared by clones.
    resolved: std::sync::Arc<calibration::Resolved>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuFile {
    gpu: Vec<Gpu>,
}

#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmFile {
    #[serde(default)]
    llm: Vec<LlmArch>,
}

impl Catalog {
    /// The embedded catalog.
    ///
    /// # Errors
    /// Only if an embedded file is malformed (a build defect, caught by tests).
    pub fn embedded() -> Result<Self> {
        Self::load(None)
    }

    /// Loads the catalog, taking files from `dir` where they exist there.
    ///
    /// # Errors
    /// [`Error::Io`] if `dir` is not a readable directory, [`Error::Parse`] for malformed TOML,
    /// [`Error::OutOfRange`] for invalid entries.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        Self::load_with(dir, &[])
    }

    /// Loads the catalog as [`Catalog::load`] does, with the files named in `texts` (path
    /// relative to `models/`, e.g. `calibration/h200.toml`, and the file's text) replaced by
    /// that text: it wins over `dir`'s file and the embedded one. Lets a caller try a catalog
    /// edit without writing files (the `catalog` fuzz target); errors name such a file
    /// `<memory models/PATH>`.
    ///
    /// # Errors
    /// As [`Catalog::load`].
    pub fn load_with(dir: Option<&Path>, texts: &[(&str, &str)]) -> Result<Self> {
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(Error::io(
                    d,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "--catalog: not a directory"),
                ));
            }
        }
        let mut cat = Catalog {
            gpus: Vec::new(),
            llms: Vec::new(),
            dir: dir.map(Path::to_path_buf),
            texts: Arc::new(
                texts
                    .iter()
                    .map(|(r, t)| ((*r).to_string(), (*t).to_string()))
                    .collect(),
            ),
            resolved: Default::default(),
        };
        let gpus: GpuFile = cat.parse_toml("gpus.toml")?;
        let mut llms: LlmFile = cat.parse_toml("llms.toml")?;
        let val: LlmFile = cat.parse_toml("llms-validation.toml")?;
        llms.llm.extend(val.llm);
        for g in &gpus.gpu {
            g.validate()?;
        }
        for m in &llms.llm {
            m.validate()?;
        }
        cat.resolved = std::sync::Arc::new(calibration::Resolved::new(&gpus.gpu));
        cat.gpus = gpus.gpu;
        cat.llms = llms.llm;
        Ok(cat)
    }

    /// The text of `models/<rel>`: from memory ([`Catalog::load_with`]) if given there, else from
    /// the override directory if it has the file, else embedded. Returns the text and a path
    /// naming where it came from (for error messages).
    ///
    /// # Errors
    /// [`Error::Io`] when the file is neither in memory, in the override directory nor embedded.
    pub fn read_text(&self, rel: &str) -> Result<(String, PathBuf)> {
        if let Some(t) = self.texts.get(rel) {
            return Ok((t.clone(), PathBuf::from(format!("<memory models/{rel}>"))));
        }
        if let Some(d) = &self.dir {
            let p = d.join(rel);
            if p.exists() {
                let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
                return Ok((text, p));
            }
        }
        EMBEDDED
            .iter()
            .find(|(name, _)| *name == rel)
            .map(|(name, text)| {
                (
                    text.to_string(),
                    PathBuf::from(format!("<embedded models/{name}>")),
                )
            })
            .ok_or_else(|| {
                Error::io(
                    rel,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "not in the catalog"),
                )
            })
    }

    /// Whether the catalog has `models/<rel>` (in memory, in the override directory, or
    /// embedded), without reading it.
    pub fn has_file(&self, rel: &str) -> bool {
        self.texts.contains_key(rel)
            || self.dir.as_ref().is_some_and(|d| d.join(rel).exists())
            || embedded_text(rel).is_some()
    }

    /// The names (relative to `models/`) of the files held in memory ([`Catalog::load_with`]).
    pub fn memory_files(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }

    /// Parses `models/<rel>` as TOML into `T` (a copy of [`Catalog::parse_shared`]'s value).
    ///
    /// # Errors
    /// As [`Catalog::read_text`], plus [`Error::Parse`].
    pub fn parse_toml<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        rel: &str,
    ) -> Result<T> {
        self.parse_shared(rel).map(|t| T::clone(&t))
    }

    /// Parses `models/<rel>` as TOML into `T`, shared. When the file comes from the embedded
    /// catalog (neither in memory nor in the override directory), the value is parsed once per
    /// process and type and handed out again on later calls (embedded text cannot change);
    /// other files are parsed on every call.
    ///
    /// # Errors
    /// As [`Catalog::read_text`], plus [`Error::Parse`].
    pub fn parse_shared<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        rel: &str,
    ) -> Result<Arc<T>> {
        let from_dir = self.dir.as_ref().is_some_and(|d| d.join(rel).exists());
        let embedded = match embedded_text(rel) {
            Some(e) if !from_dir && !self.texts.contains_key(rel) => e,
            _ => {
                let (text, path) = self.read_text(rel)?;
                return parse_toml_str(&text, &path).map(Arc::new);
            }
        };
        type Memo = Mutex<HashMap<(TypeId, &'static str), Arc<dyn Any + Send + Sync>>>;
        static MEMO: OnceLock<Memo> = OnceLock::new();
        let memo = MEMO.get_or_init(Default::default);
        let key = (TypeId::of::<T>(), embedded.0);
        let hit = memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(v) = hit.and_then(|v| v.downcast::<T>().ok()) {
            return Ok(v);
        }
        // Parsed outside the lock: two threads may both parse a file the first time (the same
        // value); only successes are kept (an embedded file never fails outside a build defect).
        let path = PathBuf::from(format!("<embedded models/{rel}>"));
        let v: Arc<T> = Arc::new(parse_toml_str(embedded.1, &path)?);
        memo.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, v.clone());
        Ok(v)
    }

    /// Looks up a GPU by name (case-insensitive).
    ///
    /// # Errors
    /// [`Error::UnknownName`] with the nearest known name.
    pub fn gpu(&self, name: &str) -> Result<&Gpu> {
        self.gpus
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::unknown("gpu", name, self.gpus.iter().map(|g| g.name.as_str())))
    }

    /// Looks up an LLM architecture by name (case-insensitive).
    ///
    /// # Errors
    /// [`Error::UnknownName`] with the nearest known name.
    pub fn llm(&self, name: &str) -> Result<&LlmArch> {
        self.llms
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::unknown("model", name, self.llms.iter().map(|m| m.name.as_str())))
    }
}

/// The embedded file `rel` (its name, with the static lifetime, and its text), if any.
fn embedded_text(rel: &str) -> Option<(&'static str, &'static str)> {
    EMBEDDED.iter().find(|(n, _)| *n == rel).copied()
}

/// Parses TOML text into `T`, turning errors into a one-line [`Error::Parse`] with the line number.
///
/// # Errors
/// [`Error::Parse`].
pub fn parse_toml_str<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() as u64 + 1);
        Error::parse(
            path,
            line,
            crate::error::plain_serde_message(e.message().replace('\n', " ").trim()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_loads_and_has_the_required_entries() {
        let c = Catalog::embedded().unwrap();
        for g in ["h200", "h100", "a100-80gb", "v100-32gb", "l40s", "a10g"] {
            c.gpu(g).unwrap();
        }
        for m in [
            "llama-2-7b",
            "llama-2-13b",
            "llama-2-70b",
            "llama-65b",
            "llama-3.1-8b",
            "llama-3.1-70b",
            "llama-3.2-1b",
            "llama-3.2-3b",
            "opt-125m",
            "opt-350m",
            "opt-1.3b",
            "opt-66b",
            "tinyllama-1.1b",
            "sheared-llama-1.3b",
            "sheared-llama-2.7b",
        ] {
            c.llm(m).unwrap();
        }
    }

    #[test]
    fn parameter_counts_match_published_within_one_percent() {
        let c = Catalog::embedded().unwrap();
        for m in &c.llms {
            let derived = m.param_count() as f64;
            let err = (derived - m.published_params).abs() / m.published_params;
            assert!(
                err < 0.01,
                "{}: derived {derived:.4e} vs published {:.4e} ({:.2}% off, tolerance 1%)",
                m.name,
                m.published_params,
                err * 100.0
            );
        }
    }

    #[test]
    fn unknown_gpu_error_names_the_nearest() {
        let c = Catalog::embedded().unwrap();
        let e = c.gpu("h2000").unwrap_err().to_string();
        assert!(
            e.contains("unknown gpu 'h2000'") && e.contains("did you mean 'h200'"),
            "{e}"
        );
    }

    #[test]
    fn memory_files_replace_the_directory_and_embedded_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("calibration")).unwrap();
        let cal = |eff: f64| {
            format!("[latency]\nflops_efficiency = {eff}\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n")
        };
        std::fs::write(d.path().join("calibration/a10g.toml"), cal(0.25)).unwrap();
        let mem = cal(0.75);
        let c = Catalog::load_with(Some(d.path()), &[("calibration/a10g.toml", &mem)]).unwrap();
        assert_eq!(c.latency("a10g").unwrap().pooled.flops_efficiency, 0.75);
        assert_eq!(
            c.memory_files().collect::<Vec<_>>(),
            ["calibration/a10g.toml"]
        );
        // Without the memory file the directory's wins; clones share the memory files.
        let plain = Catalog::load(Some(d.path())).unwrap();
        assert_eq!(plain.latency("a10g").unwrap().pooled.flops_efficiency, 0.25);
        assert!(c.clone().has_file("calibration/a10g.toml"));
        // A memory file that did not exist before becomes part of the catalog.
        let rec = Catalog::embedded()
            .unwrap()
            .read_text("calibration/h200-validation.toml")
            .unwrap()
            .0
            .replace("gpu = \"h200\"", "gpu = \"a10g\"");
        let c = Catalog::load_with(None, &[("calibration/a10g-validation.toml", &rec)]).unwrap();
        assert_eq!(c.recorded_validation("a10g").unwrap().unwrap().gpu, "a10g");
        let gpus: Vec<String> = c.validation_records().into_iter().map(|r| r.gpu).collect();
        assert!(
            gpus.contains(&"a10g".to_string()) && gpus.contains(&"h200".to_string()),
            "{gpus:?}"
        );
        // Errors name the memory file.
        let e = Catalog::load_with(None, &[("gpus.toml", "[[gpu]]\nname = \n")]).unwrap_err();
        assert!(e.to_string().contains("<memory models/gpus.toml>"), "{e}");
    }

    #[test]
    fn embedded_files_are_parsed_once_others_every_time() {
        let c = Catalog::embedded().unwrap();
        let a: Arc<GpuFile> = c.parse_shared("gpus.toml").unwrap();
        let b: Arc<GpuFile> = Catalog::embedded()
            .unwrap()
            .parse_shared("gpus.toml")
            .unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the embedded gpus.toml was parsed twice"
        );
        assert_eq!(a.gpu.len(), c.gpus.len());
        // A replaced file is parsed on each call and its own text is what comes back.
        let text = c.read_text("gpus.toml").unwrap().0;
        let one = text
            .split("[[gpu]]")
            .take(2)
            .collect::<Vec<_>>()
            .join("[[gpu]]");
        let m = Catalog::load_with(None, &[("gpus.toml", &one)]).unwrap();
        assert_eq!(m.gpus.len(), 1);
        let x: Arc<GpuFile> = m.parse_shared("gpus.toml").unwrap();
        let y: Arc<GpuFile> = m.parse_shared("gpus.toml").unwrap();
        assert!(!Arc::ptr_eq(&x, &y) && !Arc::ptr_eq(&x, &a));
        assert_eq!(x.gpu.len(), 1);
    }

    #[test]
    fn malformed_toml_reports_the_line() {
        let e = parse_toml_str::<GpuFile>("[[gpu]]\nname = \n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("x.toml:2:"), "{e}");
    }
}
