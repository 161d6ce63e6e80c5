//! The catalog parser (`--catalog DIR`): one catalog file (GPUs, LLMs, DNN models, a
//! calibration or validation record, a freeze or gradcomp calibration) replaced by arbitrary
//! text, every other file embedded.
//!
//! Input: byte 0 picks the file, the rest is its text. Properties: errors are one line; an
//! accepted catalog answers every lookup (latency terms, recorded validation, freeze and
//! gradcomp calibrations, DNN specs) without panicking, and specdec's default what-if
//! (analytic) on it either errs on one line or gives finite, non-negative times.
#![no_main]
#![deny(warnings)]

use libfuzzer_sys::fuzz_target;
use perfcast::catalog::{Catalog, EMBEDDED};

fn ok_or_one_line<T>(r: perfcast::error::Result<T>) -> Option<T> {
    match r {
        Ok(x) => Some(x),
        Err(e) => {
            let m = e.to_string();
            assert!(!m.contains('\n'), "error spans lines: {m:?}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let files: Vec<&str> = EMBEDDED
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !n.starts_with("scenarios/"))
        .collect();
    let rel = files[usize::from(sel) % files.len()];
    // The chosen file is given from memory (`Catalog::load_with`, as `--catalog DIR` would give
    // it from disk); every other file is the embedded one, parsed once per process
    // (`Catalog::parse_shared`), so an input costs the parse of its own text and the checks.
    // Bytes that are not UTF-8 never reach a parser (reading the file fails first).
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let Some(cat) = ok_or_one_line(Catalog::load_with(None, &[(rel, text)])) else {
        return;
    };
    for g in cat.gpus.iter().map(|g| g.name.clone()).collect::<Vec<_>>() {
        ok_or_one_line(cat.latency(&g));
        ok_or_one_line(cat.recorded_validation(&g));
        ok_or_one_line(perfcast::freeze::calib::whatif::load(&cat, &g));
        ok_or_one_line(perfcast::gradcomp::calib::GradcompCalibration::from_catalog(&cat, &g));
    }
    let _ = cat.validation_records();
    ok_or_one_line(perfcast::dnn::specs(&cat));
    let spec = perfcast::specdec::spec::Spec::default();
    if let Some(point) = ok_or_one_line(spec.resolve(&cat)) {
        if let Some(m) = ok_or_one_line(perfcast::specdec::spec::evaluate(
            &point,
            perfcast::specdec::spec::Method::Analytic,
            0,
        )) {
            for (k, f) in [
                ("draft_step_s", m.draft_step_s),
                ("verify_step_s", m.verify_step_s),
                ("step_s", m.step_s),
                ("tokens_per_s", m.tokens_per_s),
                ("baseline_tokens_per_s", m.baseline_tokens_per_s),
                ("speedup", m.speedup),
            ] {
                assert!(f.is_finite() && f >= 0.0, "{k} = {f}");
            }
        }
    }
});
