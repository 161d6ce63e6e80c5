//! Reports: tidy CSV, plots (PNG and SVG), `summary.md` and the self-contained `report.html`, all
//! written atomically.

pub mod csv;
pub mod files;
pub mod html;
pub mod output;
pub mod plot;

pub use self::csv::Rows;
pub use files::{check_dir, ensure_dir, write_atomic, AtomicFile, ReportDir};
pub use output::{print_records, Format};
pub use plot::{LinePlot, Series};
pub mod summary;
pub mod units;
pub use summary::run_scenario;
