//! The freeze timeline: how many front layers are frozen at each training step.
//!
//! Every policy of this module freezes a *prefix* (layers `0..k`, bottom first) that only grows,
//! so a timeline is a non-decreasing step function of the iteration index.

use serde::Serialize;

/// One change of the frozen prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Change {
    /// First iteration (0-based) that runs with this prefix frozen.
    pub step: u64,
    /// Number of front layers frozen from `step` on.
    pub frozen_layers: usize,
}

/// A non-decreasing frozen-prefix schedule over `total_steps` iterations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Iterations of the whole run.
    pub total_steps: u64,
    /// Changes sorted by step, the first at step 0, strictly increasing in both fields after it.
    pub changes: Vec<Change>,
}

impl Timeline {
    /// A timeline starting with nothing frozen.
    pub fn new(total_steps: u64) -> Self {
        Timeline {
            total_steps,
            changes: vec![Change {
                step: 0,
                frozen_layers: 0,
            }],
        }
    }

    /// Freezes `frozen_layers` from `step` on; ignored unless it grows the prefix and `step` is
    /// within the run. Steps must be given in non-decreasing order.
    pub fn grow(&mut self, step: u64, frozen_layers: usize) {
        if step >= self.total_steps {
            return;
        }
        let last = *self.changes.last().unwrap_or(&Change {
            step: 0,
            frozen_layers: 0,
        });
        if frozen_layers <= last.frozen_layers || step < last.step {
            return;
        }
        if step == last.step {
            if let Some(c) = self.changes.last_mut() {
                c.frozen_layers = frozen_layers;
            }
        } else {
            self.changes.push(Change {
                step,
                frozen_layers,
            });
        }
    }

    /// Frozen prefix length during iteration `step`.
    pub fn frozen_at(&self, step: u64) -> usize {
        let i = self.changes.partition_point(|c| c.step <= step);
        if i == 0 {
            0
        } else {
            self.changes[i - 1].frozen_layers
        }
    }

    /// Frozen prefix at the end of the run.
    pub fn final_frozen(&self) -> usize {
        self.changes.last().map_or(0, |c| c.frozen_layers)
    }

    /// The step function as plot points (step, frozen layers), with a vertical jump at each change
    /// and a last point at `total_steps`.
    pub fn plot_points(&self) -> Vec<(f64, f64)> {
        let mut pts = Vec::with_capacity(self.changes.len() * 2 + 1);
        let mut prev: Option<usize> = None;
        for c in &self.changes {
            if let Some(p) = prev {
                pts.push((c.step as f64, p as f64));
            }
            pts.push((c.step as f64, c.frozen_layers as f64));
            prev = Some(c.frozen_layers);
        }
        pts.push((self.total_steps as f64, self.final_frozen() as f64));
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_only() {
        let mut t = Timeline::new(100);
        t.grow(10, 2);
        t.grow(20, 1); // shrink: ignored
        t.grow(30, 5);
        t.grow(30, 6); // same step: raises
        t.grow(100, 9); // past the run: ignored
        assert_eq!(t.changes.len(), 3);
        assert_eq!(
            (
                t.frozen_at(9),
                t.frozen_at(10),
                t.frozen_at(29),
                t.frozen_at(30),
                t.frozen_at(99)
            ),
            (0, 2, 2, 6, 6)
        );
        assert_eq!(t.final_frozen(), 6);
        assert_eq!(
            t.plot_points(),
            vec![
                (0.0, 0.0),
                (10.0, 0.0),
                (10.0, 2.0),
                (30.0, 2.0),
                (30.0, 6.0),
                (100.0, 6.0)
            ]
        );
    }
}
