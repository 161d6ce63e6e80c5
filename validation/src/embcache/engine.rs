//! The training loop with a device-resident row cache, executing a [`Plan`].
//!
//! Memory: the full table (`n_rows × width` f32) in host memory (pinned on CUDA), standing in for
//! a remote parameter store; the cache, one device tensor `[slots, width]` f32; two device staging
//! buffers for fetched rows and pinned host staging for fetches and write-backs.
//!
//! Per batch, on-demand execution (LRU, FIFO, LFU, static top-k, Belady: misses on the critical
//! path, everything on the compute stream, the host waits for each write-back):
//! 1. the `pre_wb` slots are gathered on the device, copied to the host and scattered into the
//!    table (so the host copy is current before any miss reads it);
//! 2. the misses are gathered on the host into pinned staging and copied to the device;
//! 3. work rows = `[cache.index_select(hit slots); fetched rows]`; forward, backward, optimizer;
//! 4. updated rows of the resident set are scattered into their slots (`keep`), the others are
//!    copied back to the host table (`post_wb`).
//!
//! Pipelined execution (Bagpipe lookahead; needs `post_wb` empty, which lookahead guarantees):
//! batch `b+1`'s misses are gathered on the host and copied on a second stream while batch `b`
//! computes, and batch `b`'s evictions (`pre_wb`, gathered on the compute stream before `b`'s
//! step) are copied to the host on the same second stream; events order the streams. The host
//! scatters `b`'s evictions into the table before it gathers `b+1`'s misses (a window of 1 can
//! evict a row after batch `b−1` and fetch it again for `b+1`).
//!
//! At the end [`Engine::flush`] writes every resident row back: the host table is then exactly
//! the trained table (tests compare it with an uncached run).

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

use super::dlrm::{BatchInputs, Dlrm};
use super::plan::{self, Plan};
use super::xfer::{gather_rows, scatter_rows, Copier, HostBuf, Mark, On};

/// Device index tensors of one batch (built before timing, like a data loader's prefetched batch).
struct Prepared {
    inputs: BatchInputs,
    hit_slots: Option<Tensor>,
    pre_slots: Option<Tensor>,
    keep_pos: Option<Tensor>,
    keep_slots: Option<Tensor>,
    post_pos: Option<Tensor>,
    pre_rows: Vec<u32>,
    post_rows: Vec<u32>,
}

/// What one pass over the trace measured.
#[derive(Clone, Debug, Default)]
pub struct PassStats {
    /// Wall seconds of the timed loop (device synchronized at the end).
    pub secs: f64,
    /// Batches.
    pub batches: usize,
    /// Rows read from the cache (hits), per batch.
    pub hits: Vec<u32>,
    /// Rows fetched from the host (misses), per batch.
    pub misses: Vec<u32>,
    /// Rows written back to the host, per batch.
    pub writebacks: Vec<u32>,
    /// Mean loss of the last batch (read after the loop).
    pub last_loss: f32,
}

/// Host table, device cache and staging.
pub struct Engine {
    dev: Device,
    copier: Copier,
    width: usize,
    n_rows: usize,
    /// The full table, `n_rows × width` f32 (host, pinned on CUDA).
    pub host: HostBuf,
    cache: Tensor,
    slots: usize,
    stage: [Tensor; 2],
    pin_fetch: [HostBuf; 2],
    pin_wb: HostBuf,
    cap_rows: usize,
}

fn idx(v: &[u32], dev: &Device) -> Result<Option<Tensor>> {
    if v.is_empty() {
        Ok(None)
    } else {
        Ok(Some(Tensor::from_slice(v, v.len(), dev)?))
    }
}

impl Engine {
    /// A table of `n_rows` rows initialized from `seed` (weights uniform in ±0.05, accumulators
    /// 0), a cache of `slots` rows, staging for `stage_rows` rows per transfer.
    ///
    /// # Errors
    /// Allocation.
    pub fn new(
        dev: &Device,
        n_rows: usize,
        dim: usize,
        width: usize,
        slots: usize,
        stage_rows: usize,
        seed: u64,
    ) -> Result<Engine> {
        use rand::{RngExt, SeedableRng};
        let mut host = HostBuf::zeros(n_rows * width, dev)?;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        for row in host.as_mut_slice().chunks_mut(width) {
            for x in &mut row[..dim] {
                *x = rng.random_range(-0.05f32..0.05);
            }
        }
        let stage_rows = stage_rows.max(1);
        let stage = [
            Tensor::zeros((stage_rows, width), DType::F32, dev)?,
            Tensor::zeros((stage_rows, width), DType::F32, dev)?,
        ];
        Ok(Engine {
            dev: dev.clone(),
            copier: Copier::new(dev)?,
            width,
            n_rows,
            host,
            cache: Tensor::zeros((slots.max(1), width), DType::F32, dev)?,
            slots: slots.max(1),
            stage,
            pin_fetch: [
                HostBuf::zeros(stage_rows * width, dev)?,
                HostBuf::zeros(stage_rows * width, dev)?,
            ],
            pin_wb: HostBuf::zeros(stage_rows * width, dev)?,
            cap_rows: stage_rows,
        })
    }

