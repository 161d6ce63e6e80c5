//! The fine-tuning task: classify a snippet of the committed corpus
//! (`traces/corpus-cpython-3.11.7-lib.py.txt`, 168 CPython standard-library modules, each after a
//! `# ==== Lib/<name>.py ====` line) by the module it comes from.
//!
//! **Tokens.** A word-hash tokenizer: maximal runs of `[A-Za-z0-9_]` are words, every other
//! non-space byte is a token of its own, a newline is a token; a token's id is
//! `2 + FNV-1a(bytes) mod (vocab − 2)` (0 is padding, never used; 1 is `[CLS]`).
//!
//! **Samples.** The `classes` modules with the most tokens (ties by name) are the classes, in
//! that order. Each module's tokens are cut into non-overlapping windows of `seq − 1` tokens
//! (the rest dropped); a sample is `[CLS]` + window. The samples are shuffled once with
//! Xoshiro256++ seeded with `seed` (Fisher–Yates) and split: the first `held_out_fraction` are
//! held out, the rest train. Training batches are consecutive runs of `batch` samples of that
//! fixed order (the last partial batch dropped), the same in every epoch, so a batch position
//! identifies its samples (what a cache of frozen-prefix outputs is keyed by).

use candle_core::{Device, Result, Tensor};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `[CLS]` token id.
pub const CLS: u32 = 1;

/// Word-hash token ids of `text` (see the module docs).
pub fn tokenize(text: &[u8], vocab: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let id = |w: &[u8]| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in w {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        2 + (h % (vocab as u64 - 2)) as u32
    };
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if word(b) {
            let j = text[i..]
                .iter()
                .position(|&c| !word(c))
                .map_or(text.len(), |p| i + p);
            out.push(id(&text[i..j]));
            i = j;
        } else {
            if b == b'\n' || !b.is_ascii_whitespace() {
                out.push(id(&text[i..=i]));
            }
            i += 1;
        }
    }
    out
}

/// Splits the corpus into `(module name, body)` at its header lines.
pub fn modules(text: &[u8]) -> Vec<(String, &[u8])> {
    const TAG: &[u8] = b"# ==== Lib/";
    let mut starts = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let end = text[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |p| i + p);
        if text[i..end].starts_with(TAG) {
            let name = String::from_utf8_lossy(&text[i + TAG.len()..end])
                .trim_end_matches(" ====")
                .to_string();
            starts.push((name, i, (end + 1).min(text.len())));
        }
        i = end + 1;
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, (n, _, body))| {
            let stop = starts.get(k + 1).map_or(text.len(), |s| s.1);
            (n.clone(), &text[*body..stop])
        })
        .collect()
}

/// The labelled snippets of one configuration.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Class names (modules), label order.
    pub classes: Vec<String>,
    /// Sequence length (with `[CLS]`).
    pub seq: usize,
    /// Training samples `(tokens, label)`.
    pub train: Vec<(Vec<u32>, u32)>,
    /// Held-out samples.
    pub held_out: Vec<(Vec<u32>, u32)>,
}

impl Dataset {
    /// Builds the task (see the module docs).
    ///
    /// # Errors
    /// Fewer than `classes` modules, `seq < 2`, or no sample.
    pub fn new(
        text: &[u8],
        vocab: usize,
        classes: usize,
        seq: usize,
        held_out_fraction: f64,
        seed: u64,
    ) -> Result<Dataset> {
        if seq < 2 {
            candle_core::bail!("seq {seq}: expected >= 2")
        }
        let mut mods: Vec<(String, Vec<u32>)> = modules(text)
            .into_iter()
            .map(|(n, b)| (n, tokenize(b, vocab)))
            .collect();
        if mods.len() < classes || classes < 2 {
            candle_core::bail!(
                "classes {classes}: expected 2..={} (modules in the corpus)",
                mods.len()
            )
        }
        mods.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        mods.truncate(classes);
        let mut all = Vec::new();
        for (label, (_, toks)) in mods.iter().enumerate() {
            for w in toks.chunks_exact(seq - 1) {
                let mut s = Vec::with_capacity(seq);
                s.push(CLS);
                s.extend_from_slice(w);
                all.push((s, label as u32));
            }
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for i in (1..all.len()).rev() {
            let j = rng.random_range(0..=i);
            all.swap(i, j);
        }
        let n_ho = (all.len() as f64 * held_out_fraction).round() as usize;
        let train = all.split_off(n_ho);
        if train.is_empty() {
            candle_core::bail!("no training sample at seq {seq}")
        }
        Ok(Dataset {
            classes: mods.into_iter().map(|m| m.0).collect(),
            seq,
            train,
            held_out: all,
        })
    }

    /// Training batches per epoch with at most `max_samples` samples used.
    pub fn batches(&self, batch: usize, max_samples: usize) -> usize {
        self.train.len().min(max_samples) / batch
    }

    /// Batch `pos` of `samples` as `(ids [batch, seq] u32, labels [batch] u32)`.
    ///
    /// # Errors
    /// A device error.
    pub fn batch(
        samples: &[(Vec<u32>, u32)],
        pos: usize,
        batch: usize,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let rows = &samples[pos * batch..(pos + 1) * batch];
        let seq = rows[0].0.len();
        let ids: Vec<u32> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
        let labels: Vec<u32> = rows.iter().map(|r| r.1).collect();
        Ok((
            Tensor::from_vec(ids, (batch, seq), dev)?,
            Tensor::from_vec(labels, batch, dev)?,
        ))
    }
}

/// A small synthetic corpus in the committed corpus's format (for tests): `modules` modules,
/// each with its own words.
pub fn synthetic_corpus(modules: usize, words_per_module: usize, seed: u64) -> Vec<u8> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out = Vec::new();
    for m in 0..modules {
        out.extend_from_slice(format!("# ==== Lib/mod{m}.py ====\n").as_bytes());
        for i in 0..words_per_module {
            let w = rng.random_range(0..6u32);
            out.extend_from_slice(format!("m{m}w{w}").as_bytes());
            out.push(if i % 8 == 7 { b'\n' } else { b' ' });
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_modules_and_split() {
        let t = tokenize(b"def f(x):\n  return x_1", 100);
        // def, f, (, x, ), :, \n, return, x_1
        assert_eq!(t.len(), 9);
        assert_eq!(t[3], tokenize(b"x", 100)[0]);
        assert!(t.iter().all(|&i| (2..100).contains(&i)));
        let c = synthetic_corpus(3, 100, 1);
        let m = modules(&c);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].0, "mod1.py");
        let d = Dataset::new(&c, 64, 3, 9, 0.2, 5).unwrap();
        // 113 tokens per module (100 words + 13 newlines) → 14 windows of 8 each.
        assert_eq!(d.train.len() + d.held_out.len(), 42);
        assert_eq!(d.held_out.len(), 8);
        assert!(d.train.iter().all(|s| s.0.len() == 9 && s.0[0] == CLS));
        let again = Dataset::new(&c, 64, 3, 9, 0.2, 5).unwrap();
        assert_eq!(again.train, d.train);
        assert!(Dataset::new(&c, 64, 4, 9, 0.2, 5)
            .unwrap_err()
            .to_string()
            .contains("classes 4"));
    }
}
