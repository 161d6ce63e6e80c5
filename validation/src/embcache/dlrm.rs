//! The DLRM dense part (Naumov et al. 2019, "Deep Learning Recommendation Model for
//! Personalization and Recommendation Systems", arXiv:1906.00091): bottom MLP over the dense
//! features, pairwise-dot feature interaction between the bottom output and the `T` looked-up
//! embeddings (strict upper triangle), top MLP to one logit, binary cross-entropy with logits.
//! Forward, backward (candle autograd) and optimizer: AdamW on the dense weights, SGD or row-wise
//! Adagrad (FBGEMM's `EXACT_ROWWISE_ADAGRAD`: one accumulator per row, the mean squared gradient)
//! on the embedding rows of the step.
//!
//! Dense weights and activations are bf16 on the GPU (f32 on the CPU); embedding rows are f32
//! master rows, cast to the dense dtype after the lookup. A row in the tables is `width` f32:
//! `dim` weights, then (Adagrad only) its accumulator, so the optimizer state travels with the
//! row through the cache.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Dense features per sample (Criteo: 13 integer features).
pub const DENSE_FEATURES: usize = 13;

/// Embedding optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EmbOpt {
    /// Plain SGD.
    Sgd,
    /// Row-wise Adagrad (accumulator stored as the row's last column).
    Adagrad,
}

impl EmbOpt {
    /// Parses `sgd` or `adagrad`.
    ///
    /// # Errors
    /// Any other name.
    pub fn parse(s: &str) -> Result<EmbOpt> {
        match s {
            "sgd" => Ok(EmbOpt::Sgd),
            "adagrad" => Ok(EmbOpt::Adagrad),
            _ => bail!("emb-opt '{s}': expected sgd or adagrad"),
        }
    }
    /// Name.
    pub fn name(self) -> &'static str {
        match self {
            EmbOpt::Sgd => "sgd",
            EmbOpt::Adagrad => "adagrad",
        }
    }
    /// f32 per stored row for `dim` weights.
    pub fn width(self, dim: usize) -> usize {
        match self {
            EmbOpt::Sgd => dim,
            EmbOpt::Adagrad => dim + 1,
        }
    }
}

/// Model shape and optimizer settings.
#[derive(Clone, Debug)]
pub struct DlrmCfg {
    /// Embedding dimension (64–256).
    pub dim: usize,
    /// Lookups per sample (tables).
    pub tables: usize,
    /// Bottom MLP hidden widths (the output layer of width `dim` is added).
    pub bottom: Vec<usize>,
    /// Top MLP hidden widths (the 1-wide output layer is added).
    pub top: Vec<usize>,
    /// Embedding optimizer.
    pub emb_opt: EmbOpt,
    /// Embedding learning rate.
    pub emb_lr: f64,
    /// AdamW learning rate of the dense weights.
    pub dense_lr: f64,
    /// Seed of the dense weights.
    pub seed: u64,
    /// Run each step as a replayed CUDA graph (one per batch size; eager off CUDA), see
    /// [`Dlrm::step`].
    pub graphs: bool,
}

impl DlrmCfg {
    /// f32 per stored embedding row.
    pub fn width(&self) -> usize {
        self.emb_opt.width(self.dim)
    }
    /// Pairs of the interaction (strict upper triangle of `(T+1) × (T+1)`).
    pub fn pairs(&self) -> usize {
        (self.tables + 1) * self.tables / 2
    }
    /// Dense multiply-adds per sample, forward (MLPs and interaction).
    pub fn macs_per_sample(&self) -> u64 {
        let mut m = 0u64;
        let mut w = DENSE_FEATURES;
        for &h in self.bottom.iter().chain(std::iter::once(&self.dim)) {
            m += (w * h) as u64;
            w = h;
        }
        let t1 = self.tables + 1;
        m += (t1 * t1 * self.dim) as u64;
        let mut w = self.dim + self.pairs();
        for &h in self.top.iter().chain(std::iter::once(&1)) {
            m += (w * h) as u64;
            w = h;
        }
        m
    }
}

/// Linear layer `y = x Wᵀ + b`.
struct Linear {
    w: Var,
    b: Var,
}