    /// Row width (f32).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The copier (for micro-measurements).
    pub fn copier(&self) -> &Copier {
        &self.copier
    }

    /// The device cache tensor.
    pub fn cache(&self) -> &Tensor {
        &self.cache
    }

    /// Resizes the cache to `slots` rows (contents zero: call between passes).
    ///
    /// # Errors
    /// Allocation.
    pub fn set_slots(&mut self, slots: usize) -> Result<()> {
        if slots != self.slots {
            self.cache = Tensor::zeros((0, self.width), DType::F32, &self.dev)?;
            self.cache = Tensor::zeros((slots.max(1), self.width), DType::F32, &self.dev)?;
            self.slots = slots.max(1);
        }
        Ok(())
    }

    /// Copies the whole host table into the cache (the uncached reference: `slots = n_rows`).
    ///
    /// # Errors
    /// A cache smaller than the table; device copies.
    pub fn preload_all(&mut self) -> Result<()> {
        if self.slots < self.n_rows {
            bail!(
                "preload: cache of {} slots < {} rows",
                self.slots,
                self.n_rows
            );
        }
        let t = Tensor::from_slice(self.host.as_slice(), (self.n_rows, self.width), &self.dev)?;
        self.cache.slice_set(&t, 0, 0)?;
        Ok(())
    }

    /// Writes every resident row of `plan`'s final state (or, with `all`, the whole preloaded
    /// cache) back to the host table.
    ///
    /// # Errors
    /// Device copies.
    pub fn flush(&mut self, plan: &Plan, all: bool) -> Result<()> {
        let res: Vec<(u32, u32)> = if all {
            (0..self.n_rows as u32).map(|r| (r, r)).collect()
        } else {
            plan::final_resident(plan, self.n_rows)
        };
        for chunk in res.chunks(self.cap_rows) {
            let slots: Vec<u32> = chunk.iter().map(|x| x.1).collect();
            let rows: Vec<u32> = chunk.iter().map(|x| x.0).collect();
            let s = Tensor::from_slice(&slots, slots.len(), &self.dev)?;
            let g = self.cache.index_select(&s, 0)?;
            self.copier
                .d2h(&g, rows.len(), self.width, &mut self.pin_wb, On::Main)?;
            self.copier.sync()?;
            scatter_rows(
                self.host.as_mut_slice(),
                self.width,
                &rows,
                self.pin_wb.as_slice(),
            );
        }
        Ok(())
    }

    fn prepare(
        &self,
        trace_batches: usize,
        plan: &Plan,
        model: &Dlrm,
        input_seed: u64,
    ) -> Result<Vec<Prepared>> {
        if plan.batches.len() != trace_batches {
            bail!(
                "plan has {} batches, trace {}",
                plan.batches.len(),
                trace_batches
            );
        }
        if plan.slots > self.slots {
            bail!(
                "plan needs {} slots, the cache has {}",
                plan.slots,
                self.slots
            );
        }
        let need = plan.max_fetch().max(plan.max_wb());
        if need > self.cap_rows {
            bail!(
                "plan moves up to {need} rows at once; staging holds {}",
                self.cap_rows
            );
        }
        let t = model.cfg.tables;
        plan.batches
            .iter()
            .enumerate()
            .map(|(b, bp)| {
                let samples = bp.local.len() / t;
                Ok(Prepared {
                    inputs: model.inputs(b as u64, samples, &bp.local, bp.unique(), input_seed)?,
                    hit_slots: idx(&bp.hit_slots, &self.dev)?,
                    pre_slots: idx(
                        &bp.pre_wb.iter().map(|x| x.1).collect::<Vec<_>>(),
                        &self.dev,
                    )?,
                    keep_pos: idx(&bp.keep.iter().map(|x| x.0).collect::<Vec<_>>(), &self.dev)?,
                    keep_slots: idx(&bp.keep.iter().map(|x| x.1).collect::<Vec<_>>(), &self.dev)?,
                    post_pos: idx(
                        &bp.post_wb.iter().map(|x| x.0).collect::<Vec<_>>(),
                        &self.dev,
                    )?,
                    pre_rows: bp.pre_wb.iter().map(|x| x.0).collect(),
                    post_rows: bp.post_wb.iter().map(|x| x.1).collect(),
                })
            })
            .collect()
    }

