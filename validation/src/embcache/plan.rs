//! Host-side cache decisions: the simulator's own policies (`perfcast::embcache::policy`) are
//! driven access by access over the trace, exactly as `perfcast::embcache::simulate` drives them,
//! and every batch's decisions are turned into a data-movement plan for the device cache: which
//! rows are gathered from which slots (hits), which rows come from the host table (misses), which
//! slots are written back to the host and freed, and where every updated row goes after the
//! training step.
//!
//! # Semantics (the simulator's, per batch after deduplication)
//! A batch's unique row is a *hit* when its first access in the batch hits in the policy, else a
//! *miss* (fetched from the host). Physically, per batch `b` with resident set `S0` before and
//! `S1` after the batch's accesses:
//! - `pre_wb`: rows of `S0` that left the cache and were not hits (evicted rows outside the batch,
//!   and rows evicted inside the batch before their first access, which then miss): their slots
//!   are written back to the host table *before* the batch's misses are read from it, and freed;
//! - hits are gathered from their slots, misses come from the host (after `pre_wb`);
//! - after the training step, rows of `S1` are stored in slots (hits keep theirs, misses take
//!   free ones) and every other row of the batch (bypassed or evicted during the batch) is written
//!   back to the host (`post_wb`).
//!
//! So the host table plus the resident slots always hold exactly the trained rows, and the
//! per-batch misses equal `perfcast::embcache::BatchCounts::misses` by construction (tested).
//! Policies run once per grid point before timing (Bagpipe's oracle also runs ahead of training);
//! their host time is reported separately (`plan_s_per_batch`).

use anyhow::{bail, Result};
use perfcast::embcache::policy::{self, Policy, PolicyKind};
use perfcast::embcache::trace::DenseTrace;

const NIL: u32 = u32::MAX;

/// The data movement of one batch (indices are dense row ids, cache slots, or positions in the
/// batch's work buffer: hits first, then misses, each in order of first access).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchPlan {
    /// Per access of the batch: position of its row in the work buffer.
    pub local: Vec<u32>,
    /// Hit rows (dense ids) and their slots, in work order.
    pub hit_rows: Vec<u32>,
    /// Slots of the hit rows.
    pub hit_slots: Vec<u32>,
    /// Missed rows (dense ids), fetched from the host table, in work order after the hits.
    pub fetch: Vec<u32>,
    /// `(row, slot)` written back to the host before the fetch; the slots are freed.
    pub pre_wb: Vec<(u32, u32)>,
    /// `(work position, slot)` stored into the cache after the step.
    pub keep: Vec<(u32, u32)>,
    /// `(work position, row)` written back to the host after the step.
    pub post_wb: Vec<(u32, u32)>,
    /// Rows the policy evicted during this batch (`Policy::evicted` delta, as the simulator counts).
    pub evictions: u32,
    /// Accesses of the batch that hit (per access, as the simulator counts).
    pub access_hits: u32,
}

impl BatchPlan {
    /// Unique rows of the batch.
    pub fn unique(&self) -> usize {
        self.hit_rows.len() + self.fetch.len()
    }
}

/// Every batch's plan for one policy and capacity, plus the slot count the device cache needs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Policy name (`lru`, …, `lookahead`, or `resident` for the uncached reference).
    pub policy: String,
    /// Lookahead window (batches), lookahead only.
    pub window: Option<usize>,
    /// Cache slots.
    pub slots: usize,
    /// One plan per batch.
    pub batches: Vec<BatchPlan>,
    /// Host seconds the policy and planning took (whole trace).
    pub plan_s: f64,
}

impl Plan {
    /// Sum of misses (fetched rows) over batches.
    pub fn misses(&self) -> u64 {
        self.batches.iter().map(|b| b.fetch.len() as u64).sum()
    }

    /// Sum of unique rows over batches.
    pub fn unique(&self) -> u64 {
        self.batches.iter().map(|b| b.unique() as u64).sum()
    }

