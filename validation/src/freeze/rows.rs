//! Freeze measurement rows and their one mapping onto the shared CSV row.
//!
//! A [`FRow`] carries the technique's point parameters as `params` (`k=v` pairs: `dtype`,
//! `unit`, `unit_index`, `policy`, `tier`, `lag`, `k`, `epoch`, …). [`to_row`] maps it onto the
//! contract's row (technique `freeze`, docs/measurements.md): `params` starts with `seq` (tokens
//! per sample) and then the row's own pairs; `batch` is the samples per iteration.

use crate::measure::{n, Params, Row, Sink, Stats};

/// One freeze measurement.
#[derive(Clone, Debug, Default)]
pub struct FRow {
    /// `micro`, `e2e`, `train` or `check`.
    pub kind: String,
    /// Model preset.
    pub model: String,
    /// Samples per iteration.
    pub batch: usize,
    /// Tokens per sample.
    pub seq: usize,
    /// Metric name (`forward_s`, `iter_s`, `epoch_s`, `total_s`, `read_bytes_per_s`, …).
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Repeats the value summarises.
    pub repeats: usize,
    /// `(p90 − p10) / median` when repeated.
    pub spread: Option<f64>,
    /// Unit of the value.
    pub unit: String,
    /// Point parameters `(key, value)`.
    pub params: Vec<(String, String)>,
}

impl FRow {
    /// A row of `metric` with the median and spread of `st`.
    pub fn stat(base: &FRow, metric: &str, st: &Stats, unit: &str) -> FRow {
        FRow {
            metric: metric.into(),
            value: st.median,
            repeats: st.n,
            spread: Some(st.spread()),
            unit: unit.into(),
            ..base.clone()
        }
    }

    /// A single-value row.
    pub fn one(base: &FRow, metric: &str, value: f64, unit: &str) -> FRow {
        FRow {
            metric: metric.into(),
            value,
            repeats: 1,
            spread: None,
            unit: unit.into(),
            ..base.clone()
        }
    }

    /// `self` with one more parameter.
    pub fn with(&self, k: &str, v: impl ToString) -> FRow {
        let mut r = self.clone();
        r.params.push((k.to_string(), v.to_string()));
        r
    }

    /// The value of parameter `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// The contract row of `r` in set `set` (see the module docs).
pub fn to_row(set: &str, r: &FRow) -> Row {
    let mut params = Params::new().with("seq", r.seq);
    for (k, v) in &r.params {
        params.insert(k, v);
    }
    Row {
        set: set.to_string(),
        kind: r.kind.clone(),
        model: r.model.clone(),
        batch: n(r.batch),
        params,
        metric: r.metric.clone(),
        value: r.value,
        repeats: r.repeats.max(1) as u64,
        spread: r.spread,
        unit: r.unit.clone(),
        ..Default::default()
    }
}

/// Writes `r` to `sink` (technique `freeze`).
///
/// # Errors
/// I/O errors.
pub fn write(sink: &mut Sink, set: &str, r: &FRow) -> std::io::Result<()> {
    sink.write(&to_row(set, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_map_to_the_contract_row() {
        let r = FRow {
            kind: "micro".into(),
            model: "val-bert-tiny".into(),
            batch: 4,
            seq: 16,
            ..Default::default()
        }
        .with("dtype", "bf16")
        .with("unit_index", 3);
        let row = to_row("s", &FRow::one(&r, "forward_s", 0.5, "s"));
        assert_eq!(row.params.to_string(), "seq=16;dtype=bf16;unit_index=3");
        assert_eq!((row.batch, row.draft.as_deref()), (Some(4), None));
        assert_eq!(
            (row.metric.as_str(), row.value, row.repeats),
            ("forward_s", 0.5, 1)
        );
    }
}