    /// Assembles the work rows, trains, stores the updated rows (`keep`) and returns them.
    fn step(
        &mut self,
        p: &Prepared,
        fetched: Option<Tensor>,
        model: &mut Dlrm,
        gathered: &mut Option<Vec<Tensor>>,
    ) -> Result<(Tensor, Tensor)> {
        let hits = match &p.hit_slots {
            Some(s) => Some(self.cache.index_select(s, 0)?),
            None => None,
        };
        let work = match (hits, fetched) {
            (Some(h), Some(f)) => Tensor::cat(&[&h, &f], 0)?,
            (Some(h), None) => h,
            (None, Some(f)) => f,
            (None, None) => bail!("empty batch"),
        };
        if let Some(g) = gathered {
            g.push(work.copy()?);
        }
        let (upd, loss) = model.step(&work, &p.inputs)?;
        if let (Some(pos), Some(slots)) = (&p.keep_pos, &p.keep_slots) {
            let rows = upd.index_select(pos, 0)?;
            super::segsum::scatter_rows(&self.cache, &rows, slots)?;
        }
        Ok((upd, loss))
    }

    /// One pass over the trace with `plan`, from an empty cache (or, for the `resident` plan, a
    /// preloaded one). `pipelined` selects the prefetching execution (requires
    /// [`Plan::pipelinable`]). With `gathered`, every batch's work rows are copied out (checks).
    ///
    /// # Errors
    /// A plan that does not fit; device errors.
    pub fn pass(
        &mut self,
        trace_batches: usize,
        plan: &Plan,
        model: &mut Dlrm,
        pipelined: bool,
        input_seed: u64,
        mut gathered: Option<&mut Vec<Tensor>>,
    ) -> Result<PassStats> {
        if pipelined && !plan.pipelinable() {
            bail!(
                "{}: pipelined execution needs every batch resident through its step",
                plan.policy
            );
        }
        let prep = self.prepare(trace_batches, plan, model, input_seed)?;
        self.copier.sync()?;
        let mut g: Option<Vec<Tensor>> = gathered.as_ref().map(|_| Vec::new());
        let w = self.width;
        let t0 = std::time::Instant::now();
        let mut loss = None;
        if !pipelined {
            // Two pinned fetch buffers alternate; the host waits for the copy out of one before
            // gathering into it again (the copies run on the compute stream, in order).
            let mut h2d_done: [Mark; 2] = [Mark::done(), Mark::done()];
            for (b, (bp, p)) in plan.batches.iter().zip(&prep).enumerate() {
                let k = b % 2;
                if let Some(s) = &p.pre_slots {
                    let wb = self.cache.index_select(s, 0)?;
                    self.copier
                        .d2h(&wb, p.pre_rows.len(), w, &mut self.pin_wb, On::Main)?;
                    let done = self.copier.mark(On::Main)?;
                    self.copier.host_wait(&done)?;
                    scatter_rows(
                        self.host.as_mut_slice(),
                        w,
                        &p.pre_rows,
                        self.pin_wb.as_slice(),
                    );
                }
                let fetched = if bp.fetch.is_empty() {
                    None
                } else {
                    let n = bp.fetch.len();
                    self.copier.host_wait(&h2d_done[k])?;
                    gather_rows(
                        self.host.as_slice(),
                        w,
                        &bp.fetch,
                        self.pin_fetch[k].as_mut_slice(),
                    );
                    let t = self
                        .copier
                        .h2d(&self.pin_fetch[k], n, w, &self.stage[k], On::Main)?;
                    h2d_done[k] = self.copier.mark(On::Main)?;
                    Some(t.narrow(0, 0, n)?)
                };
                let (upd, l) = self.step(p, fetched, model, &mut g)?;
                if let Some(pos) = &p.post_pos {
                    let rows = upd.index_select(pos, 0)?;
                    self.copier
                        .d2h(&rows, p.post_rows.len(), w, &mut self.pin_wb, On::Main)?;
                    let done = self.copier.mark(On::Main)?;
                    self.copier.host_wait(&done)?;
                    scatter_rows(
                        self.host.as_mut_slice(),
                        w,
                        &p.post_rows,
                        self.pin_wb.as_slice(),
                    );
                }
                loss = Some(l);
            }
        } else {
            let nb = plan.batches.len();
            let mut h2d_done: [Mark; 2] = [Mark::done(), Mark::done()];
            let mut consumed: [Mark; 2] = [Mark::done(), Mark::done()];
            // Prologue: batch 0's misses.
            if let Some(b0) = plan.batches.first() {
                let n = b0.fetch.len();
                gather_rows(
                    self.host.as_slice(),
                    w,
                    &b0.fetch,
                    self.pin_fetch[0].as_mut_slice(),
                );
                let t = self
                    .copier
                    .h2d(&self.pin_fetch[0], n, w, &self.stage[0], On::Copy)?;
                self.stage_cpu(0, t);
                h2d_done[0] = self.copier.mark(On::Copy)?;
            }
            for (b, (bp, p)) in plan.batches.iter().zip(&prep).enumerate() {
                let k = b % 2;
                // Evictions before this batch: gather their slots now (after batch b−1's step in
                // stream order), before any fetched row takes a freed slot.
                let wb = match &p.pre_slots {
                    Some(s) => Some(self.cache.index_select(s, 0)?),
                    None => None,
                };
                let wb_ready = self.copier.mark(On::Main)?;
                self.copier.wait(On::Main, &h2d_done[k])?;
                let fetched = if bp.fetch.is_empty() {
                    None
                } else {
                    Some(self.stage[k].narrow(0, 0, bp.fetch.len())?)
                };
                let (_, l) = self.step(p, fetched, model, &mut g)?;
                consumed[k] = self.copier.mark(On::Main)?;
                loss = Some(l);
                // Write back the evictions on the copy stream, overlapped with the step.
                if let Some(wb) = &wb {
                    self.copier.wait(On::Copy, &wb_ready)?;
                    self.copier
                        .d2h(wb, p.pre_rows.len(), w, &mut self.pin_wb, On::Copy)?;
                    let done = self.copier.mark(On::Copy)?;
                    self.copier.host_wait(&done)?;
                    scatter_rows(
                        self.host.as_mut_slice(),
                        w,
                        &p.pre_rows,
                        self.pin_wb.as_slice(),
                    );
                }
                drop(wb);
                // Prefetch batch b+1's misses on the copy stream.
                if b + 1 < nb {
                    let k1 = (b + 1) % 2;
                    let f = &plan.batches[b + 1].fetch;
                    self.copier.host_wait(&h2d_done[k1])?;
                    gather_rows(
                        self.host.as_slice(),
                        w,
                        f,
                        self.pin_fetch[k1].as_mut_slice(),
                    );
                    self.copier.wait(On::Copy, &consumed[k1])?;
                    let t = self.copier.h2d(
                        &self.pin_fetch[k1],
                        f.len(),
                        w,
                        &self.stage[k1],
                        On::Copy,
                    )?;
                    self.stage_cpu(k1, t);
                    h2d_done[k1] = self.copier.mark(On::Copy)?;
                }
            }
        }
        self.copier.sync()?;
        let secs = t0.elapsed().as_secs_f64();
        let last_loss = match loss {
            Some(l) => l.to_scalar::<f32>()?,
            None => f32::NAN,
        };
        if let (Some(out), Some(g)) = (gathered.as_mut(), g) {
            out.extend(g);
        }
        Ok(PassStats {
            secs,
            batches: plan.batches.len(),
            hits: plan
                .batches
                .iter()
                .map(|b| b.hit_rows.len() as u32)
                .collect(),
            misses: plan.batches.iter().map(|b| b.fetch.len() as u32).collect(),
            writebacks: plan
                .batches
                .iter()
                .map(|b| (b.pre_wb.len() + b.post_wb.len()) as u32)
                .collect(),
            last_loss,
        })
    }

    /// On the CPU, `h2d` returns a new tensor holding the rows: keep it as the staging buffer.
    fn stage_cpu(&mut self, k: usize, t: Tensor) {
        if !self.dev.is_cuda() {
            self.stage[k] = t;
        }
    }
}
