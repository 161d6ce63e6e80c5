//! Reports: tidy CSV, plots (PNG and SVG) and `summary.md`, all written atomically.

pub mod csv;
pub mod output;
pub mod plot;

pub use self::csv::{write_atomic, Rows};
pub use output::{print_records, Format};
pub use plot::{LinePlot, Series};
pub mod summary;
pub mod units;
pub use summary::run_scenario;
