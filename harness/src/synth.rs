//! `harness synth`: a model-shaped GGUF with random weights (N(0, 0.02), norms near 1),
//! quantized with `kernels::quant` in the tensor mix llama.cpp's `llama-quantize` gives the
//! preset, with a real tokenizer copied from another GGUF or a small generated SentencePiece one.
//!
//! Reproducible: every tensor is cut into chunks of `CHUNK_ROWS` rows and each chunk draws from
//! its own RNG seeded by (seed, tensor name, chunk index), so the bytes do not depend on the
//! thread count or the order the chunks run in.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kernels::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue, ValueType};
use kernels::quant::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8_0, QuantBlock};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Rows per independently seeded chunk: small enough to spread a 256-row tensor over threads.
const CHUNK_ROWS: usize = 16;
/// Standard deviation of the random weights.
const WEIGHT_STD: f32 = 0.02;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchName {
    #[value(name = "tinyllama-1.1b")]
    TinyLlama,
    #[value(name = "smollm2-135m")]
    SmolLm2,
    /// A tiny Llama for tests (4 layers of 256, vocab 320).
    #[value(name = "test-tiny")]
    TestTiny,
}

/// The shape of a Llama-architecture model.
#[derive(Clone, Debug)]
pub struct Arch {
    pub name: &'static str,
    pub n_vocab: u64,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub n_ctx: u64,
    /// No `output.weight`: the output projection is `token_embd`.
    pub tied_output: bool,
}

impl Arch {
    pub fn get(name: ArchName) -> Arch {
        match name {
            ArchName::TinyLlama => Arch {
                name: "tinyllama-1.1b",
                n_vocab: 32000,
                n_embd: 2048,
                n_ff: 5632,
                n_layer: 22,
                n_head: 32,
                n_head_kv: 4,
                rope_base: 10000.0,
                rms_eps: 1e-5,
                n_ctx: 2048,
                tied_output: false,
            },
            ArchName::SmolLm2 => Arch {
                name: "smollm2-135m",
                n_vocab: 49152,
                n_embd: 576,
                n_ff: 1536,
                n_layer: 30,
                n_head: 9,
                n_head_kv: 3,
                rope_base: 100000.0,
                rms_eps: 1e-5,
                n_ctx: 8192,
                tied_output: true,
            },
            ArchName::TestTiny => Arch {
                name: "test-tiny",
                n_vocab: 320,
                n_embd: 256,
                n_ff: 512,
                n_layer: 4,
                n_head: 4,
                n_head_kv: 2,
                rope_base: 10000.0,
                rms_eps: 1e-5,
                n_ctx: 256,
                tied_output: false,
            },
        }
    }

    pub fn head_dim(&self) -> u64 {
        self.n_embd / self.n_head
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    #[value(name = "q4_k_m")]
    Q4KM,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_1")]
    Q4_1,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "f16")]
    F16,
}

impl Preset {
    /// `general.file_type` (llama.cpp's `llama_ftype`) and the default type of the matrices.
    fn file_type_and_default(self) -> (u32, GgmlType) {
        match self {
            Preset::Q4KM => (15, GgmlType::Q4K),
            Preset::Q4_0 => (2, GgmlType::Q4_0),
            Preset::Q4_1 => (3, GgmlType::Q4_1),
            Preset::Q8_0 => (7, GgmlType::Q8_0),
            Preset::F16 => (1, GgmlType::F16),
        }
    }
}

/// What a tensor is, for the type rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Norm,
    TokenEmbd,
    Output,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    FfnGate,
    FfnUp,
    FfnDown,
}

