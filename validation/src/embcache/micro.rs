//! Micro-measurements for calibrating the pipeline model (`perfcast calibrate` reads them; the
//! e2e grid is what `validate` predicts):
//!
//! | op | what is timed | synchronization |
//! | --- | --- | --- |
//! | `d2d_copy` | one large device tensor copy (the device-memory roofline of this run) | after `iters` calls |
//! | `gather` | `cache.index_select(slots)` of n distinct random slots (a batch's hits) | after `iters` calls |
//! | `scatter` | row scatter of n rows into their slots (`segsum::scatter_rows`: storing updated rows) | after `iters` calls |
//! | `h2d_pinned` / `d2h_pinned` | one explicit copy of n rows from / to pinned host memory | every call |
//! | `h2d_pageable` | one copy of n rows from pageable host memory | every call |
//! | `host_gather` / `host_scatter` | n random rows of the host table to / from pinned staging | every call |
//! | `fetch_path` | the whole miss path: host gather + H2D + scatter into slots | every call |
//! | `writeback_path` | gather slots + D2H + host scatter | every call |
//! | `zero_copy_gather` | n random rows read by a kernel straight from the page-locked host table (no staging copy) | every call |
//! | `compute` | one training step's dense part (forward, backward, optimizers) for a batch | after `iters` calls |
//! | `overlap` | a step and a fetch (host gather + H2D on the copy stream), alone and together | every call |
//!
//! Every op reports `<op>_s` (median seconds per call over `repeats`, with spread); row ops add
//! `<op>_bytes_per_s` (payload bytes = rows × row bytes, over the median time). The zero-copy
//! gather is this crate's kernel (`gather_host_rows_f32x4` in `seg_sum.cu`): candle's gather
//! kernels take device buffers only.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::cli::{load_trace, model_cfg, random_idx, time_calls, Common};
use super::dlrm::Dlrm;
use super::rows::EmbRow;
use super::segsum::scatter_rows as device_scatter;
use super::xfer::{gather_rows, scatter_rows, Copier, HostBuf, On};
use crate::measure::Stats;

/// The micro grid.
#[derive(Clone, Debug)]
pub struct Micro {
    /// Row counts.
    pub rows: Vec<usize>,
    /// Host table rows.
    pub table_rows: usize,
    /// Batch sizes (samples) for `compute`.
    pub batches: Vec<usize>,
    /// Untimed calls.
    pub warmup: usize,
    /// Timed repeats.
    pub repeats: usize,
    /// Calls per repeat.
    pub iters: usize,
    /// Batch sizes at which the fetch/compute overlap is measured (with every row count ≥ 1024).
    pub overlap_batches: Vec<usize>,
}

fn rand_tensor(n: usize, width: usize, seed: u64, dev: &Device) -> Result<Tensor> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * width)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Ok(Tensor::from_vec(v, (n, width), dev)?)
}

