//! Per-layer cost profiles: what one training iteration spends in each layer.
//!
//! A [`Profile`] lists the layers bottom (input side) to top (loss side). Each [`LayerCost`] holds
//! the times of one iteration at the run's batch size: forward, input gradient (the backward
//! product that passes the gradient down to the layer below), weight gradient, and optimizer
//! step; plus the layer's parameter count and its output activation bytes per sample (what a
//! cache of the prefix ending at this layer stores per training sample).
//!
//! Sources ([`ModelSpec`]):
//! - `uniform:layers=L`: L layers whose forward, input-gradient and weight-gradient times are 1 ms
//!   each per iteration at any batch size, with no optimizer time, no parameters and no activation
//!   bytes: the unit model of the worked examples and tests.
//! - `file:PATH` (or any path ending in `.toml` or `.csv`): a measured profile, either the TOML
//!   [`ProfileFile`] below or the shared `dnn` module's measured-profile CSV
//!   ([`crate::dnn::Profile::from_csv`]); times are per iteration at the file's batch, scaled
//!   linearly to the run's batch (the optimizer time does not depend on the batch).
//! - a catalog architecture name from `models/dnn/models.toml` (`bert-base`, `bert-large`,
//!   `roberta-base`, `gpt2` (alias `gpt2-small`), `gpt2-medium`, `vit-b16` (alias `vit-b-16`),
//!   `resnet-50`, `resnet-101`, `vgg-16`): per-layer costs derived by the shared `dnn` module (roofline on a
//!   catalog GPU) through [`catalog_profile`].

use crate::catalog::{parse_toml_str, Catalog};
use crate::check;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest number of layers a profile may have.
pub const MAX_LAYERS: usize = 10_000;

/// The cost of one layer in one training iteration (at the run's batch size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerCost {
    /// Layer name (unique within the profile), as a gradient-norm trace may refer to it.
    pub name: String,
    /// Forward time per iteration, seconds.
    pub forward_s: f64,
    /// Input-gradient time per iteration (dL/dx of the layer's input), seconds.
    pub input_grad_s: f64,
    /// Weight-gradient time per iteration (dL/dW), seconds.
    pub weight_grad_s: f64,
    /// Optimizer step time per iteration for this layer's parameters, seconds.
    #[serde(default)]
    pub optimizer_s: f64,
    /// Trainable parameters of the layer.
    #[serde(default)]
    pub params: u64,
    /// Bytes of the layer's output activation per training sample (what caching the prefix that
    /// ends at this layer stores per sample).
    #[serde(default)]
    pub activation_bytes_per_sample: f64,
}

impl LayerCost {
    /// Checks every number is finite and non-negative.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming `<prefix>.<field>`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        check::non_negative(&format!("{prefix}.forward_s"), self.forward_s)?;
        check::non_negative(&format!("{prefix}.input_grad_s"), self.input_grad_s)?;
        check::non_negative(&format!("{prefix}.weight_grad_s"), self.weight_grad_s)?;
        check::non_negative(&format!("{prefix}.optimizer_s"), self.optimizer_s)?;
        check::non_negative(
            &format!("{prefix}.activation_bytes_per_sample"),
            self.activation_bytes_per_sample,
        )?;
        Ok(())
    }
}

/// Per-layer costs of one training iteration of a model at one batch size, bottom layer first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// Model label (as the user named it).
    pub model: String,
    /// Where the numbers came from (`uniform`, a file path, or `roofline on <gpu>`).
    pub source: String,
    /// Batch size the per-iteration times are for (samples per iteration).
    pub batch: u32,
    /// The layers, bottom (input side) first.
    pub layers: Vec<LayerCost>,
}