/// llama-quantize's "use more bits" layers: the first and last eighth, and every third layer
/// in between (integer division as in C).
pub fn use_more_bits(i: u64, n: u64) -> bool {
    // The third test runs only when i >= n / 8, so the subtraction cannot wrap.
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// The type llama-quantize gives a tensor for a preset (facts of llama.cpp's
/// `llama_tensor_get_type`, for the Llama architecture without an importance matrix):
/// - 1-D tensors (norms) stay F32; an F16 preset makes every matrix F16, nothing else.
/// - The output projection (`output.weight`, or `token_embd` when it is tied) becomes Q8_0 if
///   its rows are not a whole number of the preset type's blocks, else Q6_K unless the preset
///   is Q8_0.
/// - Q4_K_M: attn_v and ffn_down are Q6_K in the `use_more_bits` layers.
/// - Last, a K-quant whose rows are not a multiple of 256 falls back: Q4_K to Q5_0, Q6_K to
///   Q8_0 (F16 if even that does not divide the row).
fn tensor_type(preset: Preset, role: Role, layer: u64, n_layer: u64, row_len: u64) -> GgmlType {
    let (_, default) = preset.file_type_and_default();
    if role == Role::Norm {
        return GgmlType::F32;
    }
    if preset == Preset::F16 {
        return GgmlType::F16;
    }
    let block = |t: GgmlType| t.block_layout().map_or(1, |(v, _)| v);
    let mut t = default;
    match role {
        Role::Output => {
            if !row_len.is_multiple_of(block(default)) {
                t = GgmlType::Q8_0;
            } else if default != GgmlType::Q8_0 {
                t = GgmlType::Q6K;
            }
        }
        Role::AttnV | Role::FfnDown if preset == Preset::Q4KM && use_more_bits(layer, n_layer) => {
            t = GgmlType::Q6K;
        }
        _ => {}
    }
    if !row_len.is_multiple_of(block(t)) {
        t = match t {
            GgmlType::Q4K => GgmlType::Q5_0,
            GgmlType::Q6K => GgmlType::Q8_0,
            other => other,
        };
        if !row_len.is_multiple_of(block(t)) {
            t = GgmlType::F16;
        }
    }
    t
}

/// One tensor to make.
#[derive(Clone, Debug)]
pub struct TensorPlan {
    pub name: String,
    /// [row length, rows] (or [length] for a norm).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    norm: bool,
}

/// Every tensor of the model, in the order llama.cpp's converter writes them.
pub fn plan(arch: &Arch, preset: Preset, n_vocab: u64) -> Vec<TensorPlan> {
    let e = arch.n_embd;
    let kv = arch.n_head_kv * arch.head_dim();
    let n = arch.n_layer;
    let mut out = Vec::new();
    let mut push = |name: String, dims: Vec<u64>, role: Role, layer: u64| {
        let ggml_type = tensor_type(preset, role, layer, n, dims[0]);
        out.push(TensorPlan {
            name,
            dims,
            ggml_type,
            norm: role == Role::Norm,
        });
    };
    let embd_role = if arch.tied_output {
        Role::Output
    } else {
        Role::TokenEmbd
    };
    push("token_embd.weight".into(), vec![e, n_vocab], embd_role, 0);
    for i in 0..n {
        let b = |t: &str| format!("blk.{i}.{t}.weight");
        push(b("attn_norm"), vec![e], Role::Norm, i);
        push(b("attn_q"), vec![e, e], Role::AttnQ, i);
        push(b("attn_k"), vec![e, kv], Role::AttnK, i);
        push(b("attn_v"), vec![e, kv], Role::AttnV, i);
        push(b("attn_output"), vec![e, e], Role::AttnOutput, i);
        push(b("ffn_norm"), vec![e], Role::Norm, i);
        push(b("ffn_gate"), vec![e, arch.n_ff], Role::FfnGate, i);
        push(b("ffn_up"), vec![e, arch.n_ff], Role::FfnUp, i);
        push(b("ffn_down"), vec![arch.n_ff, e], Role::FfnDown, i);
    }
    push("output_norm.weight".into(), vec![e], Role::Norm, 0);
    if !arch.tied_output {
        push("output.weight".into(), vec![e, n_vocab], Role::Output, 0);
    }
    out
}

/// SplitMix64's finalizer: spreads (seed, name, chunk) over the whole seed space.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The RNG of one chunk of one tensor: a function of the seed, the name and the chunk index
/// only (FNV-1a of the name, mixed with the rest).
fn chunk_rng(seed: u64, name: &str, chunk: usize) -> ChaCha8Rng {
    let name_hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let s = mix(mix(seed ^ name_hash).wrapping_add(chunk as u64));
    ChaCha8Rng::seed_from_u64(s)
}

/// Makes one tensor's bytes: random rows, chunk by chunk in parallel, quantized to `B`.
fn make_tensor<B: QuantBlock + Send>(t: &TensorPlan, seed: u64, progress: &ProgressBar) -> Vec<u8> {
    let row_len = t.dims[0] as usize;
    let n_rows: usize = t.dims[1..].iter().product::<u64>() as usize;
    let blocks_per_row = row_len / B::VALUES;
    let mut out = vec![B::zeroed(); n_rows * blocks_per_row];
    let row_bytes = (blocks_per_row * std::mem::size_of::<B>()) as u64;
    out.par_chunks_mut(CHUNK_ROWS * blocks_per_row)
        .enumerate()
        .for_each(|(chunk, dst)| {
            let mut rng = chunk_rng(seed, &t.name, chunk);
            let values = dst.len() / blocks_per_row * row_len;
            let src: Vec<f32> = (0..values)
                .map(|_| {
                    let z: f32 = StandardNormal.sample(&mut rng);
                    if t.norm {
                        1.0 + WEIGHT_STD * z
                    } else {
                        WEIGHT_STD * z
                    }
                })
                .collect();
            B::quantize_row(&src, dst);
            progress.inc(row_bytes * (dst.len() / blocks_per_row) as u64);
        });
    bytemuck::cast_slice(&out).to_vec()
}

fn make_tensor_bytes(t: &TensorPlan, seed: u64, progress: &ProgressBar) -> Result<Vec<u8>> {
    Ok(match t.ggml_type {
        GgmlType::F32 => make_tensor::<f32>(t, seed, progress),
        GgmlType::F16 => make_tensor::<half::f16>(t, seed, progress),
        GgmlType::Q4K => make_tensor::<BlockQ4K>(t, seed, progress),
        GgmlType::Q6K => make_tensor::<BlockQ6K>(t, seed, progress),
        GgmlType::Q8_0 => make_tensor::<BlockQ8_0>(t, seed, progress),
        GgmlType::Q4_0 => make_tensor::<BlockQ4_0>(t, seed, progress),
        GgmlType::Q4_1 => make_tensor::<BlockQ4_1>(t, seed, progress),
        GgmlType::Q5_0 => make_tensor::<BlockQ5_0>(t, seed, progress),
        other => bail!("tensor `{}`: no quantizer for {other}", t.name),
    })
}

/// A small working SentencePiece vocabulary of exactly `n_vocab` tokens, laid out like
/// Llama's: `<unk>`, `<s>`, `</s>`, the 256 byte tokens, then scored pieces (single
/// characters, then two- and three-letter pieces with and without the U+2581 word prefix, then
/// four-letter ones),
/// every longer piece reachable by merging two shorter ones.
pub fn synthetic_spm_vocab(n_vocab: u64) -> Result<Vec<(&'static str, MetaValue)>> {
    const NORMAL: i32 = 1;
    const UNKNOWN: i32 = 2;
    const CONTROL: i32 = 3;
    const BYTE: i32 = 6;
    let n = usize::try_from(n_vocab)?;
    if n < 300 {
        bail!("a generated vocab needs at least 300 tokens (259 special and byte tokens), not {n}");
    }
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![UNKNOWN, CONTROL, CONTROL];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(BYTE);
    }
    let lower: Vec<char> = ('a'..='z').collect();
    let singles: Vec<String> = std::iter::once('▁')
        .chain('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(".,;:!?'\"-()".chars())
        .map(String::from)
        .collect();
    let pairs: Vec<String> = lower
        .iter()
        .flat_map(|a| lower.iter().map(move |b| format!("{a}{b}")))
        .collect();
    let triples: Vec<String> = pairs
        .iter()
        .flat_map(|p| lower.iter().map(move |c| format!("{p}{c}")))
        .collect();
    let prefixed = |v: &[String]| -> Vec<String> { v.iter().map(|s| format!("▁{s}")).collect() };
    let letters: Vec<String> = lower.iter().map(|c| c.to_string()).collect();
    let pieces = singles
        .into_iter()
        .chain(prefixed(&letters))
        .chain(pairs.clone())
        .chain(prefixed(&pairs))
        .chain(triples.clone())
        .chain(prefixed(&triples))
        .chain(
            pairs
                .iter()
                .flat_map(|a| pairs.iter().map(move |b| format!("{a}{b}"))),
        );
    let first_piece = tokens.len();
    for piece in pieces.take(n - first_piece) {
        tokens.push(piece);
        types.push(NORMAL);
    }
    if tokens.len() != n {
        bail!(
            "a generated vocab holds at most {} tokens, not {n}",
            tokens.len()
        );
    }
    // Specials and bytes score 0; pieces score by rank, so shorter pieces merge first.
    let scores = (0..n).map(|i| {
        MetaValue::F32(if i < first_piece {
            0.0
        } else {
            -((i - first_piece) as f32)
        })
    });
    Ok(vec![
        ("tokenizer.ggml.model", MetaValue::Str("llama".into())),
        ("tokenizer.ggml.tokens", MetaValue::str_array(tokens)),
        (
            "tokenizer.ggml.scores",
            MetaValue::Array(ValueType::F32, scores.collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            MetaValue::Array(
                ValueType::I32,
                types.into_iter().map(MetaValue::I32).collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", MetaValue::U32(1)),
        ("tokenizer.ggml.eos_token_id", MetaValue::U32(2)),
        ("tokenizer.ggml.unknown_token_id", MetaValue::U32(0)),
        ("tokenizer.ggml.add_bos_token", MetaValue::Bool(true)),
        ("tokenizer.ggml.add_eos_token", MetaValue::Bool(false)),
    ])
}

/// Every `tokenizer.*` key of another GGUF, and its vocabulary size.
fn copied_vocab(path: &Path) -> Result<(Vec<(String, MetaValue)>, u64)> {
    let file = GgufFile::open(path).with_context(|| format!("--vocab {}", path.display()))?;
    let g = file.gguf();
    let n = g
        .get_array("tokenizer.ggml.tokens")
        .with_context(|| format!("--vocab {}", path.display()))?
        .len() as u64;
    let keys = g
        .metadata()
        .iter()
        .filter(|e| e.key.starts_with("tokenizer."))
        .map(|e| (e.key.to_string(), MetaValue::from_value(&e.value)))
        .collect();
    Ok((keys, n))
}

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Model shape.
    #[arg(long, value_enum)]
    pub arch: ArchName,
    /// Quantization preset (the tensor mix llama-quantize gives it).
    #[arg(long, value_enum)]
    pub quant: Preset,
    /// Output GGUF file.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of layers (default: the architecture's).
    #[arg(long)]
    pub layers: Option<u64>,
    /// Seed of the random weights: the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Copy the tokenizer (every `tokenizer.*` key) from this GGUF.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Builds the writer (metadata and declared tensors) for a synthetic model.
pub fn writer_for(args: &SynthArgs) -> Result<(GgufWriter, Vec<TensorPlan>)> {
    let mut arch = Arch::get(args.arch);
    if let Some(n) = args.layers {
        if n == 0 || n > 1024 {
            bail!("--layers must be between 1 and 1024, not {n}");
        }
        arch.n_layer = n;
    }
    let (vocab_keys, n_vocab) = match &args.vocab {
        Some(path) => copied_vocab(path)?,
        None => {
            let keys = synthetic_spm_vocab(arch.n_vocab)?;
            let keys = keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            (keys, arch.n_vocab)
        }
    };
    let (file_type, _) = args.quant.file_type_and_default();
    let mut w = GgufWriter::new();
    let u32_of = |v: u64| u32::try_from(v).context("value exceeds u32");
    let general: Vec<(&str, MetaValue)> = vec![
        ("general.architecture", MetaValue::Str("llama".into())),
        (
            "general.name",
            MetaValue::Str(format!("synthetic {} (seed {})", arch.name, args.seed)),
        ),
        ("general.alignment", MetaValue::U32(32)),
        ("general.file_type", MetaValue::U32(file_type)),
        ("general.quantization_version", MetaValue::U32(2)),
        ("llama.vocab_size", MetaValue::U32(u32_of(n_vocab)?)),
        ("llama.context_length", MetaValue::U32(u32_of(arch.n_ctx)?)),
        (
            "llama.embedding_length",
            MetaValue::U32(u32_of(arch.n_embd)?),
        ),
        ("llama.block_count", MetaValue::U32(u32_of(arch.n_layer)?)),
        (
            "llama.feed_forward_length",
            MetaValue::U32(u32_of(arch.n_ff)?),
        ),
        (
            "llama.rope.dimension_count",
            MetaValue::U32(u32_of(arch.head_dim())?),
        ),
        (
            "llama.attention.head_count",
            MetaValue::U32(u32_of(arch.n_head)?),
        ),
        (
            "llama.attention.head_count_kv",
            MetaValue::U32(u32_of(arch.n_head_kv)?),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            MetaValue::F32(arch.rms_eps),
        ),
        ("llama.rope.freq_base", MetaValue::F32(arch.rope_base)),
    ];
    for (k, v) in general {
        w.add_meta(k, v)?;
    }
    for (k, v) in vocab_keys {
        w.add_meta(&k, v)?;
    }
    let tensors = plan(&arch, args.quant, n_vocab);
    for t in &tensors {
        w.declare_tensor(&t.name, &t.dims, t.ggml_type)?;
    }
    Ok((w, tensors))
}

pub fn run(args: SynthArgs) -> Result<()> {
    let started = Instant::now();
    let (w, tensors) = writer_for(&args)?;
    let threads = args.threads.unwrap_or(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the worker threads")?;
    let total = w.file_len();
    let progress = ProgressBar::new(total);
    progress.set_style(
        ProgressStyle::with_template(
            "synth {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let out = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let result = (|| -> Result<()> {
        w.write_header(&mut out)?;
        for (i, t) in tensors.iter().enumerate() {
            progress.set_message(t.name.clone());
            let bytes = pool.install(|| make_tensor_bytes(t, args.seed, &progress))?;
            w.write_tensor_data(&mut out, i, &bytes)?;
        }
        out.flush()?;
        Ok(())
    })();
    progress.finish_and_clear();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&args.out);
        return Err(e.context(format!("writing {}", args.out.display())));
    }
    eprintln!(
        "synth: wrote {} ({} tensors, {:.1} MiB) in {:.1} s with {} threads",
        args.out.display(),
        tensors.len(),
        total as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64(),
        pool.current_num_threads()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tinyllama_q4_k_m_mix_is_llama_quantize_s() {
        let arch = Arch::get(ArchName::TinyLlama);
        let p = plan(&arch, Preset::Q4KM, 32000);
        let ty = |name: &str| p.iter().find(|t| t.name == name).unwrap().ggml_type;
        assert_eq!(ty("token_embd.weight"), GgmlType::Q4K);
        assert_eq!(ty("output.weight"), GgmlType::Q6K);
        assert_eq!(ty("output_norm.weight"), GgmlType::F32);
        let more: Vec<u64> = (0..22).filter(|&i| use_more_bits(i, 22)).collect();
        assert_eq!(more, [0, 1, 4, 7, 10, 13, 16, 19, 20, 21]);
        for i in 0..22 {
            let want = if more.contains(&i) {
                GgmlType::Q6K
            } else {
                GgmlType::Q4K
            };
            assert_eq!(ty(&format!("blk.{i}.attn_v.weight")), want);
            assert_eq!(ty(&format!("blk.{i}.ffn_down.weight")), want);
            assert_eq!(ty(&format!("blk.{i}.attn_q.weight")), GgmlType::Q4K);
            assert_eq!(ty(&format!("blk.{i}.attn_norm.weight")), GgmlType::F32);
        }
        let bytes: u64 = p
            .iter()
            .map(|t| t.ggml_type.bytes_for(t.dims.iter().product()).unwrap())
            .sum();
        // 636 MiB, as a real TinyLlama Q4_K_M file (FORMATS.md).
        assert_eq!(bytes / (1 << 20), 636, "{bytes}");
    }

    #[test]
    fn smollm2_falls_back_to_32_value_blocks() {
        let arch = Arch::get(ArchName::SmolLm2);
        let p = plan(&arch, Preset::Q4KM, 49152);
        let ty = |name: &str| p.iter().find(|t| t.name == name).unwrap().ggml_type;
        assert!(p.iter().all(|t| t.name != "output.weight"));
        assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
        assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q5_0);
        assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q8_0);
        assert_eq!(ty("blk.3.attn_v.weight"), GgmlType::Q5_0);
        assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::Q6K);
        assert_eq!(ty("blk.3.ffn_down.weight"), GgmlType::Q4K);
        assert_eq!(ty("blk.3.ffn_up.weight"), GgmlType::Q5_0);
        let q4_1 = plan(&arch, Preset::Q4_1, 49152);
        assert_eq!(q4_1[0].ggml_type, GgmlType::Q8_0);
        assert_eq!(q4_1[2].ggml_type, GgmlType::Q4_1);
    }

    #[test]
    fn other_presets() {
        let arch = Arch::get(ArchName::TinyLlama);
        for (preset, embd, out, mat) in [
            (Preset::Q4_0, GgmlType::Q4_0, GgmlType::Q6K, GgmlType::Q4_0),
            (Preset::Q4_1, GgmlType::Q4_1, GgmlType::Q6K, GgmlType::Q4_1),
            (Preset::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0),
            (Preset::F16, GgmlType::F16, GgmlType::F16, GgmlType::F16),
        ] {
            let p = plan(&arch, preset, 32000);
            let ty = |name: &str| p.iter().find(|t| t.name == name).unwrap().ggml_type;
            assert_eq!(ty("token_embd.weight"), embd, "{preset:?}");
            assert_eq!(ty("output.weight"), out, "{preset:?}");
            assert_eq!(ty("blk.0.attn_v.weight"), mat, "{preset:?}");
            assert_eq!(ty("blk.0.ffn_down.weight"), mat, "{preset:?}");
            assert_eq!(ty("blk.0.ffn_norm.weight"), GgmlType::F32, "{preset:?}");
        }
    }

    #[test]
    fn generated_vocab_has_the_asked_size() {
        for n in [320, 32000, 49152] {
            let keys = synthetic_spm_vocab(n).unwrap();
            let MetaValue::Array(_, tokens) = &keys[1].1 else {
                panic!()
            };
            assert_eq!(tokens.len() as u64, n);
            let unique: std::collections::HashSet<_> =
                tokens.iter().map(|t| format!("{t:?}")).collect();
            assert_eq!(unique.len() as u64, n);
        }
    }
}
