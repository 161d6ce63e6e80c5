//! DDP gradient buckets, exactly as perfcast's model forms them.
//!
//! PyTorch DDP (Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
//! Training", VLDB) packs gradients in reverse layer order into buckets of at most
//! `bucket_cap_bytes` (25 MiB by default), the first capped at 1 MiB so communication starts
//! early; a tensor larger than the cap forms its own bucket; a bucket is communicated once its
//! last gradient is ready. [`Plan::new`] describes the model's real parameters the way the
//! library's profiles do (per unit, in backward order: its weight matrices in reverse parameter
//! order, then its vector part, i.e. every 1-D parameter concatenated) and calls the library's
//! own [`perfcast::gradcomp::ddp::buckets`], then maps each bucket back onto the parameters, so
//! the harness's buckets are the model's by construction.
//!
//! **Flat layout.** A bucket's flat f32 gradient is its segments in that order, each flattened
//! row-major; its shapes (what a codec sees) are `(rows, cols)` per matrix and `(n, 1)` per
//! vector part.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use perfcast::gradcomp::ddp::{buckets, LayerGrad};

/// Bytes of one f32 gradient element.
pub const ELEM_BYTES: usize = 4;
/// PyTorch DDP's first-bucket cap (`_DEFAULT_FIRST_BUCKET_BYTES`), bytes.
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;
/// PyTorch DDP's default bucket cap (`bucket_cap_mb = 25`), bytes.
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// One piece of a bucket: a weight matrix, or a unit's vector part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Unit (forward order) owning the parameters.
    pub unit: usize,
    /// Parameter indices within the unit (one for a matrix; every 1-D one for a vector part).
    pub vars: Vec<usize>,
    /// Rows (matrix) or elements (vector part).
    pub rows: usize,
    /// Columns (matrix) or 1 (vector part).
    pub cols: usize,
    /// A weight matrix (else a vector part).
    pub matrix: bool,
}

/// One bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketPlan {
    /// Segments in flat order.
    pub segments: Vec<Segment>,
    /// The unit (forward order) whose backward makes the bucket ready.
    pub ready_unit: usize,
}

impl BucketPlan {
    /// Elements.
    pub fn elems(&self) -> usize {
        self.segments.iter().map(|s| s.rows * s.cols).sum()
    }

    /// Segment shapes in flat order (what [`super::codec::Codec::round`] receives).
    pub fn shapes(&self) -> Vec<(usize, usize)> {
        self.segments.iter().map(|s| (s.rows, s.cols)).collect()
    }
}

/// The buckets of one model and cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Buckets, in the order they become ready.
    pub buckets: Vec<BucketPlan>,
    /// Cap, bytes.
    pub cap_bytes: usize,
}

/// Matrix segments (reverse parameter order) then the vector part of unit `u`.
fn unit_segments(u: usize, vars: &[Var]) -> Vec<Segment> {
    let mut out: Vec<Segment> = vars
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(i, v)| match v.as_tensor().dims() {
            &[r, c] => Some(Segment {
                unit: u,
                vars: vec![i],
                rows: r,
                cols: c,
                matrix: true,
            }),
            _ => None,
        })
        .collect();
    let vec: Vec<usize> = (0..vars.len())
        .filter(|&i| vars[i].as_tensor().rank() != 2)
        .collect();
    if !vec.is_empty() {
        let n = vec.iter().map(|&i| vars[i].as_tensor().elem_count()).sum();
        out.push(Segment {
            unit: u,
            vars: vec,
            rows: n,
            cols: 1,
            matrix: false,
        });
    }
    out
}