impl Profile {
    /// A validated profile.
    ///
    /// # Errors
    /// No layers, more than [`MAX_LAYERS`], duplicate layer names, or a negative/NaN number.
    pub fn new(
        model: impl Into<String>,
        source: impl Into<String>,
        batch: u32,
        layers: Vec<LayerCost>,
    ) -> Result<Self> {
        let model = model.into();
        if layers.is_empty() || layers.len() > MAX_LAYERS {
            return Err(Error::range(
                format!("{model}.layers"),
                layers.len(),
                format!("between 1 and {MAX_LAYERS} layers"),
            ));
        }
        check::int_in("batch", i64::from(batch), 1, 1 << 24)?;
        let mut names = std::collections::HashSet::new();
        for (i, l) in layers.iter().enumerate() {
            l.validate(&format!("{model}.layer[{i}]"))?;
            if !names.insert(l.name.as_str()) {
                return Err(Error::range(
                    format!("{model}.layer[{i}].name"),
                    &l.name,
                    "unique within the profile",
                ));
            }
        }
        Ok(Profile {
            model,
            source: source.into(),
            batch,
            layers,
        })
    }

    /// The unit test model: `layers` layers with forward, input-gradient and weight-gradient
    /// times of 1 ms each per iteration (at any batch size) and nothing else.
    ///
    /// # Errors
    /// `layers` outside [1, [`MAX_LAYERS`]].
    pub fn uniform(layers: usize, batch: u32) -> Result<Self> {
        check::int_in("uniform.layers", layers as i64, 1, MAX_LAYERS as i64)?;
        let l = (0..layers)
            .map(|i| LayerCost {
                name: format!("layer{i}"),
                forward_s: 1e-3,
                input_grad_s: 1e-3,
                weight_grad_s: 1e-3,
                optimizer_s: 0.0,
                params: 0,
                activation_bytes_per_sample: 0.0,
            })
            .collect();
        Profile::new(
            format!("uniform:layers={layers}"),
            "uniform (1 ms forward, input and weight gradient per layer)",
            batch,
            l,
        )
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the profile has no layers (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Index of the layer named `name` (or given as a 0-based integer index).
    ///
    /// # Errors
    /// [`Error::UnknownName`] (kind `layer`) listing the profile's layer names, or
    /// [`Error::OutOfRange`] for an index ≥ the number of layers.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        if let Ok(i) = name.trim().parse::<i64>() {
            return Ok(check::int_in("layer", i, 0, self.layers.len() as i64 - 1)? as usize);
        }
        self.layers
            .iter()
            .position(|l| l.name == name.trim())
            .ok_or_else(|| {
                Error::unknown(
                    "layer",
                    name.trim(),
                    self.layers.iter().map(|l| l.name.as_str()),
                )
            })
    }

    /// Total trainable parameters.
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| l.params).sum()
    }
}

/// A measured per-layer profile file (TOML):
///
/// ```toml
/// model = "bert-base"            # label
/// batch = 32                     # the times below are per iteration at this batch size
/// source = "PyTorch profiler, H200, 2026-11-20"   # optional provenance
/// [[layer]]
/// name = "embeddings"
/// forward_s = 1.1e-4
/// input_grad_s = 0.0             # nothing below it needs a gradient
/// weight_grad_s = 2.0e-4
/// optimizer_s = 3.0e-5
/// params = 23837184
/// activation_bytes_per_sample = 393216
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// Model label.
    pub model: Option<String>,
    /// Batch size of the measured times.
    pub batch: u32,
    /// Provenance.
    pub source: Option<String>,
    /// The layers, bottom first.
    pub layer: Vec<LayerCost>,
}

impl ProfileFile {
    /// Reads and parses a profile file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Parse`] naming the file (and line).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        parse_toml_str(&text, path)
    }

    /// The profile at `batch`: forward and gradient times scaled by `batch / self.batch`
    /// (compute-bound layers; an approximation for small batches where fixed costs dominate);
    /// optimizer times unchanged.
    ///
    /// # Errors
    /// Invalid numbers, naming the file.
    pub fn at_batch(&self, path: &Path, batch: u32) -> Result<Profile> {
        check::int_in(
            &format!("{}: batch", path.display()),
            i64::from(self.batch),
            1,
            1 << 24,
        )?;
        let s = f64::from(batch) / f64::from(self.batch);
        let layers = self
            .layer
            .iter()
            .map(|l| LayerCost {
                forward_s: l.forward_s * s,
                input_grad_s: l.input_grad_s * s,
                weight_grad_s: l.weight_grad_s * s,
                ..l.clone()
            })
            .collect();
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| path.display().to_string());
        let source = match &self.source {
            Some(src) => format!(
                "{} ({src}; measured at batch {})",
                path.display(),
                self.batch
            ),
            None => format!("{} (measured at batch {})", path.display(), self.batch),
        };
        Profile::new(model, source, batch, layers)
            .map_err(|e| Error::parse(path, None, e.to_string()))
    }
}

