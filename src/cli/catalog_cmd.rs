//! `perfcast catalog`.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::report::{print_records, Format, Rows};
use perfcast::Result;
use serde_json::json;

/// Arguments of `catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Which part: gpus, models (LLMs and DNN training profiles), scenarios (default all).
    #[arg(value_parser = ["gpus", "models", "scenarios", "all"], default_value = "all")]
    pub what: String,
}

pub fn exec(a: CatalogArgs, g: &Globals) -> Result<Outcome> {
    let c = &g.catalog;
    let mut parts: Vec<(&str, Rows)> = Vec::new();
    let want = |k: &str| a.what == "all" || a.what == k;
    if want("gpus") {
        let rows = Rows {
            records: c
                .gpus
                .iter()
                .map(|x| {
                    let calibrated = c.is_calibrated(&x.name);
                    json!({"kind": "gpu", "name": x.name, "memory_bytes": x.memory_bytes, "hbm_bw_bytes_per_s": x.hbm_bw_bytes_per_s,
                        "bf16_flops": x.bf16_flops, "tf32_flops": x.tf32_flops, "fp32_flops": x.fp32_flops, "calibrated": calibrated})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                })
                .collect(),
        };
        parts.push(("gpus", rows));
    }
    if want("models") {
        let rows = Rows {
            records: c
                .llms
                .iter()
                .map(|m| {
                    json!({"kind": "llm", "name": m.name, "params": m.param_count(), "layers": m.layers, "hidden": m.hidden,
                        "heads": m.heads, "kv_heads": m.kv_heads, "ffn": m.ffn, "vocab": m.vocab})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                })
                .collect(),
        };
        parts.push(("models", rows));
        let mut dnn = Vec::new();
        for name in perfcast::dnn::names(c)? {
            let m = perfcast::dnn::model(c, &name)?;
            dnn.push(
                json!({"kind": "dnn", "name": name, "params": m.params(), "layers": m.layers.len(),
                    "fwd_flops_per_sample": m.fwd_flops_per_sample()})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            );
        }
        parts.push(("dnn_models", Rows { records: dnn }));
    }
    if want("scenarios") {
        let rows = Rows {
            records: perfcast::catalog::EMBEDDED
                .iter()
                .filter(|(n, _)| n.starts_with("scenarios/"))
                .map(|(n, _)| json!({"kind": "scenario", "name": n.trim_start_matches("scenarios/").trim_end_matches(".toml")}).as_object().cloned().unwrap_or_default())
                .collect(),
        };
        parts.push(("scenarios", rows));
    }
    let out = if g.format == Format::Json {
        let obj: serde_json::Map<String, serde_json::Value> = parts
            .iter()
            .map(|(k, r)| {
                (
                    k.to_string(),
                    serde_json::Value::Array(
                        r.records
                            .iter()
                            .cloned()
                            .map(serde_json::Value::Object)
                            .collect(),
                    ),
                )
            })
            .collect();
        serde_json::to_string_pretty(&obj).unwrap_or_default() + "\n"
    } else {
        parts
            .iter()
            .map(|(_, r)| print_records(r, g.format, true))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::ok(out))
}
