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

/// Most values one sweep axis may have (a range is expanded into a list of this many values).
pub const MAX_AXIS_VALUES: u64 = 1_000_000;

/// Default cap on the grid points of a whole scenario (the sum over its studies of the product
/// of each study's axes). Every point is materialised before evaluation (its parameter table and
/// its validated spec, a few hundred bytes to a few kB each), so the cap keeps a mistyped range
/// from exhausting memory; `perfcast run --max-points N` raises it.
pub const DEFAULT_MAX_POINTS: u64 = 100_000;

/// Largest value `--max-points` accepts.
pub const MAX_POINTS_LIMIT: u64 = 1_000_000_000;

/// Limits checked while a scenario is parsed, before anything is allocated for its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most grid points over all studies, in `[1, MAX_POINTS_LIMIT]`.
    pub max_points: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_points: DEFAULT_MAX_POINTS,
        }
    }
}

impl Limits {
    /// Limits with `max_points` checked against `[1, MAX_POINTS_LIMIT]`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming `--max-points`.
    pub fn new(max_points: u64) -> Result<Self> {
        if !(1..=MAX_POINTS_LIMIT).contains(&max_points) {
            return Err(Error::range(
                "--max-points",
                max_points,
                format!("an integer in [1, {MAX_POINTS_LIMIT}]"),
            ));
        }
        Ok(Limits { max_points })
    }
}

/// Deserializes a key that, like its comma-separated CLI flag, takes one value or several: a
/// string (`"lru"`, or `"lru,fifo"` as on the command line) or a list of strings.
///
/// # Errors
/// Anything but a string or a list of strings.
pub fn de_one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match <OneOrMany as serde::Deserialize>::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// A scenario key that is not a field of the technique's `Spec` (a study's own key, or a nested
/// table), documented by hand for the scenario reference (`perfcast run --explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key as a scenario writes it.
    pub key: &'static str,
    /// The command-line flag with the same meaning, if there is one.
    pub flag: Option<&'static str>,
    /// What the value is.
    pub value: &'static str,
    /// Default when absent.
    pub default: &'static str,
    /// What it means.
    pub meaning: &'static str,
}

/// The field names `T`'s derived `Deserialize` accepts (serde's list, which names each field and
/// its aliases), read without deserializing anything: the schema the scenario reference is
/// generated from. Empty for a type that is not a struct.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Recorder<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Recorder<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut fields));
    fields
}

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
    /// Number of grid points (saturating at `usize::MAX`; a parsed scenario's grids are checked
    /// against [`Limits`]).
    pub fn len(&self) -> usize {
        self.axes
            .iter()
            .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
            .unwrap_or(usize::MAX)
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
/// `build` (the technique dispatch lives above the techniques, in [`crate::studies`]), under the
/// default [`Limits`].
///
/// # Errors
/// See [`parse_with`].
pub fn parse(
    text: &str,
    path: &Path,
    build: impl FnMut(StudySpec) -> Result<Box<dyn Study>>,
) -> Result<Scenario> {
    parse_with(text, path, Limits::default(), build)
}

/// [`parse`] under `limits`: every study's grid size (the product of its axes' lengths, in
/// checked arithmetic) and the scenario's total are checked against `limits.max_points` before
/// any grid is expanded or any study built.
///
/// # Errors
/// Malformed TOML, unknown keys, empty sweeps, an axis of more than [`MAX_AXIS_VALUES`] values,
/// more grid points than `limits.max_points`, and every error of `build` (unknown techniques,
/// each point's validation error: all points are built before anything runs).
pub fn parse_with(
    text: &str,
    path: &Path,
    limits: Limits,
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
    let mut total_points: u64 = 0;
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
        let points = axes
            .iter()
            .try_fold(1u64, |n, (_, v)| n.checked_mul(v.len() as u64));
        total_points = points
            .and_then(|p| total_points.checked_add(p))
            .unwrap_or(u64::MAX);
        if total_points > limits.max_points {
            let sizes: Vec<String> = axes
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.len()))
                .collect();
            return Err(Error::range(
                format!("study '{name}'.sweep"),
                format!(
                    "{} grid points ({}){}",
                    points.map_or_else(|| "more than 2^64".to_string(), |p| p.to_string()),
                    sizes.join(" × "),
                    if studies.is_empty() {
                        String::new()
                    } else {
                        " with the studies before it".to_string()
                    }
                ),
                format!(
                    "at most {} points in the scenario (raise with `run --max-points N`, up to {MAX_POINTS_LIMIT})",
                    limits.max_points
                ),
            ));
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
    // The number of values, computed exactly for integers (i128) and in f64 otherwise, and
    // checked before any conversion, so a range of 10^20 values is an error, not a wrapped count.
    let ints = if all_int {
        int(t, "from").zip(int(t, "to"))
    } else {
        None
    };
    let count: f64 = match ints {
        Some((a, b)) => {
            let step_i = i128::from(int(t, "step").unwrap_or(1));
            ((i128::from(b) - i128::from(a)) / step_i + 1) as f64
        }
        None => ((to - from) / step + 1e-9).floor() + 1.0,
    };
    if !(count.is_finite() && count <= MAX_AXIS_VALUES as f64) {
        return Err(Error::range(
            field.to_string(),
            format!("{{ from = {from}, to = {to}, step = {step} }} ({count:e} values)"),
            format!("at most {MAX_AXIS_VALUES} values per axis"),
        ));
    }
    let n = count as u64;
    if let Some((a, _)) = ints {
        // Exact integer steps (i128: no overflow for any i64 from, to, step).
        let step_i = i128::from(int(t, "step").unwrap_or(1));
        return Ok((0..n)
            .map(|i| toml::Value::Integer((i128::from(a) + i128::from(i) * step_i) as i64))
            .collect());
    }
    Ok((0..n)
        .map(|i| toml::Value::Float(from + i as f64 * step))
        .collect())
}

