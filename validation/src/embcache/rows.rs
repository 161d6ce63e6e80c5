//! The embcache measurement row and the one function that writes it as a contract row
//! (`perfcast_measure::Row`, technique `embcache`).
//!
//! Columns: `kind` = `gather` (micro ops `gather`, `scatter`, `d2d_copy`, `d2d_memcpy`, `limits`), `fetch`
//! (`h2d_pinned`, `d2h_pinned`, `h2d_pageable`, `host_gather`, `host_scatter`, `fetch_path`,
//! `writeback_path`), `dense` (`compute`, `overlap`) or `e2e`; `model` = the set-up
//! (`dlrm-d128`, or the trace name for e2e); `batch` = samples per batch where it applies;
//! `params` = every parameter of the point (`op`, `rows`, `policy`, `window`, `cache`, `slots`,
//! the trace's generator parameters, …).

use crate::measure::{Params, Row, Sink, Stats};

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

/// The contract `kind` of a micro op (`e2e` rows keep `e2e`).
pub fn kind_of(kind: &str, op: &str) -> &'static str {
    match (kind, op) {
        ("e2e", _) => "e2e",
        (_, "gather" | "scatter" | "d2d_copy" | "d2d_memcpy" | "limits") => "gather",
        (_, "compute" | "overlap") => "dense",
        _ => "fetch",
    }
}

/// Writes `r` to `sink` (the one place embcache rows become CSV).
///
/// # Errors
/// I/O.
pub fn write(sink: &mut Sink, set: &str, r: &EmbRow) -> std::io::Result<()> {
    let mut params = Params::new();
    for (k, v) in &r.params {
        if !v.is_empty() {
            params.insert(k, v);
        }
    }
    sink.write(&Row {
        set: set.into(),
        kind: kind_of(&r.kind, &r.param("op")).into(),
        model: r.setup.clone(),
        batch: r.param("batch").parse().ok(),
        params,
        metric: r.metric.clone(),
        value: r.value,
        repeats: r.repeats.max(1) as u64,
        spread: r.spread,
        unit: r.unit.clone(),
        ..Row::default()
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
            line.starts_with("embcache,s,e2e,zipf,,,512,,,,policy=lookahead;window=4;batch=512;slots=100,hit_rate,5.000000000e-1,1,,fraction,"),
            "{line}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(kind_of("micro", "scatter"), "gather");
        assert_eq!(kind_of("micro", "fetch_path"), "fetch");
        assert_eq!(kind_of("micro", "overlap"), "dense");
        assert_eq!(kind_of("e2e", ""), "e2e");
    }
}
