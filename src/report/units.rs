//! Numbers for people: sizes, durations and rates with a unit prefix and 3 significant digits
//! (`141 GB`, `1.29 ms`, `527 tokens/s`). Only people-facing text (`summary.md`, tables) uses
//! these; CSV and JSON keep full precision in SI units.

/// `v` with 3 significant digits and no trailing zeros (`0` for zero, `—` when not finite).
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 9) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Scales `v` by the largest of `steps` (factor, prefix) not exceeding |v|, e.g. 1.41e11 with
/// decimal steps is (141, "G").
fn scaled(v: f64, steps: &[(f64, &'static str)]) -> String {
    let a = v.abs();
    for (f, p) in steps {
        if a >= *f {
            return format!("{} {p}", sig3(v / f));
        }
    }
    let (f, p) = steps.last().copied().unwrap_or((1.0, ""));
    format!("{} {p}", sig3(v / f))
}

/// Bytes in decimal units: `881 MB`, `141 GB`, `512 B`.
pub fn bytes(v: f64) -> String {
    scaled(
        v,
        &[
            (1e15, "PB"),
            (1e12, "TB"),
            (1e9, "GB"),
            (1e6, "MB"),
            (1e3, "kB"),
            (1.0, "B"),
        ],
    )
}

/// Seconds as `2.5 h`, `3.2 min`, `12.4 s`, `1.29 ms`, `50 µs` or `12 ns`.
pub fn seconds(v: f64) -> String {
    let a = v.abs();
    if a >= 7200.0 {
        format!("{} h", sig3(v / 3600.0))
    } else if a >= 120.0 {
        format!("{} min", sig3(v / 60.0))
    } else {
        scaled(v, &[(1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")])
    }
}

/// A rate with its unit and a k/M/G prefix on the count: `527 tokens/s`, `1.34 k tokens/s`.
pub fn rate(v: f64, unit: &str) -> String {
    let s = scaled(v, &[(1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]);
    format!("{} {unit}", s.trim_end())
}

/// A number of the field `key` in people's units, read from the field's unit suffix (DESIGN.md
/// §5): `_bytes` → `141 GB`, `bytes_per_s` → `1.25 GB/s`, `tokens_per_s` → `70.4 tokens/s`,
/// other `_per_s` → `1.2 k /s`, `_s` → `1.68 ms`. `None` for fields without a unit suffix
/// (counts, ratios, fractions), which print as they are.
pub fn for_field(key: &str, v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    if key.ends_with("bytes_per_s") {
        Some(format!("{}/s", bytes(v)))
    } else if key.ends_with("_bytes") || key == "bytes" {
        Some(bytes(v))
    } else if let Some(stem) = key.strip_suffix("_per_s") {
        let unit = stem.rsplit('_').next().unwrap_or("");
        match unit {
            "tokens" | "samples" | "requests" | "accesses" | "steps" => {
                Some(rate(v, &format!("{unit}/s")))
            }
            _ => Some(rate(v, "/s")),
        }
    } else if key.ends_with("_s") {
        Some(seconds(v))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_units() {
        assert_eq!(bytes(1.41e11), "141 GB");
        assert_eq!(bytes(8.808e8), "881 MB");
        assert_eq!(bytes(1.966e9), "1.97 GB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(seconds(0.001291), "1.29 ms");
        assert_eq!(seconds(5e-5), "50 µs");
        assert_eq!(seconds(25.4), "25.4 s");
        assert_eq!(seconds(3787.7), "63.1 min");
        assert_eq!(seconds(9600.9), "2.67 h");
        assert_eq!(rate(527.0, "tokens/s"), "527 tokens/s");
        assert_eq!(rate(1336.5, "tokens/s"), "1.34 k tokens/s");
        assert_eq!(sig3(0.0), "0");
        assert_eq!(for_field("memory_bytes", 1.4087e11).unwrap(), "141 GB");
        assert_eq!(for_field("draft_step_s", 0.001684).unwrap(), "1.68 ms");
        assert_eq!(for_field("tokens_per_s", 70.4411).unwrap(), "70.4 tokens/s");
        assert_eq!(
            for_field("sim_requests_per_s", 2.5e6).unwrap(),
            "2.5 M requests/s"
        );
        assert_eq!(for_field("busbw_bytes_per_s", 1.25e9).unwrap(), "1.25 GB/s");
        assert_eq!(for_field("speedup", 2.68), None);
        assert_eq!(for_field("hit_rate", 0.7), None);
        assert_eq!(sig3(f64::NAN), "—");
    }
}