    /// Largest number of rows fetched for one batch.
    pub fn max_fetch(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.fetch.len())
            .max()
            .unwrap_or(0)
    }

    /// Largest number of rows written back at one point (before or after a step).
    pub fn max_wb(&self) -> usize {
        self.batches
            .iter()
            .map(|b| b.pre_wb.len().max(b.post_wb.len()))
            .max()
            .unwrap_or(0)
    }

    /// Largest unique rows of one batch.
    pub fn max_unique(&self) -> usize {
        self.batches.iter().map(|b| b.unique()).max().unwrap_or(0)
    }

    /// Whether every batch's rows stay resident through the step (no `post_wb`): the condition
    /// for the pipelined (prefetching) execution.
    pub fn pipelinable(&self) -> bool {
        self.batches.iter().all(|b| b.post_wb.is_empty())
    }
}

/// Slot bookkeeping while planning.
struct Slots {
    slot_of: Vec<u32>,
    row_of: Vec<u32>,
    free: Vec<u32>,
}

impl Slots {
    fn new(rows: usize, slots: usize) -> Slots {
        Slots {
            slot_of: vec![NIL; rows],
            row_of: vec![NIL; slots],
            // Pop from the end: slot 0 first.
            free: (0..slots as u32).rev().collect(),
        }
    }
    fn take(&mut self, row: u32) -> Result<u32> {
        let Some(s) = self.free.pop() else {
            bail!("plan: no free slot for row {row} (policy holds more rows than its capacity)")
        };
        self.slot_of[row as usize] = s;
        self.row_of[s as usize] = row;
        Ok(s)
    }
    fn release(&mut self, row: u32) -> u32 {
        let s = self.slot_of[row as usize];
        self.slot_of[row as usize] = NIL;
        self.row_of[s as usize] = NIL;
        self.free.push(s);
        s
    }
}

/// Plans `kind` with `capacity` rows over `trace` (the simulator's policy objects, driven in
/// trace order).
///
/// # Errors
/// The policy's own errors (lookahead capacity below the two-batch working set); a capacity of 0.
pub fn plan(trace: &DenseTrace, kind: PolicyKind, capacity: usize) -> Result<Plan> {
    if capacity == 0 {
        bail!("cache = 0: expected >= 1 row");
    }
    let t0 = std::time::Instant::now();
    let mut p = policy::build(kind, capacity, trace).map_err(|e| anyhow::anyhow!("{e}"))?;
    let slots = capacity.min(trace.n_rows());
    let batches = drive(&mut p, trace, slots)?;
    Ok(Plan {
        policy: kind.name().to_string(),
        window: match kind {
            PolicyKind::Lookahead { window } => Some(window),
            _ => None,
        },
        slots,
        batches,
        plan_s: t0.elapsed().as_secs_f64(),
    })
}

/// The uncached reference: every row resident in slot = row id from the start (the caller
/// preloads the cache with the whole table); every access is a hit and nothing moves.
pub fn resident(trace: &DenseTrace) -> Plan {
    let t0 = std::time::Instant::now();
    let batches = (0..trace.n_batches())
        .map(|b| {
            let (rows, local) = dedup(trace.batch(b), trace.n_rows());
            BatchPlan {
                local,
                hit_slots: rows.clone(),
                keep: rows
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| (i as u32, r))
                    .collect(),
                hit_rows: rows,
                access_hits: trace.batch(b).len() as u32,
                ..Default::default()
            }
        })
        .collect();
    Plan {
        policy: "resident".into(),
        window: None,
        slots: trace.n_rows(),
        batches,
        plan_s: t0.elapsed().as_secs_f64(),
    }
}

/// Unique rows in order of first access and, per access, the row's position among them.
fn dedup(acc: &[u32], n_rows: usize) -> (Vec<u32>, Vec<u32>) {
    let mut pos = std::collections::HashMap::with_capacity(acc.len());
    let _ = n_rows;
    let mut rows = Vec::new();
    let local = acc
        .iter()
        .map(|&r| {
            *pos.entry(r).or_insert_with(|| {
                rows.push(r);
                rows.len() as u32 - 1
            })
        })
        .collect();
    (rows, local)
}

