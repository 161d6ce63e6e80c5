//! Small validators shared by every `Params` constructor, and the one parser of the
//! `name:key=value,...` parameter syntax (`--method`, `--policy`, `--model`, `--synthetic`).
//!
//! Each returns the value on success and an [`Error::OutOfRange`] naming the field otherwise.
//! NaN fails every check.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Largest duration an input may give, seconds (10^6 s ≈ 11.6 days). The discrete-event kernel
/// counts integer nanoseconds in a `u64` (≈ 584 years), so a run of many events of this length
/// still cannot overflow; a longer per-event time is a unit mistake, not a what-if.
pub const MAX_SECONDS: f64 = 1e6;

/// Largest link bandwidth an input may give, Gbit/s (10^6 Gbit/s = 125 TB/s, ~100× an NVLink 5
/// switch port).
pub const MAX_GBPS: f64 = 1e6;

/// Largest mean context an input may give, tokens (10^8: 100× the longest context windows of
/// 2026 models); beyond it the KV-cache terms overflow to infinity.
pub const MAX_CONTEXT_TOKENS: f64 = 1e8;

/// A duration in seconds: finite, in `[0, MAX_SECONDS]`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn seconds(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
        Ok(v)
    } else {
        Err(Error::range(
            field,
            show(v),
            format!("a duration in [0, {MAX_SECONDS:e}] s"),
        ))
    }
}

/// A link bandwidth in Gbit/s: finite, in `(0, MAX_GBPS]`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn gbps(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 && v <= MAX_GBPS {
        Ok(v)
    } else {
        Err(Error::range(
            field,
            show(v),
            format!("a bandwidth in (0, {MAX_GBPS:e}] Gbit/s"),
        ))
    }
}

/// A number as error messages show it: as given for ordinary magnitudes, in scientific notation
/// beyond 10^15 or below 10^-4 (`1e308`, not 309 digits).
pub fn show(v: f64) -> String {
    let a = v.abs();
    if a.is_finite() && a != 0.0 && !(1e-4..1e15).contains(&a) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// `v` must be finite and `> 0`.
///
/// # Errors
/// [`Error::OutOfRange`] otherwise.
pub fn positive(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::range(field, show(v), "a finite number > 0"))
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
        Err(Error::range(field, show(v), "a finite number >= 0"))
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
        Err(Error::range(
            field,
            show(v),
            format!("in [{}, {}]", show(lo), show(hi)),
        ))
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
        assert!(seconds("t", 1e30).is_err() && seconds("t", -1.0).is_err());
        assert_eq!(
            in_closed("c", 1e308, 0.0, 1e8).unwrap_err().to_string(),
            "c = 1e308: must be in [0, 100000000]"
        );
        assert_eq!(show(0.5), "0.5");
        assert_eq!(show(f64::NAN), "NaN");
        assert_eq!(seconds("t", MAX_SECONDS).unwrap(), MAX_SECONDS);
        assert!(gbps("b", 0.0).is_err() && gbps("b", 1e308).is_err() && gbps("b", 400.0).is_ok());
        let e = int_in("gamma", 0, 1, 64).unwrap_err().to_string();
        assert_eq!(e, "gamma = 0: must be an integer in [1, 64]");
    }
}