impl Linear {
    fn new(
        i: usize,
        o: usize,
        dt: DType,
        dev: &Device,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Linear> {
        use rand::RngExt;
        // Uniform(±1/√i) as torch.nn.Linear, drawn on the host from the seeded generator so CPU
        // and GPU start from the same weights.
        let bound = 1.0 / (i as f32).sqrt();
        let w: Vec<f32> = (0..i * o)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let b: Vec<f32> = (0..o).map(|_| rng.random_range(-bound..bound)).collect();
        Ok(Linear {
            w: Var::from_tensor(&Tensor::from_vec(w, (o, i), dev)?.to_dtype(dt)?)?,
            b: Var::from_tensor(&Tensor::from_vec(b, o, dev)?.to_dtype(dt)?)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w.as_tensor().t()?)?
            .broadcast_add(self.b.as_tensor())?)
    }
}

fn mlp(x: &Tensor, layers: &[Linear], relu_last: bool) -> Result<Tensor> {
    let mut h = x.clone();
    for (i, l) in layers.iter().enumerate() {
        h = l.forward(&h)?;
        if i + 1 < layers.len() || relu_last {
            h = h.relu()?;
        }
    }
    Ok(h)
}

/// AdamW (Loshchilov & Hutter 2019) on the dense weights, as candle-nn's `AdamW` (defaults
/// β₁ 0.9, β₂ 0.999, ε 1e-8, weight decay 0.01) except that the bias corrections
/// `1/(1 − β₁ᵗ)`, `1/(1 − β₂ᵗ)` live in a device tensor written before each step
/// ([`DenseAdamW::advance`]), not in kernel arguments: a captured step replays with the current
/// step's corrections, and the eager and graph executions run the same kernels.
struct DenseAdamW {
    /// (weight, first moment, second moment).
    vars: Vec<(Var, Var, Var)>,
    lr: f64,
    /// `[2]`: the two bias corrections, in the weights' dtype.
    scales: Var,
    t: i32,
}

impl DenseAdamW {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;
    const DECAY: f64 = 0.01;

    fn new(vars: Vec<Var>, lr: f64, dt: DType, dev: &Device) -> Result<DenseAdamW> {
        let vars = vars
            .into_iter()
            .map(|v| {
                let m = Var::zeros(v.shape(), v.dtype(), v.device())?;
                let s = Var::zeros(v.shape(), v.dtype(), v.device())?;
                Ok((v, m, s))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DenseAdamW {
            vars,
            lr,
            scales: Var::from_tensor(&Tensor::ones(2, dt, dev)?)?,
            t: 0,
        })
    }

    /// Next step: writes its bias corrections into [`DenseAdamW::scales`] (outside any graph).
    fn advance(&mut self) -> Result<()> {
        self.t += 1;
        let c = [
            (1.0 / (1.0 - Self::B1.powi(self.t))) as f32,
            (1.0 / (1.0 - Self::B2.powi(self.t))) as f32,
        ];
        let dev = self.scales.device().clone();
        self.scales
            .set(&Tensor::new(&c, &dev)?.to_dtype(self.scales.dtype())?)?;
        Ok(())
    }

    /// The update with the corrections in [`DenseAdamW::scales`] (device work only).
    fn update(&self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        let sm = self.scales.narrow(0, 0, 1)?;
        let sv = self.scales.narrow(0, 1, 1)?;
        for (theta, m, v) in &self.vars {
            let Some(g) = grads.get(theta) else { continue };
            let next_m = ((m.as_tensor() * Self::B1)? + (g * (1.0 - Self::B1))?)?;
            let next_v = ((v.as_tensor() * Self::B2)? + (g.sqr()? * (1.0 - Self::B2))?)?;
            let m_hat = next_m.broadcast_mul(&sm)?;
            let v_hat = next_v.broadcast_mul(&sv)?;
            let next_theta = (theta.as_tensor() * (1.0 - self.lr * Self::DECAY))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + Self::EPS)?)?;
            let next_theta = (next_theta - (adjusted * self.lr)?)?;
            m.set(&next_m)?;
            v.set(&next_v)?;
            theta.set(&next_theta)?;
        }
        Ok(())
    }

