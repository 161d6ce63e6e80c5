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
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
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

/// The dense model with its optimizer.
pub struct Dlrm {
    /// Configuration.
    pub cfg: DlrmCfg,
    bottom: Vec<Linear>,
    top: Vec<Linear>,
    opt: AdamW,
    pairs: Tensor,
    dt: DType,
    dev: Device,
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
        let opt = AdamW::new(
            vars,
            ParamsAdamW {
                lr: cfg.dense_lr,
                ..ParamsAdamW::default()
            },
        )?;
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
        let csr = super::segsum::Csr::of(local, rows);
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
        self.opt.step(&grads)?;
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