fn drive<P: Policy + ?Sized>(
    p: &mut P,
    trace: &DenseTrace,
    slots: usize,
) -> Result<Vec<BatchPlan>> {
    let n = trace.n_rows();
    let mut sl = Slots::new(n, slots);
    // Per row: batch stamp of its first access in the current batch, and whether it hit then.
    let mut seen = vec![u32::MAX; n];
    let mut first_hit = vec![false; n];
    let mut work_pos = vec![0u32; n];
    let mut out = Vec::with_capacity(trace.n_batches());
    let mut resident_count = 0usize; // rows in the slot map (S0 size)
    for b in 0..trace.n_batches() {
        let acc = trace.batch(b);
        let ev0 = p.evicted();
        let mut uniq: Vec<u32> = Vec::new();
        let mut access_hits = 0u32;
        for &r in acc {
            let hit = p.access(r);
            access_hits += u32::from(hit);
            if seen[r as usize] != b as u32 {
                seen[r as usize] = b as u32;
                first_hit[r as usize] = hit;
                uniq.push(r);
            }
        }
        let in_batch = |r: u32, seen: &[u32]| seen[r as usize] == b as u32;
        // S0 rows that left the cache: scan the slot map only when some did.
        let new_resident = uniq
            .iter()
            .filter(|&&r| sl.slot_of[r as usize] == NIL && p.contains(r))
            .count();
        let gone = resident_count + new_resident - p.len();
        let mut pre_wb = Vec::new();
        let mut post_free = Vec::new(); // hit rows that left: slot freed after the step
        if gone > 0 {
            let mut found = 0;
            for s in 0..slots {
                let r = sl.row_of[s];
                if r == NIL || p.contains(r) {
                    continue;
                }
                found += 1;
                if in_batch(r, &seen) && first_hit[r as usize] {
                    post_free.push(r);
                } else {
                    pre_wb.push((r, s as u32));
                }
                if found == gone {
                    break;
                }
            }
            if found != gone {
                bail!("plan: batch {b}: {gone} rows left the cache but {found} were found");
            }
        }
        // Missed rows that were resident before (evicted before their first access): written
        // back with pre_wb (already in it when they are not resident now); if re-inserted they
        // are still in the slot map, so release them here too.
        for &r in &uniq {
            let s = sl.slot_of[r as usize];
            if s != NIL && !first_hit[r as usize] && p.contains(r) {
                pre_wb.push((r, s));
            }
        }
        for &(r, _) in &pre_wb {
            sl.release(r);
        }
        // Work order: hits, then misses.
        let mut hit_rows = Vec::new();
        let mut fetch = Vec::new();
        for &r in &uniq {
            if first_hit[r as usize] {
                hit_rows.push(r);
            } else {
                fetch.push(r);
            }
        }
        let hit_slots: Vec<u32> = hit_rows.iter().map(|&r| sl.slot_of[r as usize]).collect();
        if hit_slots.contains(&NIL) {
            bail!("plan: batch {b}: a hit row has no slot");
        }
        for &r in &post_free {
            sl.release(r);
        }
        for (i, &r) in hit_rows.iter().chain(fetch.iter()).enumerate() {
            work_pos[r as usize] = i as u32;
        }
        let local = acc.iter().map(|&r| work_pos[r as usize]).collect();
        let mut keep = Vec::new();
        let mut post_wb = Vec::new();
        for (i, &r) in hit_rows.iter().chain(fetch.iter()).enumerate() {
            let i = i as u32;
            if p.contains(r) {
                let s = match sl.slot_of[r as usize] {
                    NIL => sl.take(r)?,
                    s => s,
                };
                keep.push((i, s));
            } else {
                post_wb.push((i, r));
            }
        }
        resident_count = p.len();
        if sl.free.len() + resident_count != slots {
            bail!(
                "plan: batch {b}: slot map out of step ({} free + {resident_count} resident != {slots})",
                sl.free.len()
            );
        }
        out.push(BatchPlan {
            local,
            hit_rows,
            hit_slots,
            fetch,
            pre_wb,
            keep,
            post_wb,
            evictions: (p.evicted() - ev0) as u32,
            access_hits,
        });
    }
    Ok(out)
}