fn int(t: &toml::Table, k: &str) -> Option<i64> {
    t.get(k).and_then(toml::Value::as_integer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_fields_lists_fields_and_aliases() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            a: u32,
            #[serde(alias = "old_b")]
            b: String,
        }
        let f = struct_fields::<T>();
        assert!(
            f.contains(&"a") && f.contains(&"b") && f.contains(&"old_b"),
            "{f:?}"
        );
        assert!(struct_fields::<u32>().is_empty());
    }

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
    fn huge_ranges_are_errors_not_wrapped_counts() {
        // 10^20 values: an error naming the axis, not "an empty sweep".
        let t: toml::Table = toml::from_str("from = 0.0\nto = 1e20").unwrap();
        let e = range_values("study 's'.sweep.x", &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 1000000 values per axis"), "{e}");
        assert!(!e.contains("empty"), "{e}");
        // The whole i64 range, step 1: 2^64 values.
        let t: toml::Table =
            toml::from_str("from = -9223372036854775808\nto = 9223372036854775807").unwrap();
        assert!(range_values("x", &t).is_err());
        // Near the i64 edges the integer count is exact (f64 would round 2^63 - 5 to 2^63).
        let t: toml::Table =
            toml::from_str("from = 9223372036854775802\nto = 9223372036854775807\nstep = 2")
                .unwrap();
        let v = range_values("x", &t).unwrap();
        assert_eq!(
            v,
            vec![
                toml::Value::Integer(9_223_372_036_854_775_802),
                toml::Value::Integer(9_223_372_036_854_775_804),
                toml::Value::Integer(9_223_372_036_854_775_806)
            ]
        );
        // Exactly the cap passes.
        let t: toml::Table = toml::from_str("from = 1\nto = 1000000").unwrap();
        assert_eq!(range_values("x", &t).unwrap().len(), 1_000_000);
    }

    #[test]
    fn grid_product_is_checked_before_building() {
        // Three axes of 10^4 values: 10^12 points, refused before anything is built.
        let text = "[[study]]\nname = \"big\"\ntechnique = \"t\"\n[study.sweep]\na = { from = 1, to = 10000 }\nb = { from = 1, to = 10000 }\nc = { from = 1, to = 10000 }\n";
        let mut built = 0;
        let e = parse(text, Path::new("s.toml"), |_| {
            built += 1;
            Err(Error::range("never", 0, "reached"))
        })
        .err()
        .unwrap()
        .to_string();
        assert_eq!(built, 0);
        assert!(
            e.contains("1000000000000 grid points (a: 10000 × b: 10000 × c: 10000)"),
            "{e}"
        );
        assert!(e.contains("--max-points"), "{e}");
        // Beyond 2^64 the product is still an error, not a wrap.
        let text = format!(
            "[[study]]\ntechnique = \"t\"\n[study.sweep]\n{}",
            (0..4)
                .map(|i| format!("x{i} = {{ from = 1, to = 1000000 }}\n"))
                .collect::<String>()
        );
        let e = parse(&text, Path::new("s.toml"), |_| unreachable!())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("more than 2^64 grid points"), "{e}");
        // The cap counts the whole scenario: two studies of 60 000 points exceed 100 000.
        let one = "[[study]]\ntechnique = \"t\"\n[study.sweep]\na = { from = 1, to = 60000 }\n";
        struct Dummy(String);
        impl Study for Dummy {
            fn name(&self) -> &str {
                &self.0
            }
            fn technique(&self) -> &'static str {
                "t"
            }
            fn points(&self) -> usize {
                0
            }
            fn run(&self, _: &RunContext) -> Result<StudyReport> {
                Ok(StudyReport::default())
            }
        }
        let mut built = 0;
        let e = parse(&format!("{one}{one}"), Path::new("s.toml"), |s| {
            built += 1;
            Ok(Box::new(Dummy(s.name)))
        })
        .err()
        .unwrap()
        .to_string();
        assert_eq!(built, 1, "the first study is within the cap");
        assert!(
            e.contains("60000 grid points (a: 60000) with the studies before it"),
            "{e}"
        );
        // Raised, both pass.
        let sc = parse_with(
            &format!("{one}{one}"),
            Path::new("s.toml"),
            Limits::new(120_000).unwrap(),
            |s| Ok(Box::new(Dummy(s.name))),
        )
        .unwrap();
        assert_eq!(sc.studies.len(), 2);
        assert!(Limits::new(0).is_err() && Limits::new(MAX_POINTS_LIMIT + 1).is_err());
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
