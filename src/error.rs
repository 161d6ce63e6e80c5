//! Typed errors of the library.
//!
//! Every error renders as one line that names the offending field (or file and line), the value
//! that was given and what is allowed, so the binary can print it as is and exit with status 2.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from validating input, reading a file or writing a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its allowed range (or NaN).
    #[error("{} = {}: must be {allowed}", esc(field), esc(value))]
    OutOfRange {
        /// Dotted name of the field, e.g. `specdec.alpha` or `--gamma`.
        field: String,
        /// The value as the user gave it.
        value: String,
        /// The allowed range in words, e.g. `in [0, 1]`.
        allowed: String,
    },
    /// A catalog name (GPU, model, policy, ...) that is not known.
    #[error("unknown {kind} '{}'{}; known: {known}", esc(name), suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownName {
        /// What kind of thing was looked up (`gpu`, `model`, ...).
        kind: &'static str,
        /// The name that was given.
        name: String,
        /// The nearest known name, if one is close.
        suggestion: Option<String>,
        /// The known names, comma separated (possibly shortened).
        known: String,
    },
    /// A file (TOML, CSV, trace) could not be parsed.
    #[error("{}{}: {}", esc(&path.display().to_string()), line.map(|l| format!(":{l}")).unwrap_or_default(), esc(message))]
    Parse {
        /// The file, or a pseudo path such as `<embedded default.toml>`.
        path: PathBuf,
        /// 1-based line (or record) number, when known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", esc(&path.display().to_string()))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An output path that perfcast will not write (a directory where a file is needed, a
    /// symbolic link or a special file where a directory is needed, ...).
    #[error("{}: {}", esc(&path.display().to_string()), esc(reason))]
    Output {
        /// The path as the user gave it.
        path: PathBuf,
        /// What is there and what is allowed.
        reason: String,
    },
    /// A request that is valid in itself but cannot be served (e.g. GPU code without the `cuda` feature).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// Builds an [`Error::OutOfRange`].
    pub fn range(
        field: impl Into<String>,
        value: impl ToString,
        allowed: impl Into<String>,
    ) -> Self {
        Error::OutOfRange {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// Builds an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Parse`].
    pub fn parse(path: impl Into<PathBuf>, line: Option<u64>, message: impl Into<String>) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    /// Builds an [`Error::UnknownName`], suggesting the nearest of `known` by edit distance.
    pub fn unknown<'a>(
        kind: &'static str,
        name: &str,
        known: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let known: Vec<&str> = known.into_iter().collect();
        let lname = name.to_ascii_lowercase();
        let suggestion = known
            .iter()
            .map(|k| {
                let lk = k.to_ascii_lowercase();
                // Ties go to a name that is a prefix of the input (or the reverse), then to the
                // closest length.
                let prefix = !(lk.starts_with(&lname) || lname.starts_with(&lk));
                (
                    edit_distance(&lname, &lk),
                    prefix,
                    lk.len().abs_diff(lname.len()),
                    *k,
                )
            })
            .min()
            .filter(|(d, _, _, k)| *d <= (k.len().max(3) / 2).max(2))
            .map(|(_, _, _, k)| k.to_string());
        let mut list = known
            .iter()
            .take(12)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if known.len() > 12 {
            list.push_str(", ...");
        }
        Error::UnknownName {
            kind,
            name: name.to_string(),
            suggestion,
            known: list,
        }
    }
}

/// `s` with every control character (C0, DEL, C1) written as a Rust escape (`\u{1b}`, `\n`,
/// `\t`), so a value echoed in an error message cannot move the cursor, recolour the terminal or
/// break the one-line contract; other characters (including non-ASCII text) are kept as given.
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Levenshtein distance between two strings (by chars), used for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A serde/TOML error message in plain words: the Rust type names serde puts in it
/// (`expected struct DraftSpec`, `untagged enum GammaSpec`, `expected f64`) become what the user
/// writes (`expected a table`, `expected a number`). The rest of the message (the key, the value
/// given) is kept.
pub fn plain_serde_message(msg: &str) -> String {
    let mut s = msg.to_string();
    for (prefix, plain) in [
        (
            "data did not match any variant of untagged enum ",
            "the value has an unsupported type or form",
        ),
        ("expected tuple struct ", "expected a value"),
        ("expected unit struct ", "expected a value"),
        ("expected struct ", "expected a table"),
        ("expected enum ", "expected one of the allowed names"),
        ("expected struct variant of enum ", "expected a table"),
    ] {
        while let Some(i) = s.find(prefix) {
            let rest = &s[i + prefix.len()..];
            let ident = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            s = format!("{}{plain}{}", &s[..i], &rest[ident..]);
        }
    }
    for (rust, plain) in [
        ("f64", "a number"),
        ("f32", "a number"),
        ("i64", "an integer"),
        ("i32", "an integer"),
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("u16", "a non-negative integer"),
        ("u8", "a non-negative integer"),
        ("usize", "a non-negative integer"),
        ("a sequence", "a list"),
        ("a map", "a table"),
        ("a borrowed string", "a string"),
    ] {
        for lead in ["expected ", "expected one of "] {
            let from = format!("{lead}{rust}");
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find(&from) {
                let after = &rest[i + from.len()..];
                // Only a whole word: `expected u8` but not `expected u8x`.
                if after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                    out.push_str(&rest[..i + from.len()]);
                } else {
                    out.push_str(&rest[..i]);
                    out.push_str(lead);
                    out.push_str(plain);
                }
                rest = after;
            }
            out.push_str(rest);
            s = out;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_values_escape_control_characters() {
        let e = Error::range("--model", "a\x1b[31m", "a known model");
        assert_eq!(
            e.to_string(),
            "--model = a\\u{1b}[31m: must be a known model"
        );
        let e = Error::unknown("model", "x\ny\u{9b}z", ["llama-2-7b"]);
        let s = e.to_string();
        assert!(s.starts_with("unknown model 'x\\ny\\u{9b}z'"), "{s}");
        assert!(!s.chars().any(char::is_control), "{s}");
        let e = Error::parse("t\r.txt", Some(3), "id 'a\tb' is not an integer");
        assert_eq!(e.to_string(), "t\\r.txt:3: id 'a\\tb' is not an integer");
        // Non-ASCII text is kept.
        assert_eq!(esc("≥ é"), "≥ é");
    }

    #[test]
    fn serde_messages_name_no_rust_type() {
        let cases = [
            (
                "invalid type: string \"tinyllama\", expected struct DraftSpec in `draft`",
                "invalid type: string \"tinyllama\", expected a table in `draft`",
            ),
            (
                "data did not match any variant of untagged enum GammaSpec in `gamma`",
                "the value has an unsupported type or form in `gamma`",
            ),
            (
                "invalid type: string \"x\", expected f64 in `alpha`",
                "invalid type: string \"x\", expected a number in `alpha`",
            ),
            (
                "invalid type: string \"x\", expected u64",
                "invalid type: string \"x\", expected a non-negative integer",
            ),
            (
                "invalid type: integer `3`, expected a sequence",
                "invalid type: integer `3`, expected a list",
            ),
            (
                "unknown variant `x`, expected enum perfcast::Method",
                "unknown variant `x`, expected one of the allowed names",
            ),
            ("unknown field `alpah`", "unknown field `alpah`"),
        ];
        for (from, want) in cases {
            assert_eq!(plain_serde_message(from), want);
        }
    }

    #[test]
    fn edit_distance_hand_values() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("h200", "h200"), 0);
    }

    #[test]
    fn unknown_suggests_nearest() {
        let e = Error::unknown("gpu", "h20", ["h100", "h200", "a100-80gb"]);
        let s = e.to_string();
        assert!(
            s.contains("did you mean 'h100'") || s.contains("did you mean 'h200'"),
            "{s}"
        );
        let e = Error::unknown("gpu", "zzzzzzzzzz", ["h100"]);
        assert!(!e.to_string().contains("did you mean"));
    }
}