    /// Copies of every weight and moment (a warm-up run is undone with [`DenseAdamW::restore`]).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn snapshot(&self) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(3 * self.vars.len());
        for (a, b, c) in &self.vars {
            for v in [a, b, c] {
                out.push(v.as_tensor().copy()?);
            }
        }
        Ok(out)
    }

    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn restore(&self, snap: &[Tensor]) -> Result<()> {
        for ((a, b, c), s) in self.vars.iter().zip(snap.chunks(3)) {
            a.set(&s[0])?;
            b.set(&s[1])?;
            c.set(&s[2])?;
        }
        Ok(())
    }
}

/// A captured training step (CUDA): its fixed input buffers and its outputs.
#[cfg(feature = "cuda")]
struct StepGraph {
    graph: candle_core::cuda_backend::cudarc::driver::CudaGraph,
    /// `[B·T, width]` work rows (the first `U` are the batch's).
    work: Tensor,
    dense: Tensor,
    labels: Tensor,
    local: Tensor,
    perm: Tensor,
    /// `[B·T + 1]` segment starts, padded with `B·T`.
    offs: Tensor,
    updated: Tensor,
    loss: Tensor,
}

/// The dense model with its optimizer.
pub struct Dlrm {
    /// Configuration.
    pub cfg: DlrmCfg,
    bottom: Vec<Linear>,
    top: Vec<Linear>,
    opt: DenseAdamW,
    pairs: Tensor,
    dt: DType,
    dev: Device,
    /// Captured steps by batch size (samples).
    #[cfg(feature = "cuda")]
    graphs: std::collections::HashMap<usize, StepGraph>,
}

/// One batch's inputs besides the embedding rows.
pub struct BatchInputs {
    /// Dense features `[B, 13]` (dense dtype).
    pub dense: Tensor,
    /// Labels `[B, 1]` f32 in {0, 1}.
    pub labels: Tensor,
    /// Per access, the row's position in the work buffer, `[B·T]` u32.
    pub local: Tensor,
    /// Lookups grouped by work row (`[B·T]` u32, see [`super::segsum::Csr`]).
    pub perm: Tensor,
    /// Segment starts (`[U + 1]` u32).
    pub offs: Tensor,
}

