//! Published embedding-table sizes (rows per categorical feature) of the Criteo data sets, used to
//! generate traces shaped like a real DLRM.
//!
//! - **Criteo Kaggle** (Display Advertising Challenge, 7 days, 45.8 M samples): the 26 table sizes
//!   passed as `ln_emb` / `--arch-embedding-size` for the Kaggle data set in Facebook's DLRM
//!   reference code (`dlrm_s_pytorch.py`, `bench/dlrm_s_criteo_kaggle.sh`) and as
//!   `KAGGLE_NUM_EMBEDDINGS_PER_FEATURE` in TorchRec's DLRM example: 33.76 M rows in total.
//! - **Criteo Terabyte** (Criteo 1TB Click Logs, 24 days, 4.4 G samples): the 26 sizes of
//!   TorchRec's DLRM example / MLPerf DLRM (`--num_embeddings_per_feature` default,
//!   `TERABYTE_NUM_EMBEDDINGS_PER_FEATURE`): 177.9 M rows in total.

use crate::error::{Error, Result};

/// Criteo Kaggle rows per table (DLRM reference code).
pub const CRITEO_KAGGLE: [u64; 26] = [
    1460, 583, 10_131_227, 2_202_608, 305, 24, 12_517, 633, 3, 93_145, 5683, 8_351_593, 3194, 27,
    14_992, 5_461_306, 10, 5652, 2173, 4, 7_046_547, 18, 15, 286_181, 105, 142_572,
];

/// Criteo Terabyte rows per table (TorchRec / MLPerf DLRM).
pub const CRITEO_TERABYTE: [u64; 26] = [
    45_833_188, 36_746, 17_245, 7413, 20_243, 3, 7114, 1441, 62, 29_275_261, 1_572_176, 345_138,
    10, 2209, 11_267, 128, 4, 974, 14, 48_937_457, 11_316_796, 40_094_537, 452_104, 12_606, 104,
    35,
];

/// Profile names accepted by `--profile`.
pub const NAMES: &[&str] = &["criteo-kaggle", "criteo-terabyte"];

/// Rows per table of a named profile, each multiplied by `scale` (rounded, at least 1).
///
/// # Errors
/// Unknown profile names; `scale` not in (0, 1].
pub fn tables(name: &str, scale: f64) -> Result<Vec<u64>> {
    let base: &[u64] = match name {
        "criteo-kaggle" => &CRITEO_KAGGLE,
        "criteo-terabyte" => &CRITEO_TERABYTE,
        _ => return Err(Error::unknown("table profile", name, NAMES.iter().copied())),
    };
    if !(scale > 0.0 && scale <= 1.0) {
        return Err(Error::range(
            "scale",
            scale,
            "in (0, 1] (multiplies every table's rows)",
        ));
    }
    Ok(base
        .iter()
        .map(|&n| ((n as f64 * scale).round() as u64).max(1))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_totals() {
        assert_eq!(CRITEO_KAGGLE.iter().sum::<u64>(), 33_762_577);
        assert_eq!(CRITEO_TERABYTE.iter().sum::<u64>(), 177_944_275);
        assert_eq!(tables("criteo-kaggle", 0.001).unwrap()[2], 10_131);
        assert!(tables("criteo", 1.0).is_err());
        assert!(tables("criteo-kaggle", 0.0).is_err());
    }
}
