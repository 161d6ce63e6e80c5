//! Small validators shared by every `Params` constructor, and the one parser of the
//! `name:key=value,...` parameter syntax (`--method`, `--policy`, `--model`, `--synthetic`).
//!
//! Each returns the value on success and an [`Error::OutOfRange`] naming the field otherwise.
//! NaN fails every check.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// `v` must be finite and `> 0`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn positive(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::range(field, v, "a finite number > 0"))
    }
}

/// `v` must be finite and `>= 0`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn non_negative(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::range(field, v, "a finite number >= 0"))
    }
}

/// `v` must lie in the closed interval `[lo, hi]`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn in_closed(field: &str, v: f64, lo: f64, hi: f64) -> Result<f64> {
    if v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(Error::range(field, v, format!("in [{lo}, {hi}]")))
    }
}

/// Integer `v` must lie in `[lo, hi]`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn int_in(field: &str, v: i64, lo: i64, hi: i64) -> Result<i64> {
    if v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(Error::range(
            field,
            v,
            format!("an integer in [{lo}, {hi}]"),
        ))
    }
}

/// Splits a `name[:key=value,...]` parameter string (`--method`, `--policy`, `--model`) at its
/// first `:`: the trimmed name and the (possibly empty) parameter list.
pub fn split_name(s: &str) -> (&str, &str) {
    let s = s.trim();
    s.split_once(':').unwrap_or((s, ""))
}

/// The `key=value` pairs of a comma-separated parameter list, trimmed, in order, empty parts
/// skipped. Callers check keys and values; [`parse_kv`] does both for the common case.
///
/// # Errors
/// The first trimmed part without `=`.
pub fn kv_pairs(s: &str) -> std::result::Result<Vec<(&str, &str)>, &str> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(part)
        })
        .collect()
}

/// Splits `key=value,key=value` (empty allowed) and checks keys against `allowed`.
///
/// # Errors
/// A part without `=`, a repeated key, or a key not in `allowed`, naming `<what>.<key>`.
pub fn parse_kv(what: &str, s: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let pairs = kv_pairs(s).map_err(|part| {
        Error::range(
            format!("{what}.{part}"),
            part,
            format!("key=value with key one of {}", allowed.join(", ")),
        )
    })?;
    for (k, v) in pairs {
        if !allowed.contains(&k) {
            return Err(Error::range(
                format!("{what}.{k}"),
                v,
                format!(
                    "a known key: one of {}",
                    if allowed.is_empty() {
                        "(none)".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::range(format!("{what}.{k}"), v, "given once"));
        }
    }
    Ok(out)
}

/// Parses an integer in `[lo, hi]`, naming `field`.
///
/// # Errors
/// Not an integer, or out of range.
pub fn parse_int(field: &str, v: &str, lo: i64, hi: i64) -> Result<i64> {
    let x: i64 = v
        .parse()
        .map_err(|_| Error::range(field, v, format!("an integer in [{lo}, {hi}]")))?;
    int_in(field, x, lo, hi)
}

/// Parses a number in `[lo, hi]`, naming `field`.
///
/// # Errors
/// Not a number, or out of range.
pub fn parse_f64(field: &str, v: &str, lo: f64, hi: f64) -> Result<f64> {
    let x: f64 = v
        .parse()
        .map_err(|_| Error::range(field, v, format!("a number in [{lo}, {hi}]")))?;
    in_closed(field, x, lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_bounds_fail() {
        assert!(positive("x", f64::NAN).is_err());
        assert!(positive("x", 0.0).is_err());
        assert!(positive("x", 1e-9).is_ok());
        assert!(non_negative("x", -0.0).is_ok());
        assert!(non_negative("x", f64::INFINITY).is_err());
        assert!(in_closed("a", f64::NAN, 0.0, 1.0).is_err());
        assert!(in_closed("a", 1.0, 0.0, 1.0).is_ok());
        let e = int_in("gamma", 0, 1, 64).unwrap_err().to_string();
        assert_eq!(e, "gamma = 0: must be an integer in [1, 64]");
    }
}
