//! The scenario runner's builder: turns each `[[study]]` of a scenario into a runnable study
//! through its technique's front door (`<technique>::study`, which resolves every point's `Spec`).
//!
//! This module sits above the techniques (it imports all four); [`crate::scenario`] below them
//! parses the file and expands the grids without knowing any technique.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::scenario::{self, Scenario, Study, StudySpec};
use std::path::Path;

/// Techniques a scenario may name.
pub const TECHNIQUES: &[&str] = &["specdec", "embcache", "freeze", "gradcomp"];

/// What a technique's scenario studies accept: the schema `perfcast run --explain` documents.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The technique (`technique = "..."`).
    pub technique: &'static str,
    /// The fields (and aliases) of the technique's `Spec`, from serde: each is the command-line
    /// flag of the same name (`_` for `-`).
    pub fields: &'static [&'static str],
    /// The study's keys that are not `Spec` fields.
    pub study_keys: &'static [scenario::KeyDoc],
    /// Older keys still read: (old, new).
    pub renamed: &'static [(&'static str, &'static str)],
}

/// The schema of every technique, in [`TECHNIQUES`] order.
pub fn schemas() -> Vec<Schema> {
    use scenario::struct_fields;
    vec![
        Schema {
            technique: "specdec",
            fields: struct_fields::<crate::specdec::spec::Spec>(),
            study_keys: crate::specdec::study::STUDY_KEYS,
            renamed: crate::specdec::study::RENAMED_KEYS,
        },
        Schema {
            technique: "embcache",
            fields: struct_fields::<crate::embcache::Spec>(),
            study_keys: crate::embcache::study::STUDY_KEYS,
            renamed: crate::embcache::study::RENAMED_KEYS,
        },
        Schema {
            technique: "freeze",
            fields: struct_fields::<crate::freeze::spec::Spec>(),
            study_keys: crate::freeze::study::STUDY_KEYS,
            renamed: crate::freeze::study::RENAMED_KEYS,
        },
        Schema {
            technique: "gradcomp",
            fields: struct_fields::<crate::gradcomp::spec::Spec>(),
            study_keys: crate::gradcomp::study::STUDY_KEYS,
            renamed: crate::gradcomp::study::RENAMED_KEYS,
        },
    ]
}

/// Parses and validates a scenario, building every study against `catalog`.
///
/// # Errors
/// Malformed TOML, unknown keys, unknown techniques, empty sweeps, and every point's validation
/// error (all points are built before anything runs).
pub fn load(text: &str, path: &Path, catalog: &Catalog) -> Result<Scenario> {
    load_with(text, path, catalog, scenario::Limits::default())
}

/// [`load`] under `limits` (`run --max-points`).
///
/// # Errors
/// As [`load`], and a grid larger than `limits` allows.
pub fn load_with(
    text: &str,
    path: &Path,
    catalog: &Catalog,
    limits: scenario::Limits,
) -> Result<Scenario> {
    scenario::parse_with(text, path, limits, |spec| build(spec, catalog))
}

/// Turns one technique's spec into a runnable study.
///
/// # Errors
/// An unknown technique, or the first invalid point of the study.
pub fn build(spec: StudySpec, catalog: &Catalog) -> Result<Box<dyn Study>> {
    match spec.technique.as_str() {
        "specdec" => Ok(Box::new(crate::specdec::study::SpecdecStudy::new(
            spec, catalog,
        )?)),
        "freeze" => Ok(Box::new(crate::freeze::study::FreezeStudy::new(
            spec, catalog,
        )?)),
        "gradcomp" => Ok(Box::new(crate::gradcomp::study::GradcompStudy::new(
            spec, catalog,
        )?)),
        "embcache" => Ok(Box::new(crate::embcache::study::EmbcacheStudy::new(
            spec, catalog,
        )?)),
        other => Err(Error::unknown(
            "technique",
            other,
            TECHNIQUES.iter().copied(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_errors_are_one_line() {
        let c = Catalog::embedded().unwrap();
        let p = Path::new("s.toml");
        for (text, needle) in [
            (
                "[[study]]\ntechnique = \"nope\"\n",
                "unknown technique 'nope'",
            ),
            (
                "[[study]]\ntechnique = \"specdec\"\n[study.sweep]\ngamma = []\n",
                "empty sweep",
            ),
            ("bogus = 1\n", "unknown field"),
            ("seed = \n", "s.toml:1"),
            ("", "no [[study]]"),
        ] {
            let e = load(text, p, &c).err().expect(text).to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Arbitrary (mostly malformed) scenario text never panics: it parses or errs on one line.
        #[test]
        fn parse_never_panics(text in "(\\[\\[study\\]\\]\n|technique = \"specdec\"\n|alpha = -?[0-9.]{1,4}\n|gamma = [0-9a-z]{1,3}\n|\\[study.sweep\\]\n|batch = \\[[0-9, ]{0,6}\\]\n|draft = \\{ cost_ratio = [0-9.]{1,3} \\}\n|[a-z =\\[\\]{}\"0-9\n]{0,20}){0,8}") {
            let c = Catalog::embedded().unwrap();
            if let Err(e) = load(&text, Path::new("f.toml"), &c) {
                prop_assert!(!e.to_string().contains('\n'), "{}", e);
            }
        }
    }
}