/// What `--model` names.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSpec {
    /// `uniform:layers=L`.
    Uniform {
        /// Number of layers.
        layers: usize,
    },
    /// `file:PATH` or a path ending in `.toml`: a measured profile.
    File(PathBuf),
    /// A catalog architecture, profiled by the roofline on a catalog GPU.
    Catalog(String),
}

impl ModelSpec {
    /// Parses a `--model` value.
    ///
    /// # Errors
    /// A malformed `uniform:` spec (unknown key, missing or out-of-range `layers`).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("uniform") {
            let kv = crate::check::parse_kv(
                "model",
                rest.strip_prefix(':').unwrap_or(rest),
                &["layers"],
            )?;
            let layers = match kv.get("layers") {
                Some(v) => v.parse::<i64>().map_err(|_| {
                    Error::range(
                        "model.uniform.layers",
                        v,
                        format!("an integer in [1, {MAX_LAYERS}]"),
                    )
                })?,
                None => {
                    return Err(Error::range(
                        "model.uniform.layers",
                        "missing",
                        format!("given as uniform:layers=L, L in [1, {MAX_LAYERS}]"),
                    ))
                }
            };
            let layers =
                check::int_in("model.uniform.layers", layers, 1, MAX_LAYERS as i64)? as usize;
            return Ok(ModelSpec::Uniform { layers });
        }
        if let Some(p) = s.strip_prefix("file:") {
            return Ok(ModelSpec::File(PathBuf::from(p)));
        }
        if s.ends_with(".toml") || s.ends_with(".csv") {
            return Ok(ModelSpec::File(PathBuf::from(s)));
        }
        Ok(ModelSpec::Catalog(s.to_string()))
    }

    /// The profile of one iteration at `batch` on `gpu`.
    ///
    /// # Errors
    /// Unknown model or GPU names, unreadable or invalid profile files.
    pub fn resolve(&self, cat: &Catalog, gpu: &str, batch: u32) -> Result<Profile> {
        self.resolve_seq(cat, gpu, batch, None)
    }

    /// [`ModelSpec::resolve`] with the tokens per sample of a catalog transformer set to `seq`
    /// (the `--seq` of the what-if; `None` keeps the catalog's `seq_len`).
    ///
    /// # Errors
    /// As [`ModelSpec::resolve`]; `seq` with a uniform or file profile (their costs are given),
    /// or for a catalog model that is not a text transformer.
    pub fn resolve_seq(
        &self,
        cat: &Catalog,
        gpu: &str,
        batch: u32,
        seq: Option<u32>,
    ) -> Result<Profile> {
        check::int_in("batch", i64::from(batch), 1, 1 << 24)?;
        if let (Some(s), false) = (seq, matches!(self, ModelSpec::Catalog(_))) {
            return Err(Error::range(
                "seq",
                s,
                "given only with a catalog transformer (uniform and file profiles carry their own costs)",
            ));
        }
        if let ModelSpec::Catalog(name) = self {
            return catalog_profile_seq(cat, name, gpu, batch, seq);
        }
        match self {
            ModelSpec::Uniform { layers } => Profile::uniform(*layers, batch),
            ModelSpec::File(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) => {
                let d = crate::dnn::Profile::from_csv(p)?;
                let model = p.file_stem().map_or_else(
                    || p.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                );
                Ok(scale_to_batch(
                    from_dnn(&model, &d).map_err(|e| Error::parse(p, None, e.to_string()))?,
                    batch,
                ))
            }
            ModelSpec::File(p) => ProfileFile::read(p)?.at_batch(p, batch),
            ModelSpec::Catalog(name) => catalog_profile(cat, name, gpu, batch),
        }
    }
}

/// Aliases accepted for catalog architectures (the issue's spelling → the catalog name).
pub const ALIASES: &[(&str, &str)] = &[
    ("gpt2-small", "gpt2"),
    ("vit-b-16", "vit-b16"),
    ("vit-b/16", "vit-b16"),
];