impl Plan {
    /// Buckets of the parameters `vars` (per unit, forward order) with the first bucket capped
    /// at `first_cap_bytes` and the others at `cap_bytes`, formed by the library.
    ///
    /// # Errors
    /// A zero cap, or (a bug) a library bucket that does not map onto the parameters.
    pub fn new(vars: &[Vec<Var>], first_cap_bytes: usize, cap_bytes: usize) -> Result<Plan> {
        if cap_bytes == 0 || first_cap_bytes == 0 {
            candle_core::bail!("--bucket-bytes {cap_bytes}: expected >= 1")
        }
        let units = vars.len();
        let segs: Vec<Segment> = (0..units)
            .rev()
            .flat_map(|u| unit_segments(u, &vars[u]))
            .collect();
        let layers: Vec<LayerGrad> = (0..units)
            .rev()
            .map(|u| {
                let s = unit_segments(u, &vars[u]);
                LayerGrad {
                    backward_s: 0.0,
                    matrices: s
                        .iter()
                        .filter(|x| x.matrix)
                        .map(|x| (x.rows as u64, x.cols as u64))
                        .collect(),
                    vector_elems: s.iter().filter(|x| !x.matrix).map(|x| x.rows as u64).sum(),
                }
            })
            .collect();
        let lib = buckets(
            &layers,
            first_cap_bytes as f64,
            cap_bytes as f64,
            ELEM_BYTES as f64,
        );
        // Walk the segments in the same order, consuming each library bucket's matrices (in
        // order, shapes checked) and vector elements.
        let mut out: Vec<BucketPlan> = lib
            .iter()
            .map(|b| BucketPlan {
                segments: Vec::new(),
                ready_unit: units - 1 - b.ready_after,
            })
            .collect();
        let mut left: Vec<(usize, u64)> = lib.iter().map(|b| (0, b.content.vector_elems)).collect();
        let mut b = 0;
        for s in segs {
            let is_mat = s.matrix;
            loop {
                let Some(lb) = lib.get(b) else {
                    candle_core::bail!("bucket mapping: segment {s:?} past the last bucket")
                };
                let fits = if is_mat {
                    lb.content.matrices.get(left[b].0) == Some(&(s.rows as u64, s.cols as u64))
                } else {
                    left[b].1 >= s.rows as u64
                };
                if fits {
                    if is_mat {
                        left[b].0 += 1;
                    } else {
                        left[b].1 -= s.rows as u64;
                    }
                    out[b].segments.push(s);
                    break;
                }
                if left[b].0 == lb.content.matrices.len() && left[b].1 == 0 {
                    b += 1;
                } else {
                    candle_core::bail!("bucket mapping: segment {s:?} does not fit bucket {b}")
                }
            }
        }
        for (i, (o, l)) in out.iter().zip(&left).enumerate() {
            let last = o.segments.last().map(|s| s.unit);
            if *l != (lib[i].content.matrices.len(), 0) || last != Some(o.ready_unit) {
                candle_core::bail!("bucket mapping: bucket {i} not consumed exactly")
            }
        }
        Ok(Plan {
            buckets: out,
            cap_bytes,
        })
    }

    /// Bucket `b`'s flat gradient from the per-unit gradients `grads[u][i]` (taken: each
    /// gradient leaves `grads` when it is packed).
    ///
    /// # Errors
    /// A missing gradient, or a device error.
    pub fn flatten(&self, b: usize, grads: &mut [Vec<Option<Tensor>>]) -> Result<Tensor> {
        let mut parts = Vec::new();
        for s in &self.buckets[b].segments {
            for &i in &s.vars {
                let g = grads[s.unit][i].take().ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "no gradient for unit {} parameter {i}",
                        s.unit
                    ))
                })?;
                parts.push(g.flatten_all()?);
            }
        }
        Tensor::cat(&parts, 0)
    }

    /// Splits bucket `b`'s averaged flat gradient back into its parameters' shapes and stores
    /// them in `stores[unit]`, keyed by the parameters `vars`.
    ///
    /// # Errors
    /// A flat length that is not the bucket's, or a device error.
    pub fn scatter(
        &self,
        b: usize,
        flat: &Tensor,
        vars: &[Vec<Var>],
        stores: &mut [GradStore],
    ) -> Result<()> {
        let bp = &self.buckets[b];
        if flat.elem_count() != bp.elems() {
            candle_core::bail!(
                "bucket {b}: codec returned {} elements, expected {}",
                flat.elem_count(),
                bp.elems()
            )
        }
        let flat = flat.flatten_all()?;
        let mut off = 0;
        for s in &bp.segments {
            for &i in &s.vars {
                let t = vars[s.unit][i].as_tensor();
                let n = t.elem_count();
                let g = flat.narrow(0, off, n)?.reshape(t.shape())?;
                stores[s.unit].insert(t, g);
                off += n;
            }
        }
        Ok(())
    }
}
