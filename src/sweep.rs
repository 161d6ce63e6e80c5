//! Parallel evaluation of scenario points (rayon), progress bars, and deterministic seeding.
//!
//! Each point is evaluated by one closure call with its own seed, derived from the scenario seed
//! and the point's index by SplitMix64, so results do not depend on thread count or schedule.
//!
//! Progress goes to stderr only, and only when it is a terminal and not turned off (`-q`): it
//! never changes stdout or a file. Long loops deep in the library (a trace read access by access,
//! a simulation) report through [`report_progress`], which counts into the bar the caller
//! installed on its thread with [`scoped`] and costs one thread-local read per call otherwise.

use crate::error::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::cell::RefCell;
use std::io::IsTerminal as _;

/// Whether a bar is drawn: asked for (no `-q`) and stderr is a terminal.
pub fn bar_enabled(asked: bool, stderr_is_terminal: bool) -> bool {
    asked && stderr_is_terminal
}

/// A bar drawing to stderr when `asked` and stderr is a terminal; hidden otherwise.
fn new_bar(len: Option<u64>, asked: bool) -> ProgressBar {
    let target = if bar_enabled(asked, std::io::stderr().is_terminal()) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    ProgressBar::with_draw_target(len, target)
}

thread_local! {
    static CURRENT: RefCell<Option<ProgressBar>> = const { RefCell::new(None) };
}

/// Adds `n` units (accesses read or simulated) to the bar [`scoped`] installed on this thread;
/// nothing without one. Call it every few thousand units, not per unit.
pub fn report_progress(n: u64) {
    CURRENT.with(|c| {
        if let Some(b) = c.borrow().as_ref() {
            b.inc(n);
        }
    });
}

/// Batches [`report_progress`] calls for a hot loop: `add` per unit, reported every 65 536 units
/// and the rest when dropped.
#[derive(Debug, Default)]
pub struct Ticker {
    pending: u64,
}

impl Ticker {
    /// Counts `n` units.
    #[inline]
    pub fn add(&mut self, n: u64) {
        self.pending += n;
        if self.pending >= 1 << 16 {
            report_progress(self.pending);
            self.pending = 0;
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if self.pending > 0 {
            report_progress(self.pending);
        }
    }
}

/// Runs `f` with `p` receiving this thread's [`report_progress`] calls (the previous bar is
/// restored after).
pub fn scoped<R>(p: &Progress, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(Some(p.bar.clone())));
    let r = f();
    CURRENT.with(|c| *c.borrow_mut() = prev);
    r
}

/// The seed of point `index` of a sweep whose base seed is `base` (SplitMix64 of both).
pub fn point_seed(base: u64, index: u64) -> u64 {
    let mut z = base
        ^ index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A progress bar on stderr, drawn only when stderr is a terminal and not disabled.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `len` points labelled `label`; hidden when `enabled` is false or stderr is not a
    /// terminal.
    pub fn new(len: u64, label: &str, enabled: bool) -> Self {
        Self::counting(len, label, "points", enabled)
    }

    /// A bar for `len` units named `unit` (`points`, `techniques`, ...), labelled `label`.
    pub fn counting(len: u64, label: &str, unit: &str, enabled: bool) -> Self {
        let bar = new_bar(Some(len), enabled);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>16}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} {{elapsed}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// A counter of trace accesses (read and simulated; the total is not known in advance)
    /// labelled `label`, with its rate; fed by [`report_progress`] inside [`scoped`].
    pub fn accesses(label: &str, enabled: bool) -> Self {
        let bar = new_bar(None, enabled);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>16} {spinner} {human_pos} accesses ({per_sec}) {msg} {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress { bar }
    }

    /// Whether the bar draws anything (false when disabled or stderr is not a terminal).
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Advances by `n` units.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the text after the count (what is being worked on).
    pub fn set_message(&self, m: impl Into<String>) {
        self.bar.set_message(m.into());
    }

    /// Marks the bar finished and clears it.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Evaluates `f(index, item)` for every item in parallel, preserving order; stops at the first
/// error (by index order).
///
/// # Errors
/// The first error returned by `f`.
pub fn par_map<T, R, F>(items: &[T], progress: &Progress, f: F) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &T) -> Result<R> + Sync + Send,
{
    let out: Vec<Result<R>> = items
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = f(i, t);
            progress.bar.inc(1);
            r
        })
        .collect();
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_distinct_and_stable() {
        let a: Vec<u64> = (0..1000).map(|i| point_seed(42, i)).collect();
        let mut b = a.clone();
        b.sort_unstable();
        b.dedup();
        assert_eq!(b.len(), 1000);
        assert_eq!(point_seed(42, 7), point_seed(42, 7));
        assert_ne!(point_seed(42, 7), point_seed(43, 7));
    }

    /// Drawn only when asked for and stderr is a terminal; tests run with stderr captured (not a
    /// terminal), so no bar is drawn there even when asked for.
    #[test]
    fn bars_draw_only_on_a_terminal_when_asked() {
        assert!(bar_enabled(true, true));
        assert!(!bar_enabled(false, true));
        assert!(!bar_enabled(true, false));
        assert!(!bar_enabled(false, false));
        assert!(!Progress::new(3, "t", false).is_drawn());
        if !std::io::stderr().is_terminal() {
            assert!(!Progress::new(3, "t", true).is_drawn());
            assert!(!Progress::accesses("t", true).is_drawn());
        }
    }

    /// `report_progress` counts into the bar `scoped` installed on this thread only, and the
    /// previous bar comes back after.
    #[test]
    fn report_progress_counts_into_the_scoped_bar() {
        let outer = Progress::accesses("outer", false);
        let inner = Progress::accesses("inner", false);
        report_progress(5); // no bar: nothing happens
        scoped(&outer, || {
            report_progress(2);
            scoped(&inner, || report_progress(7));
            report_progress(1);
            // Another thread has no bar.
            std::thread::spawn(|| report_progress(100)).join().unwrap();
        });
        report_progress(9);
        scoped(&inner, || {
            let mut t = Ticker::default();
            for _ in 0..70_000 {
                t.add(1);
            }
            assert_eq!(inner.bar.position(), 7 + 65_536);
        });
        assert_eq!(inner.bar.position(), 7 + 70_000, "the rest on drop");
        assert_eq!(outer.bar.position(), 3);
    }

    #[test]
    fn par_map_preserves_order_and_propagates_errors() {
        let items: Vec<u32> = (0..100).collect();
        let p = Progress::new(100, "t", false);
        let r = par_map(&items, &p, |i, x| Ok(i as u32 + x)).unwrap();
        assert_eq!(r[99], 198);
        let e = par_map(&items, &p, |_, &x| {
            if x == 50 {
                Err(crate::Error::range("x", x, "< 50"))
            } else {
                Ok(x)
            }
        });
        assert!(e.is_err());
    }
}
