//! The scenario parser: TOML text → studies → sweep grids → every point's technique `Spec`
//! (resolved against the embedded catalog through `studies::build`, as `perfcast run` does).
//!
//! Properties: errors are one line; a grid has exactly the product of its axes' lengths
//! points, each holding every fixed and swept key with the axis value in place; no scenario
//! over the point limit is accepted; an accepted study reports as many points as its grid.
#![no_main]
#![deny(warnings)]

use libfuzzer_sys::fuzz_target;
use perfcast::catalog::Catalog;
use perfcast::scenario::{self, Limits};
use perfcast::studies;
use std::path::Path;
use std::sync::OnceLock;

/// Grid points allowed per input (small, so building every point's spec stays fast).
const MAX_POINTS: u64 = 256;

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| Catalog::embedded().expect("embedded catalog"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::new(MAX_POINTS).expect("in range");
    let mut lens = Vec::new();
    let parsed = scenario::parse_with(text, Path::new("fuzz.toml"), limits, |spec| {
        let n = spec.len();
        let product: usize = spec.axes.iter().map(|(_, v)| v.len()).product();
        assert_eq!(n, product);
        assert!(
            n >= 1 && n as u64 <= MAX_POINTS,
            "grid of {n} points accepted"
        );
        let grid = spec.grid();
        assert_eq!(grid.len(), n, "grid length vs len()");
        // The last axis varies fastest; each point holds the fixed keys and one value per axis.
        let mut stride = n;
        for (key, values) in &spec.axes {
            stride /= values.len();
            for (i, p) in grid.iter().enumerate() {
                assert_eq!(
                    p.get(key),
                    Some(&values[(i / stride) % values.len()]),
                    "{key}"
                );
            }
        }
        for p in &grid {
            for (k, v) in &spec.fixed {
                assert_eq!(p.get(k), Some(v));
            }
            assert_eq!(p.len(), spec.fixed.len() + spec.axes.len());
        }
        lens.push(n);
        studies::build(spec, catalog())
    });
    match parsed {
        Ok(s) => {
            assert_eq!(s.studies.len(), lens.len());
            for (st, n) in s.studies.iter().zip(&lens) {
                assert_eq!(st.points(), *n, "study {}", st.name());
            }
            assert!(lens.iter().sum::<usize>() as u64 <= MAX_POINTS);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(!m.contains('\n'), "error spans lines: {m:?}");
        }
    }
});