/// Architectures the catalog path knows (the shared `dnn` module's `models/dnn/models.toml`).
pub fn catalog_models(cat: &Catalog) -> Vec<String> {
    crate::dnn::names(cat).unwrap_or_default()
}

/// Converts a shared [`crate::dnn::Profile`] (roofline or measured CSV) into freeze layer costs;
/// the output activation bytes per sample become the cache entry size of each boundary.
///
/// # Errors
/// Invalid numbers (NaN or negative), naming the layer.
pub fn from_dnn(model: &str, d: &crate::dnn::Profile) -> Result<Profile> {
    let layers = d
        .layers
        .iter()
        .map(|l| LayerCost {
            name: l.name.clone(),
            forward_s: l.forward_s,
            input_grad_s: l.input_grad_s,
            weight_grad_s: l.weight_grad_s,
            optimizer_s: l.optimizer_s,
            params: l.params,
            activation_bytes_per_sample: l.out_act_bytes_per_sample,
        })
        .collect();
    Profile::new(model, d.source.clone(), d.batch, layers)
}

/// Scales a profile measured at `p.batch` to `batch`: forward and gradient times linearly,
/// optimizer times unchanged (see [`ProfileFile::at_batch`]).
pub fn scale_to_batch(mut p: Profile, batch: u32) -> Profile {
    let s = f64::from(batch) / f64::from(p.batch);
    if s != 1.0 {
        for l in &mut p.layers {
            l.forward_s *= s;
            l.input_grad_s *= s;
            l.weight_grad_s *= s;
        }
        p.source = format!(
            "{} (measured at batch {}, scaled linearly to {batch})",
            p.source, p.batch
        );
        p.batch = batch;
    }
    p
}

/// Training precision of a catalog what-if (`--dtype`): what the roofline assumes and which
/// calibrated shapes apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// bf16 mixed precision with fp32 master weights (the roofline's default).
    #[default]
    Bf16,
    /// fp32 throughout.
    F32,
}

impl Dtype {
    /// Parses `bf16|f32`.
    ///
    /// # Errors
    /// [`Error::UnknownName`] (kind `dtype`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bf16" => Ok(Dtype::Bf16),
            "f32" | "fp32" => Ok(Dtype::F32),
            o => Err(Error::unknown("dtype", o, ["bf16", "f32"])),
        }
    }

    /// Name as the calibration files spell it (`bf16`, `f32`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::F32 => "f32",
        }
    }

    /// The roofline precision of the dtype.
    pub fn precision(self) -> crate::dnn::Precision {
        match self {
            Dtype::Bf16 => crate::dnn::Precision::Bf16,
            Dtype::F32 => crate::dnn::Precision::Fp32,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Dtype::parse(s)
    }
}

/// The catalog name `name` stands for (aliases resolved, the catalog's spelling).
///
/// # Errors
/// [`Error::UnknownName`] for an unknown model, listing the known ones and the other forms.
pub fn catalog_name(cat: &Catalog, name: &str) -> Result<String> {
    let lname = name.to_ascii_lowercase();
    let resolved = ALIASES
        .iter()
        .find(|(a, _)| *a == lname)
        .map_or(name, |(_, n)| *n);
    let known = catalog_models(cat);
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(resolved))
        .cloned()
        .ok_or_else(|| {
            let mut all = known.clone();
            all.push("uniform:layers=L".into());
            all.push("file:PATH".into());
            Error::unknown("model", name, all.iter().map(String::as_str))
        })
}

/// Tokens per sample of catalog text transformer `name` when `seq` is `None` (its `seq_len`);
/// `seq` itself otherwise; `None` for a model that is not a text transformer.
pub fn catalog_seq(cat: &Catalog, name: &str, seq: Option<u32>) -> Option<u32> {
    let specs = crate::dnn::specs(cat).ok()?;
    let t = specs
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))?
        .transformer
        .as_ref()?;
    (t.patch == 0).then(|| seq.unwrap_or(t.seq_len))
}

