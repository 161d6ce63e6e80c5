//! The embcache measurement row and the one function that writes it as a contract row
//! (`perfcast_measure::Row`, technique `embcache`).
//!
//! Columns: `kind` = `micro` or `e2e`; `model` = the set-up (`dlrm-d128`, or the trace name for
//! e2e); `draft` = the micro op or the e2e policy; `gamma` = lookahead window; `batch` = samples
//! per batch; `context_tokens` = cache slots (e2e) or rows moved (micro); `params` = every
//! parameter of the point (`op`, `rows`, `policy`, `window`, `cache`, `slots`, the trace's
//! generator parameters, …): what calibrate and validate read.

use crate::measure::{Row, Sink, Stats};

/// One embcache measurement.
#[derive(Clone, Debug, Default)]
pub struct EmbRow {
    /// `micro` or `e2e`.
    pub kind: String,
    /// Set-up name.
    pub setup: String,
    /// Technique parameters, in order.
    pub params: Vec<(String, String)>,
    /// Metric name (units in the name: `_s`, `_per_s`, `_bytes`; rates are fractions).
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Repeats behind the value.
    pub repeats: usize,
    /// `(p90 − p10) / median` when timed.
    pub spread: Option<f64>,
    /// Unit.
    pub unit: String,
}

impl EmbRow {
    /// A row with `params` given as pairs.
    pub fn new(kind: &str, setup: &str, params: &[(&str, String)]) -> EmbRow {
        EmbRow {
            kind: kind.into(),
            setup: setup.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        }
    }

    /// The same point with a metric from timing statistics.
    pub fn timed(&self, metric: &str, s: &Stats, unit: &str) -> EmbRow {
        EmbRow {
            metric: metric.into(),
            value: s.median,
            repeats: s.n,
            spread: Some(s.spread()),
            unit: unit.into(),
            ..self.clone()
        }
    }

    /// The same point with a plain (untimed or derived) value.
    pub fn value(&self, metric: &str, value: f64, repeats: usize, unit: &str) -> EmbRow {
        EmbRow {
            metric: metric.into(),
            value,
            repeats,
            spread: None,
            unit: unit.into(),
            ..self.clone()
        }
    }

    fn param(&self, k: &str) -> String {
        self.params
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// `k=v;k=v`.
    pub fn params_string(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Writes `r` to `sink` (the one place embcache rows become CSV).
///
/// # Errors
/// I/O.
pub fn write(sink: &mut Sink, set: &str, r: &EmbRow) -> std::io::Result<()> {
    let op = r.param("op");
    let slots = r.param("slots");
    let mut params = crate::measure::Params::new();
    for (k, v) in &r.params {
        params.insert(k, v);
    }
    sink.write(&Row {
        set: set.into(),
        kind: r.kind.clone(),
        model: r.setup.clone(),
        draft: Some(if op.is_empty() { r.param("policy") } else { op }).filter(|s| !s.is_empty()),
        gamma: r.param("window").parse().ok(),
        batch: r.param("batch").parse().ok(),
        context_tokens: if slots.is_empty() {
            r.param("rows")
        } else {
            slots
        }
        .parse()
        .ok(),
        params,
        metric: r.metric.clone(),
        value: r.value,
        repeats: r.repeats as u64,
        spread: r.spread,
        unit: r.unit.clone(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_land_in_their_columns_and_in_full() {
        let dir = std::env::temp_dir().join(format!("pcg-emb-rows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Sink::open(&dir, "s", crate::measure::provenance())
            .unwrap()
            .with_technique("embcache");
        let p = EmbRow::new(
            "e2e",
            "zipf",
            &[
                ("policy", "lookahead".into()),
                ("window", "4".into()),
                ("batch", "512".into()),
                ("slots", "100".into()),
            ],
        );
        write(&mut s, "s", &p.value("hit_rate", 0.5, 1, "fraction")).unwrap();
        let text = std::fs::read_to_string(dir.join("s.csv")).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.starts_with("embcache,s,e2e,zipf,lookahead,4,512,,100,,policy=lookahead;window=4;batch=512;slots=100,hit_rate,5.000000000e-1,1,,fraction,"),
            "{line}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
