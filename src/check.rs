//! Small validators shared by every `Params` constructor.
//!
//! Each returns the value on success and an [`Error::OutOfRange`] naming the field otherwise.
//! NaN fails every check.

use crate::error::{Error, Result};

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
