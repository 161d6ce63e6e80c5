//! The catalog: hardware, model architectures and scenarios known to the binary.
//!
//! Hardware terms (datasheet peaks and bandwidths, [`Gpu`]) and software-stack terms (kernel
//! efficiencies and fixed overheads, [`Stack`]) are separate entries, so a stack calibrated on one
//! GPU can be applied to another ([`stack`]).
//!
//! Every file under `models/` that the library needs is embedded with `include_str!`, so the binary
//! works from any directory. `--catalog DIR` replaces any embedded file with `DIR/<same path>` when
//! that file exists there.

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
use std::path::{Path, PathBuf};

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
    /// Calibration tables resolved per GPU on first use ([`Catalog::latency`]), so a sweep
    /// parses each calibration file once, not once per point. Shared by clones.
    resolved: std::sync::Arc<calibration::Resolved>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuFile {
    gpu: Vec<Gpu>,
}

#[derive(serde::Deserialize)]
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

    /// The text of `models/<rel>`: from the override directory if it has the file, else embedded.
    /// Returns the text and a path naming where it came from (for error messages).
    ///
    /// # Errors
    /// [`Error::Io`] when the file is neither in the override directory nor embedded.
    pub fn read_text(&self, rel: &str) -> Result<(String, PathBuf)> {
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

    /// Parses `models/<rel>` as TOML into `T`.
    ///
    /// # Errors
    /// As [`Catalog::read_text`], plus [`Error::Parse`].
    pub fn parse_toml<T: DeserializeOwned>(&self, rel: &str) -> Result<T> {
        let (text, path) = self.read_text(rel)?;
        parse_toml_str(&text, &path)
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
    fn malformed_toml_reports_the_line() {
        let e = parse_toml_str::<GpuFile>("[[gpu]]\nname = \n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("x.toml:2:"), "{e}");
    }
}