/// The shared `dnn` roofline profile (with layer kinds) of catalog architecture `name` on `gpu`
/// at `batch`, `seq` tokens per sample and `dtype`; `launches: false` leaves out the per-kernel
/// launch cost (the pure work term `max(FLOPs / P, bytes / BW)` that the calibrated scaling
/// regresses on).
///
/// # Errors
/// As [`catalog_profile_seq`].
pub fn catalog_dnn_profile(
    cat: &Catalog,
    name: &str,
    gpu: &str,
    batch: u32,
    seq: Option<u32>,
    dtype: Dtype,
    launches: bool,
) -> Result<crate::dnn::Profile> {
    let resolved = catalog_name(cat, name)?;
    let g = cat.gpu(gpu)?;
    let m = crate::dnn::model_with_seq(cat, &resolved, seq)?;
    let mut rf = crate::dnn::Roofline {
        precision: dtype.precision(),
        ..crate::dnn::Roofline::for_gpu(g)
    };
    if !launches {
        rf.kernel_overhead_s = 0.0;
    }
    crate::dnn::Profile::roofline(&m, g, batch, &rf)
}

/// The profile of catalog architecture `name` on catalog GPU `gpu` at `batch`, derived by the
/// shared `dnn` layer-profile module: roofline with the GPU's latency efficiencies, bf16 AMP,
/// Adam, fp32 gradients ([`crate::dnn::Roofline::for_gpu`]).
///
/// # Errors
/// [`Error::UnknownName`] for an unknown model (listing the known ones and the other forms) or
/// GPU.
pub fn catalog_profile(cat: &Catalog, name: &str, gpu: &str, batch: u32) -> Result<Profile> {
    catalog_profile_seq(cat, name, gpu, batch, None)
}

/// [`catalog_profile`] with `seq` tokens per sample (text transformers; `None`: the catalog's).
///
/// # Errors
/// As [`catalog_profile`]; a bad `seq` ([`crate::dnn::model_with_seq`]).
pub fn catalog_profile_seq(
    cat: &Catalog,
    name: &str,
    gpu: &str,
    batch: u32,
    seq: Option<u32>,
) -> Result<Profile> {
    catalog_profile_dtype(cat, name, gpu, batch, seq, Dtype::Bf16)
}

