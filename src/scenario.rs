//! What-if scenarios: `[[study]]` tables with fixed parameters and `[study.sweep]` axes.
//!
//! ```toml
//! seed = 42                      # optional; every random draw derives from it
//! [[study]]
//! name = "drafts"                # names the output files
//! technique = "specdec"          # which module evaluates the points
//! target = "llama-2-70b"         # fixed parameters ...
//! [study.sweep]                  # ... and axes; the grid is their product
//! gamma = { from = 1, to = 8 }   # inclusive range (optional `step`)
//! batch = [1, 8, 32]             # or a list (of numbers, strings or tables)
//! ```
//!
//! Each grid point is the fixed table merged with one value of every axis; the technique
//! deserializes it into its own `Spec` with `deny_unknown_fields`, so a misspelt key is an
//! error naming the study and the key.
//!
//! This module is below the techniques: it parses and expands grids and defines the [`Study`]
//! trait, and imports no technique. [`crate::studies`] builds each study through its technique's
//! front door.

use crate::catalog::parse_toml_str;
use crate::error::{Error, Result};
use crate::report::{LinePlot, Rows};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Default seed when a scenario names none.
pub const DEFAULT_SEED: u64 = 20_231_105;

/// One `[[study]]` table, before the technique interprets it.
#[derive(Debug, Clone)]
pub struct StudySpec {
    /// Study name (file-name safe).
    pub name: String,
    /// Technique (`specdec`, ...).
    pub technique: String,
    /// Fixed parameters.
    pub fixed: toml::Table,
    /// Sweep axes in file order, each with at least one value.
    pub axes: Vec<(String, Vec<toml::Value>)>,
    /// Where the scenario came from (for errors).
    pub path: PathBuf,
}

impl StudySpec {
    /// Number of grid points.
    pub fn len(&self) -> usize {
        self.axes.iter().map(|(_, v)| v.len()).product()
    }

    /// Whether the grid is empty (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All grid points, the last axis varying fastest.
    pub fn grid(&self) -> Vec<toml::Table> {
        let mut points = vec![self.fixed.clone()];
        for (key, values) in &self.axes {
            let mut next = Vec::with_capacity(points.len() * values.len());
            for p in &points {
                for v in values {
                    let mut q = p.clone();
                    q.insert(key.clone(), v.clone());
                    next.push(q);
                }
            }
            points = next;
        }
        points
    }

    /// Names of the axes with more than one value.
    pub fn swept(&self) -> Vec<&str> {
        self.axes
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Deserializes one point into `T`, with errors naming the study.
    ///
    /// # Errors
    /// [`Error::Parse`] naming the study and the offending key.
    pub fn point<T: DeserializeOwned>(&self, point: &toml::Table) -> Result<T> {
        T::deserialize(toml::Value::Table(point.clone())).map_err(|e| {
            Error::parse(
                &self.path,
                None,
                format!(
                    "study '{}': {}",
                    self.name,
                    crate::error::plain_serde_message(e.to_string().replace('\n', " ").trim())
                ),
            )
        })
    }
}

/// What a study produced.
#[derive(Debug, Clone, Default)]
pub struct StudyReport {
    /// Tidy rows (one per point × predictor).
    pub rows: Rows,
    /// Plots to render.
    pub plots: Vec<LinePlot>,
    /// Markdown section for `summary.md` (headline answers).
    pub summary_md: String,
}

/// Settings shared by every study of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunContext {
    /// Scenario seed.
    pub seed: u64,
    /// Draw progress bars.
    pub progress: bool,
}

/// A study ready to evaluate (one per technique module).
pub trait Study: Send + Sync {
    /// Study name.
    fn name(&self) -> &str;
    /// Technique name.
    fn technique(&self) -> &'static str;
    /// Number of grid points.
    fn points(&self) -> usize;
    /// Evaluates every point.
    ///
    /// # Errors
    /// Any point's evaluation error.
    fn run(&self, ctx: &RunContext) -> Result<StudyReport>;
}

/// A parsed, validated scenario.
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// Base seed.
    pub seed: u64,
    /// The studies, in file order.
    pub studies: Vec<Box<dyn Study>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    #[serde(default)]
    description: String,
    seed: Option<u64>,
    #[serde(default)]
    study: Vec<toml::Table>,
}