impl Dlrm {
    /// Fresh weights from `cfg.seed`; bf16 on CUDA devices, f32 on the CPU.
    ///
    /// # Errors
    /// Tensor allocation.
    pub fn new(cfg: DlrmCfg, dev: &Device) -> Result<Dlrm> {
        if !(1..=4096).contains(&cfg.dim) || cfg.tables == 0 {
            bail!(
                "dim {} / tables {}: expected dim in [1, 4096] and >= 1 table",
                cfg.dim,
                cfg.tables
            );
        }
        let dt = if dev.is_cuda() {
            DType::BF16
        } else {
            DType::F32
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
        let mut bottom = Vec::new();
        let mut w = DENSE_FEATURES;
        for &h in cfg.bottom.iter().chain(std::iter::once(&cfg.dim)) {
            bottom.push(Linear::new(w, h, dt, dev, &mut rng)?);
            w = h;
        }
        let mut top = Vec::new();
        let mut w = cfg.dim + cfg.pairs();
        for &h in cfg.top.iter().chain(std::iter::once(&1)) {
            top.push(Linear::new(w, h, dt, dev, &mut rng)?);
            w = h;
        }
        let vars: Vec<Var> = bottom
            .iter()
            .chain(top.iter())
            .flat_map(|l| [l.w.clone(), l.b.clone()])
            .collect();
        let opt = DenseAdamW::new(vars, cfg.dense_lr, dt, dev)?;
        let t1 = cfg.tables + 1;
        let idx: Vec<u32> = (0..t1)
            .flat_map(|i| ((i + 1)..t1).map(move |j| (i * t1 + j) as u32))
            .collect();
        let pairs = Tensor::from_vec(idx, cfg.pairs(), dev)?;
        Ok(Dlrm {
            cfg,
            bottom,
            top,
            opt,
            pairs,
            dt,
            dev: dev.clone(),
            #[cfg(feature = "cuda")]
            graphs: std::collections::HashMap::new(),
        })
    }

    /// Dense dtype.
    pub fn dtype(&self) -> DType {
        self.dt
    }

    /// Seeded dense features and labels for `samples` samples of batch number `batch`, and the
    /// lookup map `local` (as u32), on the model's device.
    ///
    /// # Errors
    /// Tensor allocation; `local.len()` not `samples × tables`.
    pub fn inputs(
        &self,
        batch: u64,
        samples: usize,
        local: &[u32],
        rows: usize,
        seed: u64,
    ) -> Result<BatchInputs> {
        use rand::RngExt;
        if local.len() != samples * self.cfg.tables {
            bail!(
                "batch {batch}: {} lookups, expected samples {samples} × tables {}",
                local.len(),
                self.cfg.tables
            );
        }
        if local.iter().any(|&u| u as usize >= rows) {
            bail!("batch {batch}: a lookup points past the {rows} work rows");
        }
        let mut csr = super::segsum::Csr::of(local, rows);
        if self.cfg.graphs {
            // A captured step's work buffer has `samples × tables` rows: the rows past the
            // batch's get empty segments.
            let n = local.len() as u32;
            csr.offs.resize(local.len() + 1, n);
        }
        let mut rng =
            Xoshiro256PlusPlus::seed_from_u64(seed ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dense: Vec<f32> = (0..samples * DENSE_FEATURES)
            .map(|_| rng.random_range(0.0f32..1.0))
            .collect();
        let labels: Vec<f32> = (0..samples)
            .map(|_| f32::from(u8::from(rng.random_bool(0.25))))
            .collect();
        Ok(BatchInputs {
            dense: Tensor::from_vec(dense, (samples, DENSE_FEATURES), &self.dev)?
                .to_dtype(self.dt)?,
            labels: Tensor::from_vec(labels, (samples, 1), &self.dev)?,
            local: Tensor::from_slice(local, local.len(), &self.dev)?,
            perm: Tensor::from_slice(&csr.perm, csr.perm.len(), &self.dev)?,
            offs: Tensor::from_slice(&csr.offs, csr.offs.len(), &self.dev)?,
        })
    }

    /// One training step on the batch's embedding rows `work` (`[U, width]` f32): forward,
    /// backward, AdamW on the dense weights, SGD / row-wise Adagrad on the rows. Returns the
    /// updated rows (`[U, width]` f32) and the loss (a 0-dim f32 tensor, not synchronized).
    ///
    /// # Errors
    /// Shape or device errors.
    pub fn step(&mut self, work: &Tensor, x: &BatchInputs) -> Result<(Tensor, Tensor)> {
        self.opt.advance()?;
        if !self.cfg.graphs {
            return self.step_core(work, x);
        }
        #[cfg(feature = "cuda")]
        if self.dev.is_cuda() {
            return self.step_graph(work, x);
        }
        // Off CUDA: the graph's padded shapes, eagerly (what the CPU tests check).
        let (b, _) = x.dense.dims2()?;
        let (u, width) = work.dims2()?;
        let n = b * self.cfg.tables;
        let padded = match n.checked_sub(u) {
            Some(0) => work.clone(),
            Some(extra) => Tensor::cat(
                &[work, &Tensor::zeros((extra, width), DType::F32, &self.dev)?],
                0,
            )?,
            None => bail!("{u} work rows for {n} lookups"),
        };
        let (upd, loss) = self.step_core(&padded, x)?;
        Ok((upd.narrow(0, 0, u)?, loss))
    }

    /// The step's device work (no host reads, so it can be captured): `work` may hold more rows
    /// than the batch's (a captured step's padding), whose segments in `x.offs` are empty.
    fn step_core(&self, work: &Tensor, x: &BatchInputs) -> Result<(Tensor, Tensor)> {
        let c = &self.cfg;
        let (b, _) = x.dense.dims2()?;
        let w = work.narrow(1, 0, c.dim)?.contiguous()?;
        // The lookups are the autograd leaf; their gradients are summed per row by a segment sum
        // (see `segsum`), not by candle's index_select backward.
        let looked = Var::from_tensor(&w.index_select(&x.local, 0)?)?;
        let e = looked
            .as_tensor()
            .to_dtype(self.dt)?
            .reshape((b, c.tables, c.dim))?;
        let bot = mlp(&x.dense, &self.bottom, true)?; // [B, dim]
        let z = Tensor::cat(&[&bot.unsqueeze(1)?, &e], 1)?; // [B, T+1, dim]
        let zz = z.matmul(&z.transpose(1, 2)?.contiguous()?)?; // [B, T+1, T+1]
        let t1 = c.tables + 1;
        let inter = zz.reshape((b, t1 * t1))?.index_select(&self.pairs, 1)?;
        let top_in = Tensor::cat(&[&bot, &inter], 1)?;
        let logit = mlp(&top_in, &self.top, false)?.to_dtype(DType::F32)?; // [B, 1]
                                                                           // BCE with logits: softplus(z) − y·z, softplus(z) = max(z, 0) + log(1 + exp(−|z|)).
        let sp = (logit.relu()? + (logit.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        let loss = (sp - (&x.labels * &logit)?)?.mean_all()?;
        let grads = loss.backward()?;
        self.opt.update(&grads)?;
        let Some(ge) = grads.get(looked.as_tensor()) else {
            bail!("no gradient reached the embedding lookups");
        };
        let g = super::segsum::seg_sum(ge, &x.perm, &x.offs)?;
        let g = &g;
        let w = &w;
        let updated = match c.emb_opt {
            EmbOpt::Sgd => (w - (g * c.emb_lr)?)?,
            EmbOpt::Adagrad => {
                let acc = work.narrow(1, c.dim, 1)?;
                let acc = (acc + g.sqr()?.mean_keepdim(D::Minus1)?)?;
                let step = g.broadcast_div(&(acc.sqrt()? + 1e-8)?)?;
                let w = (w - (step * c.emb_lr)?)?;
                Tensor::cat(&[&w, &acc], 1)?
            }
        };
        Ok((updated, loss))
    }

    /// [`Dlrm::step`] as a CUDA graph: the first step of a batch size runs once eagerly on
    /// fixed input buffers (module loads, cuBLAS set-up, candle's device cache of strided
    /// kernels' dims; the weights and moments are restored afterwards, so it changes nothing),
    /// is captured (`cuStreamBeginCapture`, relaxed; instantiated with `AUTO_FREE_ON_LAUNCH`),
    /// and every step copies its inputs into the fixed buffers, launches the graph and copies
    /// the updated rows and the loss out, as [`crate::specdec::graph`] does for decoding. The work
    /// buffer holds `B·T` rows (a batch's `U ≤ B·T` unique rows first); [`Dlrm::inputs`] pads the
    /// segment starts to `B·T + 1` entries so the padding rows get empty segments.
    #[cfg(feature = "cuda")]
    fn step_graph(&mut self, work: &Tensor, x: &BatchInputs) -> Result<(Tensor, Tensor)> {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let (b, _) = x.dense.dims2()?;
        let n = b * self.cfg.tables;
        let u = work.dim(0)?;
        if x.offs.dim(0)? != n + 1 || u > n {
            bail!(
                "graph step: {u} work rows and {} segment starts, expected at most {n} rows and {} starts",
                x.offs.dim(0)?,
                n + 1
            );
        }
        if !self.graphs.contains_key(&b) {
            let Device::Cuda(cd) = &self.dev else {
                bail!("graph step off CUDA");
            };
            let cd = cd.clone();
            let _params = cd.enable_cuda_graph_htod_cache();
            let fixed_work = Tensor::zeros((n, work.dim(1)?), DType::F32, &self.dev)?;
            fixed_work.slice_set(&work.contiguous()?, 0, 0)?;
            let fixed = BatchInputs {
                dense: x.dense.copy()?,
                labels: x.labels.copy()?,
                local: x.local.copy()?,
                perm: x.perm.copy()?,
                offs: x.offs.copy()?,
            };
            let snap = self.opt.snapshot()?;
            drop(self.step_core(&fixed_work, &fixed)?);
            self.dev.synchronize()?;
            self.opt.restore(&snap)?;
            drop(snap);
            self.dev.synchronize()?;
            let stream = cd.cuda_stream();
            stream
                .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
                .map_err(|e| anyhow::anyhow!("DLRM step capture (batch {b}): {e:?}"))?;
            let outs = self.step_core(&fixed_work, &fixed);
            let graph = stream.end_capture(
                sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
            );
            let (updated, loss) = outs?;
            let graph = graph
                .map_err(|e| anyhow::anyhow!("DLRM step graph (batch {b}): {e:?}"))?
                .ok_or_else(|| anyhow::anyhow!("DLRM step graph (batch {b}): empty capture"))?;
            self.graphs.insert(
                b,
                StepGraph {
                    graph,
                    work: fixed_work,
                    dense: fixed.dense,
                    labels: fixed.labels,
                    local: fixed.local,
                    perm: fixed.perm,
                    offs: fixed.offs,
                    updated,
                    loss,
                },
            );
        }
        let g = &self.graphs[&b];
        g.work.slice_set(&work.contiguous()?, 0, 0)?;
        g.dense.slice_set(&x.dense.contiguous()?, 0, 0)?;
        g.labels.slice_set(&x.labels.contiguous()?, 0, 0)?;
        g.local.slice_set(&x.local.contiguous()?, 0, 0)?;
        g.perm.slice_set(&x.perm.contiguous()?, 0, 0)?;
        g.offs.slice_set(&x.offs.contiguous()?, 0, 0)?;
        g.graph
            .launch()
            .map_err(|e| anyhow::anyhow!("DLRM step graph launch (batch {b}): {e:?}"))?;
        Ok((g.updated.narrow(0, 0, u)?.copy()?, g.loss.copy()?))
    }

    /// Dense parameters flattened to f32 on the host (for equality tests).
    ///
    /// # Errors
    /// Device copies.
    pub fn params_f32(&self) -> Result<Vec<f32>> {
        let mut v = Vec::new();
        for l in self.bottom.iter().chain(self.top.iter()) {
            for t in [&l.w, &l.b] {
                v.extend(
                    t.as_tensor()
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1::<f32>()?,
                );
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

    /// The device-scalar AdamW takes the same steps as candle-nn's AdamW (same defaults) on the
    /// same gradients: after 30 steps the weights agree to f32 rounding.
    #[test]
    fn dense_adamw_equals_candle_adamw() {
        let dev = Device::Cpu;
        let w0 = Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((3, 4))
            .unwrap()
            .affine(0.1, -0.5)
            .unwrap();
        let a = Var::from_tensor(&w0.copy().unwrap()).unwrap();
        let b = Var::from_tensor(&w0.copy().unwrap()).unwrap();
        let mut ours = DenseAdamW::new(vec![a.clone()], 1e-2, DType::F32, &dev).unwrap();
        let mut theirs = AdamW::new(
            vec![b.clone()],
            ParamsAdamW {
                lr: 1e-2,
                ..ParamsAdamW::default()
            },
        )
        .unwrap();
        for step in 0..30 {
            // A loss whose gradient changes with the weights and the step.
            let target = Tensor::full(step as f32 * 0.05, (3, 4), &dev).unwrap();
            let la = (a.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            let lb = (b.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            ours.advance().unwrap();
            ours.update(&la.backward().unwrap()).unwrap();
            theirs.step(&lb.backward().unwrap()).unwrap();
        }
        let x: Vec<f32> = a.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let moved = x
            .iter()
            .zip(w0.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .any(|(p, q)| (p - q).abs() > 0.05);
        assert!(moved, "the weights should have moved: {x:?}");
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 1e-6 * (1.0 + q.abs()), "{x:?} vs {y:?}");
        }
    }

    /// Snapshot and restore undo a step (the warm-up run before a capture changes nothing).
    #[test]
    fn snapshot_restore_undoes_a_step() {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::ones((2, 2), DType::F32, &dev).unwrap()).unwrap();
        let mut opt = DenseAdamW::new(vec![a.clone()], 0.1, DType::F32, &dev).unwrap();
        let snap = opt.snapshot().unwrap();
        opt.advance().unwrap();
        let l = a.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.update(&l.backward().unwrap()).unwrap();
        assert_ne!(
            a.as_tensor().to_vec2::<f32>().unwrap(),
            vec![vec![1.0; 2]; 2]
        );
        opt.restore(&snap).unwrap();
        assert_eq!(
            a.as_tensor().to_vec2::<f32>().unwrap(),
            vec![vec![1.0; 2]; 2]
        );
        for (_, m, v) in &opt.vars {
            assert_eq!(
                m.as_tensor().sum_all().unwrap().to_scalar::<f32>().unwrap(),
                0.0
            );
            assert_eq!(
                v.as_tensor().sum_all().unwrap().to_scalar::<f32>().unwrap(),
                0.0
            );
        }
    }
}