/// [`catalog_profile_seq`] in `dtype` (the roofline's precision: bf16 AMP or fp32).
///
/// # Errors
/// As [`catalog_profile_seq`].
pub fn catalog_profile_dtype(
    cat: &Catalog,
    name: &str,
    gpu: &str,
    batch: u32,
    seq: Option<u32>,
    dtype: Dtype,
) -> Result<Profile> {
    let d = catalog_dnn_profile(cat, name, gpu, batch, seq, dtype, true)?;
    from_dnn(&d.model.clone(), &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_parse() {
        assert_eq!(
            ModelSpec::parse("uniform:layers=12").unwrap(),
            ModelSpec::Uniform { layers: 12 }
        );
        assert_eq!(
            ModelSpec::parse("x.toml").unwrap(),
            ModelSpec::File("x.toml".into())
        );
        assert_eq!(
            ModelSpec::parse("file:y").unwrap(),
            ModelSpec::File("y".into())
        );
        for (s, needle) in [
            ("uniform:layers=0", "model.uniform.layers = 0"),
            ("uniform:layers=x", "model.uniform.layers = x"),
            ("uniform", "model.uniform.layers = missing"),
            ("uniform:depth=3", "model.depth"),
        ] {
            let e = ModelSpec::parse(s).unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn file_profiles_scale_with_batch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            "batch = 8\n[[layer]]\nname = \"a\"\nforward_s = 0.002\ninput_grad_s = 0.001\nweight_grad_s = 0.003\noptimizer_s = 0.5\nactivation_bytes_per_sample = 100\n",
        )
        .unwrap();
        let prof = ModelSpec::parse(p.to_str().unwrap())
            .unwrap()
            .resolve(&Catalog::embedded().unwrap(), "h200", 16)
            .unwrap();
        // Tolerance 1e-15: one multiplication by 2.
        assert!((prof.layers[0].forward_s - 0.004).abs() < 1e-15);
        assert!((prof.layers[0].weight_grad_s - 0.006).abs() < 1e-15);
        assert_eq!(prof.layers[0].optimizer_s, 0.5);
        std::fs::write(&p, "batch = 8\n[[layer]]\nname = \"a\"\nforward_s = -1\ninput_grad_s = 0\nweight_grad_s = 0\n").unwrap();
        let e = ProfileFile::read(&p)
            .unwrap()
            .at_batch(&p, 8)
            .unwrap_err()
            .to_string();
        assert!(e.contains("forward_s = -1"), "{e}");
        std::fs::write(&p, "batch = 8\n[[layer]]\nname = \"a\"\nfwd = 1\n").unwrap();
        let e = ProfileFile::read(&p).unwrap_err().to_string();
        assert!(e.contains("p.toml:4"), "{e}");
    }

    #[test]
    fn dnn_csv_profiles_adapt_and_scale() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(
            &p,
            "layer,kind,params,batch,forward_s,input_grad_s,weight_grad_s,optimizer_s,out_act_bytes_per_sample\n\
             embeddings,embedding,100,8,0.001,0,0.002,0.0001,64\n\
             block.0,block,200,8,0.003,0.003,0.003,0.0002,64\n",
        )
        .unwrap();
        let cat = Catalog::embedded().unwrap();
        let prof = ModelSpec::parse(p.to_str().unwrap())
            .unwrap()
            .resolve(&cat, "h200", 4)
            .unwrap();
        assert_eq!(prof.len(), 2);
        assert_eq!(prof.layers[1].name, "block.0");
        // Halved batch: compute times halve (tolerance 1e-15), optimizer and bytes do not.
        assert!((prof.layers[1].forward_s - 0.0015).abs() < 1e-15);
        assert_eq!(prof.layers[1].optimizer_s, 0.0002);
        assert_eq!(prof.layers[1].activation_bytes_per_sample, 64.0);
        assert_eq!(prof.params(), 300);
    }

    #[test]
    fn catalog_models_and_aliases() {
        let cat = Catalog::embedded().unwrap();
        let a = catalog_profile(&cat, "gpt2-small", "h200", 8).unwrap();
        let b = catalog_profile(&cat, "gpt2", "h200", 8).unwrap();
        assert_eq!(a, b);
        let bert = catalog_profile(&cat, "bert-base", "h200", 32).unwrap();
        // Embeddings + 12 blocks + head; a block's output is 128 tokens × 768 × 2 bytes (bf16).
        assert_eq!(bert.len(), 14);
        assert_eq!(
            bert.layers[6].activation_bytes_per_sample,
            128.0 * 768.0 * 2.0
        );
        // --seq: a block's output scales with the tokens per sample; seq on a non-transformer
        // or a uniform profile is refused naming `seq`.
        let b256 = catalog_profile_seq(&cat, "bert-base", "h200", 32, Some(256)).unwrap();
        assert_eq!(
            b256.layers[6].activation_bytes_per_sample,
            256.0 * 768.0 * 2.0
        );
        assert!(b256.layers[6].forward_s > bert.layers[6].forward_s);
        for e in [
            catalog_profile_seq(&cat, "resnet-50", "h200", 32, Some(128)).unwrap_err(),
            catalog_profile_seq(&cat, "bert-base", "h200", 32, Some(513)).unwrap_err(),
            ModelSpec::parse("uniform:layers=4")
                .unwrap()
                .resolve_seq(&cat, "h200", 1, Some(8))
                .unwrap_err(),
        ] {
            assert!(e.to_string().starts_with("seq = "), "{e}");
        }
        let e = catalog_profile(&cat, "bert-bse", "h200", 32)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did you mean 'bert-base'") && e.contains("uniform:layers=L"),
            "{e}"
        );
    }

    #[test]
    fn layer_lookup_by_name_or_index() {
        let p = Profile::uniform(4, 1).unwrap();
        assert_eq!(p.layer_index("layer2").unwrap(), 2);
        assert_eq!(p.layer_index("3").unwrap(), 3);
        assert!(p
            .layer_index("4")
            .unwrap_err()
            .to_string()
            .contains("layer = 4: must be an integer in [0, 3]"));
        assert!(p
            .layer_index("layr2")
            .unwrap_err()
            .to_string()
            .contains("did you mean 'layer2'"));
    }
}