/// Runs the micro grid; returns the rows emitted.
///
/// # Errors
/// Bad sizes, device errors.
pub fn run(
    dev: &Device,
    c: &Common,
    m: &Micro,
    emit: &mut dyn FnMut(&EmbRow) -> Result<()>,
) -> Result<usize> {
    let cfg = model_cfg(c, 26)?;
    let width = cfg.width();
    let row_bytes = (width * 4) as f64;
    let setup = format!("dlrm-d{}", cfg.dim);
    let max_rows = m.rows.iter().copied().max().unwrap_or(1);
    anyhow::ensure!(
        m.table_rows >= max_rows,
        "table-rows {} < the largest row count {max_rows}",
        m.table_rows
    );
    let slots = (m.table_rows / 2).max(max_rows);
    let mut count = 0usize;
    let mut counted = |r: &EmbRow| -> Result<()> {
        count += 1;
        emit(r)
    };
    let emit: &mut dyn FnMut(&EmbRow) -> Result<()> = &mut counted;
    let out = |op: &str,
               n: Option<usize>,
               extra: &[(&str, String)],
               metric: &str,
               s: &Stats,
               emit: &mut dyn FnMut(&EmbRow) -> Result<()>|
     -> Result<()> {
        let mut p: Vec<(&str, String)> = vec![("op", op.to_string())];
        if let Some(n) = n {
            p.push(("rows", n.to_string()));
        }
        p.extend([
            ("dim", cfg.dim.to_string()),
            ("row_bytes", (width * 4).to_string()),
        ]);
        p.extend(extra.iter().cloned());
        let base = EmbRow::new("micro", &setup, &p);
        emit(&base.timed(metric, s, "s"))?;
        if let Some(n) = n {
            let name = format!("{}_bytes_per_s", metric.trim_end_matches("_s"));
            emit(&base.value(&name, n as f64 * row_bytes / s.median, s.n, "B/s"))?;
        }
        Ok(())
    };

    let copier_d2d = Copier::new(dev)?;
    // Device-memory roofline: one large copy (payload bytes per second; each byte is read and
    // written once).
    let copy_elems = if dev.is_cuda() { 1 << 26 } else { 1 << 20 };
    let big = rand_tensor(copy_elems / width, width, c.seed, dev)?;
    let v = time_calls(dev, m.warmup, m.repeats, m.iters, &mut || {
        let _ = big.copy()?;
        Ok(())
    })?;
    let s = Stats::of(&v);
    let copy_rows = copy_elems / width;
    let d2d_bps = copy_rows as f64 * row_bytes / s.median;
    out(
        "d2d_copy",
        Some(copy_elems / width),
        &[],
        "d2d_copy_s",
        &s,
        emit,
    )?;
    println!(
        "embcache micro: device copy {:.1} GB/s",
        (copy_elems * 4) as f64 / s.median / 1e9
    );
    // The same bytes through the driver's copy engine path (cuMemcpyDtoD).
    let big2 = big.zeros_like()?;
    let v = time_calls(dev, m.warmup, m.repeats, m.iters, &mut || {
        copier_d2d.d2d(&big, &big2)?;
        Ok(())
    })?;
    let s2 = Stats::of(&v);
    out(
        "d2d_memcpy",
        Some(copy_rows),
        &[],
        "d2d_memcpy_s",
        &s2,
        emit,
    )?;
    println!(
        "embcache micro: device memcpy {:.1} GB/s (payload)",
        copy_rows as f64 * row_bytes / s2.median / 1e9
    );
    let d2d_bps = d2d_bps.max(copy_rows as f64 * row_bytes / s2.median);
    drop(big2);
    drop(big);

    let copier = Copier::new(dev)?;
    let mut table = HostBuf::zeros(m.table_rows * width, dev)?;
    for (i, x) in table.as_mut_slice().iter_mut().enumerate() {
        *x = (i % 1013) as f32 * 1e-3;
    }
    let mut pin = HostBuf::zeros(max_rows * width, dev)?;
    let mut pin_wb = HostBuf::zeros(max_rows * width, dev)?;
    let pageable = vec![0.5f32; max_rows * width];
    let cache = rand_tensor(slots, width, c.seed + 1, dev)?;
    let stage = Tensor::zeros((max_rows, width), DType::F32, dev)?;
    println!(
        "embcache micro: host table {} rows × {} B (pinned: {}), cache {} slots",
        m.table_rows,
        width * 4,
        table.pinned(),
        slots
    );
    for &n in &m.rows {
        let (_, idx) = random_idx(n, slots, c.seed + n as u64, dev)?;
        // Host rows: a fresh random set per call, cycling through enough sets to cover the
        // table (at most 1024), so the host paths read and write rows outside the host's caches
        // as an e2e batch does. Run 29 reused one set per size: its 2–8 MB stayed cache-resident,
        // and the on-demand e2e points were under-predicted by ~50 ns per row moved.
        let n_sets = m.table_rows.div_ceil(n).clamp(1, 1024);
        let host_sets = (0..n_sets)
            .map(|k| {
                random_idx(
                    n,
                    m.table_rows,
                    c.seed + 7 * n as u64 + 7919 * k as u64,
                    &Device::Cpu,
                )
                .map(|x| x.0)
            })
            .collect::<Result<Vec<_>>>()?;
        let next_set = std::cell::Cell::new(0usize);
        let host_rows = || {
            let k = next_set.get();
            next_set.set((k + 1) % host_sets.len());
            &host_sets[k]
        };
        let src = rand_tensor(n, width, c.seed + 2, dev)?;
        let (w, r, it) = (m.warmup, m.repeats, m.iters);

        let v = time_calls(dev, w, r, it, &mut || {
            let _ = cache.index_select(&idx, 0)?;
            Ok(())
        })?;
        let sg = Stats::of(&v);
        out("gather", Some(n), &[], "gather_s", &sg, emit)?;
        let v = time_calls(dev, w, r, it, &mut || {
            device_scatter(&cache, &src, &idx)?;
            Ok(())
        })?;
        out("scatter", Some(n), &[], "scatter_s", &Stats::of(&v), emit)?;

        let v = time_calls(dev, w, r, it, &mut || {
            copier.h2d(&pin, n, width, &stage, On::Main)?;
            copier.sync()?;
            Ok(())
        })?;
        let sh = Stats::of(&v);
        out("h2d_pinned", Some(n), &[], "h2d_pinned_s", &sh, emit)?;
        let v = time_calls(dev, w, r, it, &mut || {
            copier.d2h(&stage, n, width, &mut pin_wb, On::Main)?;
            copier.sync()?;
            Ok(())
        })?;
        out(
            "d2h_pinned",
            Some(n),
            &[],
            "d2h_pinned_s",
            &Stats::of(&v),
            emit,
        )?;
        let v = time_calls(dev, w, r, it, &mut || {
            let t = Tensor::from_slice(&pageable[..n * width], (n, width), dev)?;
            dev.synchronize()?;
            drop(t);
            Ok(())
        })?;
        out(
            "h2d_pageable",
            Some(n),
            &[],
            "h2d_pageable_s",
            &Stats::of(&v),
            emit,
        )?;

        let v = time_calls(dev, w, r, it, &mut || {
            gather_rows(table.as_slice(), width, host_rows(), pin.as_mut_slice());
            Ok(())
        })?;
        out(
            "host_gather",
            Some(n),
            &[],
            "host_gather_s",
            &Stats::of(&v),
            emit,
        )?;
        let v = time_calls(dev, w, r, it, &mut || {
            scatter_rows(table.as_mut_slice(), width, host_rows(), pin_wb.as_slice());
            Ok(())
        })?;
        out(
            "host_scatter",
            Some(n),
            &[],
            "host_scatter_s",
            &Stats::of(&v),
            emit,
        )?;

        let v = time_calls(dev, w, r, it, &mut || {
            gather_rows(table.as_slice(), width, host_rows(), pin.as_mut_slice());
            let t = copier.h2d(&pin, n, width, &stage, On::Main)?;
            device_scatter(&cache, &t.narrow(0, 0, n)?, &idx)?;
            copier.sync()?;
            Ok(())
        })?;
        let sf = Stats::of(&v);
        out("fetch_path", Some(n), &[], "fetch_path_s", &sf, emit)?;
        let v = time_calls(dev, w, r, it, &mut || {
            let g = cache.index_select(&idx, 0)?;
            copier.d2h(&g, n, width, &mut pin_wb, On::Main)?;
            copier.sync()?;
            scatter_rows(table.as_mut_slice(), width, host_rows(), pin_wb.as_slice());
            Ok(())
        })?;
        out(
            "writeback_path",
            Some(n),
            &[],
            "writeback_path_s",
            &Stats::of(&v),
            emit,
        )?;
        // Zero-copy: the device reads the rows from the host table itself (fresh rows per call).
        let zc_sets = host_sets
            .iter()
            .map(|s| Tensor::from_slice(s, s.len(), dev))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Checked before it is timed: the rows read by the device equal the host's.
        super::segsum::gather_host_rows(&table, width, &host_sets[0], &zc_sets[0], &stage)?;
        gather_rows(table.as_slice(), width, &host_sets[0], pin.as_mut_slice());
        let got: Vec<f32> = stage
            .narrow(0, 0, n)?
            .flatten_all()?
            .to_device(&Device::Cpu)?
            .to_vec1()?;
        anyhow::ensure!(
            got == pin.as_slice()[..n * width],
            "zero-copy gather of {n} rows differs from the host gather"
        );
        let zk = std::cell::Cell::new(0usize);
        let v = time_calls(dev, w, r, it, &mut || {
            let k = zk.get();
            zk.set((k + 1) % zc_sets.len());
            super::segsum::gather_host_rows(&table, width, &host_sets[k], &zc_sets[k], &stage)?;
            Ok(())
        })?;
        let sz = Stats::of(&v);
        out(
            "zero_copy_gather",
            Some(n),
            &[],
            "zero_copy_gather_s",
            &sz,
            emit,
        )?;
        drop(zc_sets);
        // Achieved fractions of this run's limits: the cache-hit gather against the device copy
        // rate, the whole miss path against the pinned H2D copy of the same rows.
        let frac = EmbRow::new(
            "micro",
            &setup,
            &[
                ("op", "limits".to_string()),
                ("rows", n.to_string()),
                ("dim", cfg.dim.to_string()),
                ("row_bytes", (width * 4).to_string()),
            ],
        );
        let gbps = n as f64 * row_bytes / sg.median;
        let hbps = n as f64 * row_bytes / sh.median;
        let fbps = n as f64 * row_bytes / sf.median;
        emit(&frac.value(
            "gather_fraction_of_d2d_copy",
            gbps / d2d_bps,
            m.repeats,
            "fraction",
        ))?;
        emit(&frac.value(
            "fetch_path_fraction_of_h2d_pinned",
            fbps / hbps,
            m.repeats,
            "fraction",
        ))?;
        println!(
            "embcache micro: {n:>7} rows: gather {:.1} GB/s, pinned H2D {:.1} GB/s ({:.1} µs), fetch path {:.1} GB/s, zero-copy gather {:.1} GB/s ({:.1} µs)",
            n as f64 * row_bytes / sg.median / 1e9,
            n as f64 * row_bytes / sh.median / 1e9,
            sh.median * 1e6,
            n as f64 * row_bytes / sf.median / 1e9,
            n as f64 * row_bytes / sz.median / 1e9,
            sz.median * 1e6
        );
    }

    // Dense compute per batch size, on the first batch of the e2e trace at that size.
    for &b in &m.batches {
        let mut c1 = c.clone();
        c1.n_batches = 1;
        let tr = load_trace(&c1, b)?;
        let cfg = model_cfg(c, tr.tables)?;
        let p = super::plan::resident(&tr.dense);
        let bp = &p.batches[0];
        let u = bp.unique();
        let mut model = Dlrm::new(cfg.clone(), dev)?;
        let x = model.inputs(0, b, &bp.local, u, c.seed)?;
        let work = rand_tensor(u, cfg.width(), c.seed + 3, dev)?;
        let v = time_calls(dev, m.warmup, m.repeats, m.iters, &mut || {
            let _ = model.step(&work, &x)?;
            Ok(())
        })?;
        let s = Stats::of(&v);
        let mut extra = vec![
            ("batch", b.to_string()),
            ("tables", tr.tables.to_string()),
            ("unique_rows", u.to_string()),
            ("macs_per_sample", cfg.macs_per_sample().to_string()),
        ];
        extra.extend(c.exec_param(dev));
        out("compute", None, &extra, "compute_s", &s, emit)?;
        println!(
            "embcache micro: compute batch {b:>6} ({u} unique rows): {:.3} ms (spread {:.3})",
            s.median * 1e3,
            s.spread()
        );
        // Overlap of a fetch (host gather + H2D on the copy stream) with this step, for the
        // batch sizes in `overlap_batches`: each alone and both issued together (the step first,
        // asynchronously), every call synchronized. overlap_fraction = (c + x − both) / min(c, x):
        // 1 = the shorter one is fully hidden, 0 = serialized.
        if !m.overlap_batches.contains(&b) {
            continue;
        }
        for &n in m.rows.iter().filter(|&&n| n >= 1024) {
            let (host_rows, _) = random_idx(n, m.table_rows, c.seed + 11 * n as u64, &Device::Cpu)?;
            let fetch = |pin: &mut HostBuf| -> Result<()> {
                gather_rows(table.as_slice(), width, &host_rows, pin.as_mut_slice());
                copier.h2d(pin, n, width, &stage, On::Copy)?;
                Ok(())
            };
            let mut per = |what: u8| -> Result<Vec<f64>> {
                time_calls(dev, m.warmup, m.repeats, m.iters, &mut || {
                    if what != 1 {
                        let _ = model.step(&work, &x)?;
                    }
                    if what != 0 {
                        fetch(&mut pin)?;
                    }
                    copier.sync()?;
                    Ok(())
                })
            };
            let (sc, sx, sb) = (
                Stats::of(&per(0)?),
                Stats::of(&per(1)?),
                Stats::of(&per(2)?),
            );
            let phi =
                ((sc.median + sx.median - sb.median) / sc.median.min(sx.median)).clamp(0.0, 1.0);
            let mut extra = extra.to_vec();
            extra.push(("rows", n.to_string()));
            let base = EmbRow::new("micro", &setup, &[("op", "overlap".to_string())]);
            let base = EmbRow {
                params: base
                    .params
                    .into_iter()
                    .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())))
                    .chain([
                        ("dim".to_string(), cfg.dim.to_string()),
                        ("row_bytes".to_string(), (cfg.width() * 4).to_string()),
                    ])
                    .collect(),
                ..base
            };
            emit(&base.timed("overlap_compute_s", &sc, "s"))?;
            emit(&base.timed("overlap_fetch_s", &sx, "s"))?;
            emit(&base.timed("overlap_both_s", &sb, "s"))?;
            emit(&base.value("overlap_fraction", phi, sb.n, "fraction"))?;
            println!(
                "embcache micro: overlap batch {b} rows {n}: compute {:.3} ms, fetch {:.3} ms, both {:.3} ms, overlap {phi:.2}",
                sc.median * 1e3,
                sx.median * 1e3,
                sb.median * 1e3
            );
        }
    }
    let _ = emit;
    Ok(count)
}