/// Parses a scenario and turns each `[[study]]`, in file order, into a runnable study with
/// `build` (the technique dispatch lives above the techniques, in [`crate::studies`]).
///
/// # Errors
/// Malformed TOML, unknown keys, empty sweeps, and every error of `build` (unknown techniques,
/// each point's validation error: all points are built before anything runs).
pub fn parse(
    text: &str,
    path: &Path,
    mut build: impl FnMut(StudySpec) -> Result<Box<dyn Study>>,
) -> Result<Scenario> {
    let file: ScenarioFile = parse_toml_str(text, path)?;
    if file.study.is_empty() {
        return Err(Error::parse(
            path,
            None,
            "no [[study]] tables: a scenario needs at least one",
        ));
    }
    let mut studies: Vec<Box<dyn Study>> = Vec::new();
    for (i, mut t) in file.study.into_iter().enumerate() {
        let technique = match t.remove("technique") {
            Some(toml::Value::String(s)) => s,
            _ => {
                return Err(Error::parse(
                    path,
                    None,
                    format!("study #{}: missing string key 'technique'", i + 1),
                ))
            }
        };
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) => s,
            None => format!("{technique}-{}", i + 1),
            Some(v) => {
                return Err(Error::parse(
                    path,
                    None,
                    format!("study #{}: name = {v}: must be a string", i + 1),
                ))
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(Error::range(
                format!("study #{}.name", i + 1),
                &name,
                "a non-empty file-name-safe string ([A-Za-z0-9._-])",
            ));
        }
        if studies.iter().any(|s| s.name() == name) {
            return Err(Error::range(
                format!("study #{}.name", i + 1),
                &name,
                "unique within the scenario",
            ));
        }
        let axes = match t.remove("sweep") {
            None => Vec::new(),
            Some(toml::Value::Table(s)) => s
                .into_iter()
                .map(|(k, v)| Ok((k.clone(), axis_values(&name, &k, v, path)?)))
                .collect::<Result<Vec<_>>>()?,
            Some(_) => {
                return Err(Error::parse(
                    path,
                    None,
                    format!("study '{name}': sweep must be a table of axes"),
                ))
            }
        };
        for (k, _) in &axes {
            if t.contains_key(k) {
                return Err(Error::parse(
                    path,
                    None,
                    format!("study '{name}': '{k}' is both fixed and swept"),
                ));
            }
        }
        let spec = StudySpec {
            name,
            technique,
            fixed: t,
            axes,
            path: path.to_path_buf(),
        };
        studies.push(build(spec)?);
    }
    Ok(Scenario {
        name: file.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        description: file.description,
        seed: file.seed.unwrap_or(DEFAULT_SEED),
        studies,
    })
}

fn axis_values(study: &str, key: &str, v: toml::Value, path: &Path) -> Result<Vec<toml::Value>> {
    let field = format!("study '{study}'.sweep.{key}");
    let values = match v {
        toml::Value::Array(a) => a,
        toml::Value::Table(t) => range_values(&field, &t)?,
        other => vec![other],
    };
    if values.is_empty() {
        return Err(Error::range(
            field,
            "[]",
            "a non-empty list (an empty sweep has no points)",
        ));
    }
    let _ = path;
    Ok(values)
}

fn range_values(field: &str, t: &toml::Table) -> Result<Vec<toml::Value>> {
    for k in t.keys() {
        if !matches!(k.as_str(), "from" | "to" | "step") {
            return Err(Error::range(
                format!("{field}.{k}"),
                k,
                "one of from, to, step (an inclusive range)",
            ));
        }
    }
    let get = |k: &str| t.get(k);
    let all_int = ["from", "to", "step"]
        .iter()
        .all(|k| get(k).is_none_or(|v| v.is_integer()));
    let num = |k: &str| -> Result<Option<f64>> {
        match get(k) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(toml::Value::Float(f)) => Ok(Some(*f)),
            Some(v) => Err(Error::range(format!("{field}.{k}"), v, "a number")),
        }
    };
    let from =
        num("from")?.ok_or_else(|| Error::range(format!("{field}.from"), "missing", "a number"))?;
    let to =
        num("to")?.ok_or_else(|| Error::range(format!("{field}.to"), "missing", "a number"))?;
    let step = num("step")?.unwrap_or(1.0);
    if !(step.is_finite() && step > 0.0) {
        return Err(Error::range(
            format!("{field}.step"),
            step,
            "a finite number > 0",
        ));
    }
    if !(from.is_finite() && to.is_finite()) || to < from {
        return Err(Error::range(
            format!("{field}.to"),
            to,
            format!(">= from = {from} (an empty sweep has no points)"),
        ));
    }
    let n = ((to - from) / step + 1e-9).floor() as u64 + 1;
    if n > 1_000_000 {
        return Err(Error::range(
            field.to_string(),
            n,
            "at most 1 000 000 values per axis",
        ));
    }
    Ok((0..n)
        .map(|i| {
            let x = from + i as f64 * step;
            if all_int {
                toml::Value::Integer(x.round() as i64)
            } else {
                toml::Value::Float(x)
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_inclusively() {
        let t: toml::Table = toml::from_str("from = 1\nto = 8").unwrap();
        assert_eq!(range_values("g", &t).unwrap().len(), 8);
        let t: toml::Table = toml::from_str("from = 0.5\nto = 1.0\nstep = 0.25").unwrap();
        let v = range_values("a", &t).unwrap();
        assert_eq!(
            v,
            vec![
                toml::Value::Float(0.5),
                toml::Value::Float(0.75),
                toml::Value::Float(1.0)
            ]
        );
        let t: toml::Table = toml::from_str("from = 3\nto = 1").unwrap();
        assert!(range_values("g", &t)
            .unwrap_err()
            .to_string()
            .contains("empty sweep"));
    }

    #[test]
    fn grid_is_the_product() {
        let spec = StudySpec {
            name: "s".into(),
            technique: "specdec".into(),
            fixed: toml::Table::new(),
            axes: vec![
                ("a".into(), vec![1.into(), 2.into()]),
                ("b".into(), vec![3.into(), 4.into(), 5.into()]),
            ],
            path: "x".into(),
        };
        let g = spec.grid();
        assert_eq!(g.len(), 6);
        assert_eq!(g[1]["b"], toml::Value::Integer(4));
        assert_eq!(spec.swept(), vec!["a", "b"]);
    }
}
