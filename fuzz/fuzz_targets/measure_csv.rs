//! The measurement CSV reader (crate `perfcast-measure`): arbitrary bytes either fail with a
//! one-line error or read as rows; every row read, written and read again comes back equal
//! (`value` and `spread` to the writer's precision), and a second write is byte-identical.
#![no_main]
#![deny(warnings)]

use libfuzzer_sys::fuzz_target;
use perfcast_measure::{Reader, Row, Writer};

/// Rows read per input (bounds the work of a large input).
const MAX_ROWS: usize = 256;

fn one_line(e: &dyn std::fmt::Display) {
    let s = e.to_string();
    assert!(!s.contains('\n'), "error spans lines: {s:?}");
    assert!(!s.is_empty());
}

fn read_all(bytes: &[u8]) -> Result<Vec<Row>, String> {
    let mut r = Reader::new(bytes, "fuzz.csv").map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut last = 1;
    while let Some(x) = r.next_row() {
        let (line, row) = x.map_err(|e| e.to_string())?;
        // Data rows follow the header, at increasing lines (a file of bare-`\r` lines once put
        // every row at line 1; measure's `Reader::line_of`).
        assert!(line > last, "row at line {line} after line {last}");
        last = line;
        rows.push(row);
        if rows.len() == MAX_ROWS {
            break;
        }
    }
    Ok(rows)
}

fn write_all(rows: &[Row]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).expect("writing to memory");
    for r in rows {
        w.write(r)
            .expect("a row the reader accepted can be written");
    }
    w.into_inner().expect("flush to memory")
}

/// Equal up to the writer's rounding (`{:.9e}`: 10 significant digits).
fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + abs
}

fuzz_target!(|data: &[u8]| {
    let mut rows = match read_all(data) {
        Ok(rows) => rows,
        Err(e) => return one_line(&e),
    };
    // The writer stamps an empty date with the current time; pin it so the round trip is exact.
    for r in &mut rows {
        if r.provenance.date.is_empty() {
            r.provenance.date = "2026-01-01T00:00:00Z".into();
        }
    }
    let first = write_all(&rows);
    let back = read_all(&first).unwrap_or_else(|e| {
        panic!(
            "written rows do not read back: {e}\n{}",
            String::from_utf8_lossy(&first)
        )
    });
    assert_eq!(
        back.len(),
        rows.len(),
        "row count changed in the round trip"
    );
    for (a, b) in rows.iter().zip(&back) {
        let mut b2 = b.clone();
        assert!(
            close(a.value, b.value, 1e-9, 0.0),
            "value {} came back as {}",
            a.value,
            b.value
        );
        b2.value = a.value;
        match (a.spread, b.spread) {
            (Some(x), Some(y)) => {
                // `{:.6}`: half a unit of the sixth decimal, plus the binary representation error.
                assert!(
                    close(x, y, 1e-12, 5e-7 + 1e-12),
                    "spread {x} came back as {y}"
                );
                b2.spread = a.spread;
            }
            (x, y) => assert_eq!(x, y, "spread presence changed"),
        }
        assert_eq!(a, &b2, "row changed in the round trip");
    }
    let second = write_all(&back);
    assert_eq!(
        first,
        second,
        "second write differs:\n{}\n---\n{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
});