/// The rows resident after the last batch, `(row, slot)` (for the final write-back).
pub fn final_resident(plan: &Plan, n_rows: usize) -> Vec<(u32, u32)> {
    let mut slot_of = vec![NIL; n_rows];
    for b in &plan.batches {
        for &(r, _) in &b.pre_wb {
            slot_of[r as usize] = NIL;
        }
        let rows: Vec<u32> = b.hit_rows.iter().chain(b.fetch.iter()).copied().collect();
        for &(_, r) in &b.post_wb {
            slot_of[r as usize] = NIL;
        }
        for &(i, s) in &b.keep {
            slot_of[rows[i as usize] as usize] = s;
        }
    }
    (0..n_rows as u32)
        .filter(|&r| slot_of[r as usize] != NIL)
        .map(|r| (r, slot_of[r as usize]))
        .collect()
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use perfcast::embcache::trace::zipf::ZipfSpec;

    pub(crate) fn zipf_trace(
        rows: u64,
        tables: usize,
        samples: u64,
        batch: u64,
        seed: u64,
    ) -> DenseTrace {
        let spec = ZipfSpec::new(1.05, vec![rows; tables], samples * tables as u64, seed).unwrap();
        DenseTrace::from_stream(spec.stream(), batch, false, "test").unwrap()
    }

    pub(crate) fn kinds() -> Vec<PolicyKind> {
        vec![
            PolicyKind::Lru,
            PolicyKind::Fifo,
            PolicyKind::Lfu,
            PolicyKind::StaticTopK {
                profile_fraction: 0.25,
            },
            PolicyKind::Belady,
            PolicyKind::Lookahead { window: 1 },
            PolicyKind::Lookahead { window: 4 },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use perfcast::embcache::simulate;

    /// Replays a plan against a model of the host table and the slots, checking that every hit
    /// reads the slot holding that row, every miss reads a host row that is current, and the
    /// final state covers every row exactly once.
    fn replay_is_consistent(t: &DenseTrace, plan: &Plan) {
        // version[r]: how many batches updated row r; host_v/slot_v: the version each holds.
        let n = t.n_rows();
        let mut version = vec![0u32; n];
        let mut host_v = vec![0u32; n];
        let mut slot_row = vec![NIL; plan.slots];
        let mut slot_v = vec![0u32; plan.slots];
        for (b, bp) in plan.batches.iter().enumerate() {
            for &(r, s) in &bp.pre_wb {
                assert_eq!(slot_row[s as usize], r, "batch {b}: pre_wb slot {s}");
                host_v[r as usize] = slot_v[s as usize];
                slot_row[s as usize] = NIL;
            }
            let rows: Vec<u32> = bp.hit_rows.iter().chain(&bp.fetch).copied().collect();
            for (&r, &s) in bp.hit_rows.iter().zip(&bp.hit_slots) {
                assert_eq!(slot_row[s as usize], r, "batch {b}: hit row {r} slot {s}");
                assert_eq!(slot_v[s as usize], version[r as usize]);
            }
            for &r in &bp.fetch {
                assert_eq!(
                    host_v[r as usize], version[r as usize],
                    "batch {b}: stale fetch {r}"
                );
            }
            for (&l, &r) in bp.local.iter().zip(t.batch(b)) {
                assert_eq!(rows[l as usize], r);
            }
            for &r in &rows {
                version[r as usize] += 1;
            }
            for &s in &bp.hit_slots {
                slot_row[s as usize] = NIL;
            }
            for &(i, s) in &bp.keep {
                assert_eq!(
                    slot_row[s as usize], NIL,
                    "batch {b}: keep into a used slot {s}"
                );
                let r = rows[i as usize];
                slot_row[s as usize] = r;
                slot_v[s as usize] = version[r as usize];
            }
            for &(i, r) in &bp.post_wb {
                assert_eq!(rows[i as usize], r);
                host_v[r as usize] = version[r as usize];
            }
            assert_eq!(bp.keep.len() + bp.post_wb.len(), rows.len());
        }
        for (r, s) in final_resident(plan, n) {
            assert_eq!(slot_row[s as usize], r);
            host_v[r as usize] = slot_v[s as usize];
        }
        assert_eq!(host_v, version, "final host table = every update");
    }

    #[test]
    fn per_batch_counts_equal_the_simulator_for_every_policy() {
        let t = zipf_trace(300, 3, 400, 16, 11);
        let lookahead_min = perfcast::embcache::policy::lookahead::Lookahead::min_feasible_rows(&t);
        for kind in kinds() {
            for cap in [5usize, 20, 60, 200, 2000] {
                let cap = if matches!(kind, PolicyKind::Lookahead { .. }) {
                    cap.max(lookahead_min)
                } else {
                    cap
                };
                let (m, bc) = simulate(&t, kind, cap).unwrap();
                let p = plan(&t, kind, cap).unwrap();
                let misses: Vec<u32> = p.batches.iter().map(|b| b.fetch.len() as u32).collect();
                let unique: Vec<u32> = p.batches.iter().map(|b| b.unique() as u32).collect();
                let ev: Vec<u32> = p.batches.iter().map(|b| b.evictions).collect();
                let hits: u64 = p.batches.iter().map(|b| u64::from(b.access_hits)).sum();
                assert_eq!(misses, bc.misses, "{} cap {cap}", kind.name());
                assert_eq!(unique, bc.unique, "{} cap {cap}", kind.name());
                assert_eq!(ev, bc.evictions, "{} cap {cap}", kind.name());
                assert_eq!(hits, m.hits, "{} cap {cap}", kind.name());
                replay_is_consistent(&t, &p);
                if matches!(kind, PolicyKind::Lookahead { .. }) {
                    assert!(p.pipelinable(), "lookahead keeps its batch resident");
                }
            }
        }
    }

    #[test]
    fn lru_evicting_a_row_before_its_first_access_is_a_miss_and_stays_exact() {
        // Capacity 2, batches [a b] [c a]: c evicts a (LRU) before a's access in the batch.
        let t = DenseTrace::from_rows(&[1, 2, 3, 1], 2);
        let p = plan(&t, PolicyKind::Lru, 2).unwrap();
        assert_eq!(p.batches[1].fetch, vec![2, 0]);
        // Both old rows left: b (slot 1, not in the batch) and a (slot 0, evicted before its access).
        assert_eq!(p.batches[1].pre_wb, vec![(1, 1), (0, 0)]);
        replay_is_consistent(&t, &p);
        let r = resident(&t);
        assert_eq!(r.misses(), 0);
        assert_eq!(r.unique(), 4);
    }
}

#[cfg(test)]
mod library_counts {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn library_move_counts_equal_the_plans_data_movement() {
        let t = zipf_trace(300, 3, 400, 16, 12);
        let la = perfcast::embcache::policy::lookahead::Lookahead::min_feasible_rows(&t);
        for kind in kinds() {
            for cap in [3usize, 20, 60, 200] {
                let cap = if matches!(kind, PolicyKind::Lookahead { .. }) {
                    cap.max(la)
                } else {
                    cap
                };
                let p = plan(&t, kind, cap).unwrap();
                let mc = perfcast::embcache::calib::move_counts(&t, kind, cap).unwrap();
                let wb: Vec<u32> = p
                    .batches
                    .iter()
                    .map(|b| (b.pre_wb.len() + b.post_wb.len()) as u32)
                    .collect();
                let nk: Vec<u32> = p.batches.iter().map(|b| b.post_wb.len() as u32).collect();
                assert_eq!(mc.writebacks, wb, "{} cap {cap}", kind.name());
                assert_eq!(mc.not_kept, nk, "{} cap {cap}", kind.name());
            }
        }
    }
}
