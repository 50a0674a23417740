//! What the bench runs each variant on: the model shapes (`tinyllama`, `smollm2`, custom
//! `ROWSxKxN`), the inputs built for them, and the call closures the timing engine samples.
//!
//! Matmuls split their weight rows across a persistent thread pool (rayon; no thread is
//! spawned per call), each thread with its own `[n x rows_t]` output (`y_stride = rows_t`), as
//! `kernels::matmul` documents for a threaded caller. In `cold` mode a call reads the next of
//! several weight copies, together far larger than the last-level cache, so each call streams
//! its weights from DRAM as a decode step does; `hot` reuses one copy.

use super::timing::Call;
use super::variants::{self, Design, FamilyKind, Kernel, Variant};
use anyhow::{bail, Result};
use bytemuck::Zeroable;
use half::f16;
use kernels::attention::{self, AttentionDims};
use kernels::matmul::amx::{self, BlockQ4Kx16, BlockQ6Kx16};
use kernels::matmul::x8::{BlockQ4Kx8, BlockQ6Kx8};
use kernels::matmul::{self, x8, MatmulDims};
use kernels::mem::PageBuf;
use kernels::ops;
use kernels::quant::{
    self, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1,
    QuantBlock, QK_K,
};
use kernels::Isa;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::ThreadPool;
use std::hint::black_box;
use std::mem::size_of;
use std::ops::Range;

/// One thing to time, independent of the variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    /// `y[n x rows] = x[n x k] * w[rows x k]^T`.
    Matmul {
        shape: String,
        rows: usize,
        k: usize,
        n: usize,
    },
    /// Causal GQA attention of `n_q` query rows ending at position `kv_len - 1` (`n_q <= kv_len`).
    Attention {
        shape: String,
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        kv_len: usize,
        n_q: usize,
    },
    /// A per-layer op on one row of `len` values (RoPE: `len / 64` heads of 64).
    Op { shape: String, len: usize },
}

impl Workload {
    pub fn shape(&self) -> &str {
        match self {
            Workload::Matmul { shape, .. }
            | Workload::Attention { shape, .. }
            | Workload::Op { shape, .. } => shape,
        }
    }

    pub fn kind(&self) -> FamilyKind {
        match self {
            Workload::Matmul { .. } => FamilyKind::Matmul,
            Workload::Attention { .. } => FamilyKind::Attention,
            Workload::Op { .. } => FamilyKind::Op,
        }
    }

    /// The (rows, k, n) columns of a row.
    pub fn rkn(&self) -> (usize, usize, usize) {
        match *self {
            Workload::Matmul { rows, k, n, .. } => (rows, k, n),
            Workload::Attention {
                head_dim,
                kv_len,
                n_q,
                ..
            } => (kv_len, head_dim, n_q),
            Workload::Op { len, .. } => (1, len, 1),
        }
    }

    fn attention_dims(&self) -> Option<(AttentionDims, usize)> {
        match *self {
            Workload::Attention {
                n_head,
                n_head_kv,
                head_dim,
                kv_len,
                n_q,
                ..
            } => Some((
                AttentionDims {
                    n_q,
                    n_head,
                    n_head_kv,
                    head_dim,
                    pos0: kv_len - n_q,
                },
                kv_len,
            )),
            _ => None,
        }
    }

    /// Distinct bytes one call of `variant` must move.
    pub fn bytes(&self, variant: &Variant) -> u64 {
        let kernel = variant.kernel;
        let b = match *self {
            Workload::Matmul { rows, k, n, .. } => {
                let w = rows * k / variants::weight_block(kernel) * weight_block_bytes(kernel);
                // The repacked layouts store the Q4_K scales unpacked (slightly more bytes);
                // the AMX layout widens Q6_K values to whole bytes.
                let panel = |bytes: usize, rows_per: usize| rows * k / QK_K * bytes / rows_per;
                let w = match (variant.design, kernel) {
                    (Design::Q8KX8, Kernel::MatmulQ4K) => panel(size_of::<BlockQ4Kx8>(), 8),
                    (Design::Q8KX8, _) => panel(size_of::<BlockQ6Kx8>(), 8),
                    (Design::Q8KAmx, Kernel::MatmulQ4K) => panel(size_of::<BlockQ4Kx16>(), 16),
                    (Design::Q8KAmx, _) => panel(size_of::<BlockQ6Kx16>(), 16),
                    _ => w,
                };
                let x = match variant.design {
                    Design::Q8K | Design::Q8KX8 | Design::Q8KAmx => {
                        n * k / QK_K * size_of::<BlockQ8K>()
                    }
                    Design::Q8_0 => n * k / 32 * std::mem::size_of::<BlockQ8_0>(),
                    Design::Q8_1 => n * k / 32 * std::mem::size_of::<BlockQ8_1>(),
                    _ => n * k * 4,
                };
                w + x + n * rows * 4
            }
            Workload::Attention { .. } => {
                let (d, kv_len) = self.attention_dims().expect("attention");
                let elem = if variant.design == Design::FlashF16Kv {
                    2
                } else {
                    4
                };
                2 * d.q_len() * 4 + 2 * kv_len * d.kv_stride() * elem
            }
            Workload::Op { len, .. } => match kernel {
                Kernel::QuantizeQ8_0 => len * 4 + len / 32 * std::mem::size_of::<BlockQ8_0>(),
                Kernel::QuantizeQ8_1 => len * 4 + len / 32 * std::mem::size_of::<BlockQ8_1>(),
                Kernel::QuantizeQ8K => len * 4 + len / QK_K * std::mem::size_of::<BlockQ8K>(),
                // x in, weight, out / gate, up, out / y, x, y / x in and out plus cos and sin.
                Kernel::Rmsnorm | Kernel::Swiglu | Kernel::ResidualAdd => 3 * len * 4,
                Kernel::RopeAdjacent | Kernel::RopeNeox => 3 * len * 4,
                _ => 2 * len * 4,
            },
        };
        b as u64
    }

    /// Nominal arithmetic of one call (see [`crate::record::BenchRow`]): matmul `2 n k rows`;
    /// attention `4 head_dim` per (query row, head, visible position) for `q.k` and `p V`; the
    /// ops a small per-element count (the exp of softmax and SwiGLU counted as one).
    pub fn flops(&self, kernel: Kernel) -> u64 {
        let f = match *self {
            Workload::Matmul { rows, k, n, .. } => 2 * n * k * rows,
            Workload::Attention { .. } => {
                let (d, _) = self.attention_dims().expect("attention");
                let visible: usize = (0..d.n_q).map(|t| d.pos0 + t + 1).sum();
                4 * d.head_dim * d.n_head * visible
            }
            Workload::Op { len, .. } => {
                let per = match kernel {
                    Kernel::Rmsnorm => 4,
                    Kernel::RopeAdjacent | Kernel::RopeNeox => 3,
                    Kernel::Swiglu => 5,
                    Kernel::Softmax => 4,
                    // max |x|, scale, round (and the sum for Q8_1)
                    Kernel::QuantizeQ8_0 | Kernel::QuantizeQ8_1 => 3,
                    // max |x|, scale, round, and the 16-value sums
                    Kernel::QuantizeQ8K => 4,
                    _ => 1,
                };
                per * len
            }
        };
        f as u64
    }
}

/// Which shapes `--shapes` names.
pub fn parse_shapes(spec: &[String], ns: &[usize]) -> Result<Vec<Workload>> {
    let mut out = Vec::new();
    for s in spec {
        match s.as_str() {
            "tinyllama" => out.extend(model_shapes(&TINYLLAMA, ns)),
            "smollm2" => out.extend(model_shapes(&SMOLLM2, ns)),
            "all" => {
                out.extend(model_shapes(&TINYLLAMA, ns));
                out.extend(model_shapes(&SMOLLM2, ns));
            }
            custom => {
                let parts: Vec<&str> = custom.split('x').collect();
                let dims: Option<Vec<usize>> = parts.iter().map(|p| p.parse().ok()).collect();
                match dims.as_deref() {
                    Some(&[rows, k, n]) if rows > 0 && k > 0 && n > 0 => {
                        out.push(Workload::Matmul {
                            shape: "custom".into(),
                            rows,
                            k,
                            n,
                        })
                    }
                    _ => bail!(
                        "unknown shape set `{custom}`: use tinyllama, smollm2, all or ROWSxKxN (e.g. 2048x2048x1)"
                    ),
                }
            }
        }
    }
    Ok(out)
}

/// The sizes of a Llama-architecture model that set its kernel shapes.
pub struct ModelShapes {
    pub name: &'static str,
    pub hidden: usize,
    pub ffn: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub vocab: usize,
}

/// TinyLlama 1.1B: 2048 hidden, 5632 FFN, 32 query heads and 4 KV heads of 64, 32000 tokens.
pub const TINYLLAMA: ModelShapes = ModelShapes {
    name: "tinyllama",
    hidden: 2048,
    ffn: 5632,
    n_head: 32,
    n_head_kv: 4,
    head_dim: 64,
    vocab: 32000,
};

/// SmolLM2 135M: 576 hidden, 1536 FFN, 9 query heads and 3 KV heads of 64, 49152 tokens.
pub const SMOLLM2: ModelShapes = ModelShapes {
    name: "smollm2",
    hidden: 576,
    ffn: 1536,
    n_head: 9,
    n_head_kv: 3,
    head_dim: 64,
    vocab: 49152,
};

/// The default activation rows: decode, a small prefill chunk, a large one.
pub const DEFAULT_NS: [usize; 3] = [1, 40, 512];
/// Query rows of an attention prefill: the last chunk of a prompt of kv_len tokens, as large as
/// the matmuls' middle `n` (a whole 2048-token prefill in one call would take seconds per
/// sample on the scalar variant and say nothing a chunk does not).
pub const PREFILL_CHUNK: usize = 40;
/// The KV lengths attention runs at.
pub const KV_LENS: [usize; 3] = [128, 512, 2048];

fn model_shapes(m: &ModelShapes, ns: &[usize]) -> Vec<Workload> {
    let kv = m.n_head_kv * m.head_dim;
    let mats = [
        ("attn_q", m.hidden, m.hidden),
        ("attn_k", kv, m.hidden),
        ("ffn_up", m.ffn, m.hidden),
        ("ffn_down", m.hidden, m.ffn),
        ("output", m.vocab, m.hidden),
    ];
    let mut w = Vec::new();
    for &n in ns {
        for &(name, rows, k) in &mats {
            w.push(Workload::Matmul {
                shape: format!("{}.{name}", m.name),
                rows,
                k,
                n,
            });
        }
    }
    for kv_len in KV_LENS {
        for (mode, n_q) in [("decode", 1), ("prefill", PREFILL_CHUNK)] {
            w.push(Workload::Attention {
                shape: format!("{}.{mode}", m.name),
                n_head: m.n_head,
                n_head_kv: m.n_head_kv,
                head_dim: m.head_dim,
                kv_len,
                n_q,
            });
        }
    }
    for (name, len) in [("hidden", m.hidden), ("ffn", m.ffn)] {
        w.push(Workload::Op {
            shape: format!("{}.{name}", m.name),
            len,
        });
    }
    w
}

/// Bytes of one weight block of a matmul family.
fn weight_block_bytes(kernel: Kernel) -> usize {
    match kernel {
        Kernel::MatmulQ4K => std::mem::size_of::<BlockQ4K>(),
        Kernel::MatmulQ6K => std::mem::size_of::<BlockQ6K>(),
        Kernel::MatmulQ8_0 => std::mem::size_of::<BlockQ8_0>(),
        Kernel::MatmulQ4_0 => std::mem::size_of::<BlockQ4_0>(),
        Kernel::MatmulQ5_0 => std::mem::size_of::<BlockQ5_0>(),
        Kernel::MatmulQ4_1 => std::mem::size_of::<BlockQ4_1>(),
        Kernel::MatmulF16 => 2,
        _ => 0,
    }
}

/// Why `kernel` cannot run `workload`, if it cannot.
pub fn unsupported(kernel: Kernel, workload: &Workload) -> Option<String> {
    let block = variants::weight_block(kernel);
    match (variants::kind(kernel), workload) {
        (kind, w) if kind != w.kind() => Some("shape of another family".into()),
        (FamilyKind::Matmul, Workload::Matmul { k, .. }) if k % block != 0 => {
            Some(format!("k = {k} is not a multiple of {block}"))
        }
        (FamilyKind::Matmul, Workload::Matmul { rows, .. })
            if matches!(kernel, Kernel::MatmulQ4K | Kernel::MatmulQ6K) && rows % amx::ROWS != 0 =>
        {
            // The repacked variants need whole panels (8 rows x8, 16 rows AMX); the family is
            // benched on such shapes.
            Some(format!(
                "rows = {rows} is not a multiple of 16 (the q8k-amx panels)"
            ))
        }
        (FamilyKind::Op, Workload::Op { len, .. }) if len % block != 0 => {
            Some(format!("{len} values are not whole blocks of {block}"))
        }
        (FamilyKind::Op, Workload::Op { len, .. })
            if matches!(kernel, Kernel::RopeAdjacent | Kernel::RopeNeox) && len % 64 != 0 =>
        {
            Some(format!("{len} values are not whole heads of 64"))
        }
        _ => None,
    }
}

/// Everything a cold matmul call may read, built once per (family, workload, cache mode) and
/// shared by all variants of the group.
pub struct GroupInputs {
    inner: Inputs,
}

enum Inputs {
    Q4K(MatmulInputs<BlockQ4K>),
    Q6K(MatmulInputs<BlockQ6K>),
    Q8_0(MatmulInputs<BlockQ8_0>),
    Q4_0(MatmulInputs<BlockQ4_0>),
    Q5_0(MatmulInputs<BlockQ5_0>),
    Q4_1(MatmulInputs<BlockQ4_1>),
    F16(MatmulInputs<f16>),
    Attention(AttentionInputs),
    Op(OpInputs),
}

struct MatmulInputs<B> {
    /// Weight copies: one when hot, enough to exceed the cache several times when cold.
    copies: Vec<Vec<B>>,
    x: Vec<f32>,
    /// The activations in each quantized form a design takes (empty where `k` does not fit
    /// the format's block).
    x8k: Vec<BlockQ8K>,
    x8_0: Vec<BlockQ8_0>,
    x8_1: Vec<BlockQ8_1>,
    dims: MatmulDims,
}

struct AttentionInputs {
    dims: AttentionDims,
    q: Vec<f32>,
    k32: Vec<f32>,
    v32: Vec<f32>,
    k16: Vec<f16>,
    v16: Vec<f16>,
}

struct OpInputs {
    a: Vec<f32>,
    b: Vec<f32>,
    weight: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

fn gaussian(n: usize, scale: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut *rng);
            scale * v as f32
        })
        .collect()
}

/// Quantizes a band of Gaussian rows and tiles it over the whole matrix: the contents are
/// realistic and the scale search does not have to run over 65 M weights.
fn weights<B: QuantBlock>(rows: usize, k: usize, rng: &mut StdRng) -> Vec<B> {
    let band = rows.min(64);
    let src = gaussian(band * k, 1.0, rng);
    let mut blocks = vec![B::zeroed(); band * k / B::VALUES];
    B::quantize_row(&src, &mut blocks);
    blocks
        .iter()
        .copied()
        .cycle()
        .take(rows * k / B::VALUES)
        .collect()
}

fn matmul_inputs<B: QuantBlock>(
    rows: usize,
    k: usize,
    n: usize,
    cold_bytes: Option<usize>,
    rng: &mut StdRng,
) -> MatmulInputs<B> {
    let w: Vec<B> = weights(rows, k, rng);
    let size = std::mem::size_of_val(w.as_slice()).max(1);
    let copies = cold_bytes.map_or(1, |total| total.div_ceil(size).max(2));
    let x = gaussian(n * k, 1.0, rng);
    let mut x8k = Vec::new();
    if k.is_multiple_of(QK_K) {
        x8k = vec![BlockQ8K::default(); n * k / QK_K];
        for (row, out) in x.chunks(k).zip(x8k.chunks_mut(k / QK_K)) {
            BlockQ8K::quantize_row(row, out);
        }
    }
    let (mut x8_0, mut x8_1) = (Vec::new(), Vec::new());
    if k.is_multiple_of(32) {
        x8_0 = vec![BlockQ8_0::zeroed(); n * k / 32];
        x8_1 = vec![BlockQ8_1::zeroed(); n * k / 32];
        matmul::quantize_q8_0(Isa::Scalar, &x, &mut x8_0);
        matmul::quantize_q8_1(Isa::Scalar, &x, &mut x8_1);
    }
    MatmulInputs {
        copies: (0..copies).map(|_| w.clone()).collect(),
        x,
        x8k,
        x8_0,
        x8_1,
        dims: MatmulDims::new(n, k, rows),
    }
}

impl GroupInputs {
    /// Builds the inputs of `workload` for `family`. `cold_bytes`: total size of the weight
    /// copies to rotate through (`None` = hot, one copy).
    pub fn new(kernel: Kernel, workload: &Workload, cold_bytes: Option<usize>, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let inner = match (kernel, workload) {
            (kernel, &Workload::Matmul { rows, k, n, .. }) if kernel.is_matmul() => {
                let r = &mut rng;
                match kernel {
                    Kernel::MatmulQ4K => Inputs::Q4K(matmul_inputs(rows, k, n, cold_bytes, r)),
                    Kernel::MatmulQ6K => Inputs::Q6K(matmul_inputs(rows, k, n, cold_bytes, r)),
                    Kernel::MatmulQ8_0 => Inputs::Q8_0(matmul_inputs(rows, k, n, cold_bytes, r)),
                    Kernel::MatmulQ4_0 => Inputs::Q4_0(matmul_inputs(rows, k, n, cold_bytes, r)),
                    Kernel::MatmulQ5_0 => Inputs::Q5_0(matmul_inputs(rows, k, n, cold_bytes, r)),
                    Kernel::MatmulQ4_1 => Inputs::Q4_1(matmul_inputs(rows, k, n, cold_bytes, r)),
                    _ => Inputs::F16(matmul_inputs(rows, k, n, cold_bytes, r)),
                }
            }
            (Kernel::Attention, w @ Workload::Attention { .. }) => {
                let (dims, kv_len) = w.attention_dims().expect("attention");
                let kv = kv_len * dims.kv_stride();
                let k32 = gaussian(kv, 1.0, &mut rng);
                let v32 = gaussian(kv, 1.0, &mut rng);
                Inputs::Attention(AttentionInputs {
                    dims,
                    q: gaussian(dims.q_len(), 1.0, &mut rng),
                    k16: k32.iter().map(|&v| f16::from_f32(v)).collect(),
                    v16: v32.iter().map(|&v| f16::from_f32(v)).collect(),
                    k32,
                    v32,
                })
            }
            (_, &Workload::Op { len, .. }) => {
                let (cos, sin): (Vec<f32>, Vec<f32>) = (0..32)
                    .map(|i| {
                        let t = 1000.0 * 10000f64.powf(-(i as f64) / 32.0);
                        (t.cos() as f32, t.sin() as f32)
                    })
                    .unzip();
                Inputs::Op(OpInputs {
                    a: gaussian(len, 1.0, &mut rng),
                    b: gaussian(len, 1e-6, &mut rng),
                    weight: gaussian(len, 1.0, &mut rng),
                    cos,
                    sin,
                })
            }
            _ => panic!("{kernel:?} cannot run {workload:?} (filter with `unsupported` first)"),
        };
        GroupInputs { inner }
    }

    /// Bytes of weight copies held (what `cold` rotates through).
    pub fn weight_copies(&self) -> usize {
        match &self.inner {
            Inputs::Q4K(m) => m.copies.len(),
            Inputs::Q6K(m) => m.copies.len(),
            Inputs::Q8_0(m) => m.copies.len(),
            Inputs::Q4_0(m) => m.copies.len(),
            Inputs::Q5_0(m) => m.copies.len(),
            Inputs::Q4_1(m) => m.copies.len(),
            Inputs::F16(m) => m.copies.len(),
            _ => 1,
        }
    }

    /// The call of `variant` with `threads` threads (`pool` holds them when `threads > 1`).
    pub fn call<'a>(
        &'a self,
        variant: Variant,
        threads: usize,
        pool: Option<&'a ThreadPool>,
    ) -> Call<'a> {
        let isa = variant.isa;
        // One arm per (weight format, design): the kernel and the activations it takes.
        macro_rules! mm {
            ($m:expr, $x:ident, $f:path) => {{
                let m = $m;
                matmul_call(m, threads, pool, move |w, y, d| $f(isa, &m.$x, w, y, d))
            }};
        }
        match (&self.inner, variant.design) {
            (Inputs::Q4K(m), Design::Q8KX8) => panel_call(
                m,
                (threads, x8::ROWS),
                pool,
                move |w, rows| {
                    x8::repack_q4k(w, rows, 1, isa).expect("x8 bench shapes have rows % 8 == 0")
                },
                move |x, w, y, d| x8::matmul_q4kx8_q8k(isa, x, w, y, d),
            ),
            (Inputs::Q6K(m), Design::Q8KX8) => panel_call(
                m,
                (threads, x8::ROWS),
                pool,
                |w, rows| x8::repack_q6k(w, rows, 1).expect("x8 bench shapes have rows % 8 == 0"),
                move |x, w, y, d| x8::matmul_q6kx8_q8k(isa, x, w, y, d),
            ),
            (Inputs::Q4K(m), Design::Q8KAmx) => panel_call(
                m,
                (threads, amx::ROWS),
                pool,
                |w, rows| amx::repack_q4k(w, rows, 1).expect("bench shapes have rows % 16 == 0"),
                amx::matmul_q4kx16_q8k,
            ),
            (Inputs::Q6K(m), Design::Q8KAmx) => panel_call(
                m,
                (threads, amx::ROWS),
                pool,
                |w, rows| amx::repack_q6k(w, rows, 1).expect("bench shapes have rows % 16 == 0"),
                amx::matmul_q6kx16_q8k,
            ),
            (Inputs::Q4K(m), Design::Q8K) => mm!(m, x8k, matmul::matmul_q4k_q8k),
            (Inputs::Q4K(m), _) => mm!(m, x, matmul::matmul_q4k_f32),
            (Inputs::Q6K(m), Design::Q8K) => mm!(m, x8k, matmul::matmul_q6k_q8k),
            (Inputs::Q6K(m), _) => mm!(m, x, matmul::matmul_q6k_f32),
            (Inputs::Q8_0(m), Design::Q8_0) => mm!(m, x8_0, matmul::matmul_q8_0_q8_0),
            (Inputs::Q8_0(m), _) => mm!(m, x, matmul::matmul_q8_0_f32),
            (Inputs::Q4_0(m), Design::Q8_0) => mm!(m, x8_0, matmul::matmul_q4_0_q8_0),
            (Inputs::Q4_0(m), _) => mm!(m, x, matmul::matmul_q4_0_f32),
            (Inputs::Q5_0(m), Design::Q8_0) => mm!(m, x8_0, matmul::matmul_q5_0_q8_0),
            (Inputs::Q5_0(m), _) => mm!(m, x, matmul::matmul_q5_0_f32),
            (Inputs::Q4_1(m), Design::Q8_1) => mm!(m, x8_1, matmul::matmul_q4_1_q8_1),
            (Inputs::Q4_1(m), _) => mm!(m, x, matmul::matmul_q4_1_f32),
            (Inputs::F16(m), _) => mm!(m, x, matmul::matmul_f16_f32),
            (Inputs::Attention(a), design) => {
                let d = a.dims;
                let mut out = vec![0f32; d.q_len()];
                let mut scratch = vec![0f32; attention::scratch_len(&d)];
                let f16_kv = design == Design::FlashF16Kv;
                Box::new(move || {
                    if f16_kv {
                        attention::flash_attention(
                            isa,
                            &a.q,
                            &a.k16,
                            &a.v16,
                            &mut out,
                            &mut scratch,
                            d,
                            0..d.n_head,
                        );
                    } else {
                        attention::flash_attention(
                            isa,
                            &a.q,
                            &a.k32,
                            &a.v32,
                            &mut out,
                            &mut scratch,
                            d,
                            0..d.n_head,
                        );
                    }
                    black_box(&mut out);
                })
            }
            (Inputs::Op(o), _) => {
                let mut x = o.a.clone();
                let mut out = vec![0f32; o.a.len()];
                let mut q8_0 = vec![BlockQ8_0::zeroed(); o.a.len() / 32];
                let mut q8_1 = vec![BlockQ8_1::zeroed(); o.a.len() / 32];
                let mut q8k = vec![BlockQ8K::zeroed(); o.a.len() / QK_K];
                let kernel = variant.kernel;
                Box::new(move || {
                    match kernel {
                        Kernel::Rmsnorm => ops::rmsnorm(isa, &o.a, &o.weight, 1e-5, &mut out),
                        Kernel::RopeAdjacent => ops::rope_adjacent(isa, &mut x, 64, &o.cos, &o.sin),
                        Kernel::RopeNeox => ops::rope_neox(isa, &mut x, 64, &o.cos, &o.sin),
                        Kernel::Swiglu => ops::swiglu(isa, &o.a, &o.weight, &mut out),
                        // Softmax of a softmax is as costly as the first; the values stay finite.
                        Kernel::Softmax => ops::softmax(isa, &mut x),
                        // `b` is ~1e-6: y drifts by far less than its size over any run.
                        Kernel::ResidualAdd => ops::residual_add(isa, &mut x, &o.b),
                        Kernel::QuantizeQ8_0 => matmul::quantize_q8_0(isa, &o.a, &mut q8_0),
                        Kernel::QuantizeQ8_1 => matmul::quantize_q8_1(isa, &o.a, &mut q8_1),
                        Kernel::QuantizeQ8K => quant::quantize_q8k(isa, &o.a, &mut q8k),
                        // exp of exp overflows within four calls: each call starts from `a`
                        // again (a copy within L1, small beside the exponentials).
                        Kernel::Exp => {
                            x.copy_from_slice(&o.a);
                            ops::exp_in_place(isa, &mut x)
                        }
                        _ => unreachable!("op inputs for a non-op family"),
                    }
                    black_box((&mut x, &mut out, &mut q8_0, &mut q8_1, &mut q8k));
                })
            }
        }
    }
}

/// Weight rows per thread, in multiples of 16 (every kernel's row tile divides it).
fn row_split(rows: usize, threads: usize) -> Vec<Range<usize>> {
    let per = rows.div_ceil(threads).div_ceil(16) * 16;
    (0..threads)
        .map(|t| (t * per).min(rows)..((t + 1) * per).min(rows))
        .filter(|r| !r.is_empty())
        .collect()
}

fn matmul_call<'a, B: QuantBlock + Sync>(
    m: &'a MatmulInputs<B>,
    threads: usize,
    pool: Option<&'a ThreadPool>,
    kernel: impl Fn(&[B], &mut [f32], MatmulDims) + Send + Sync + Copy + 'a,
) -> Call<'a> {
    let MatmulDims { n, k, rows, .. } = m.dims;
    let bpr = k / B::VALUES;
    let split = row_split(rows, threads.max(1));
    let mut ys: Vec<Vec<f32>> = split.iter().map(|r| vec![0f32; n * r.len()]).collect();
    let mut next = 0usize;
    Box::new(move || {
        let w = &m.copies[next];
        next = (next + 1) % m.copies.len();
        match pool {
            Some(pool) if split.len() > 1 => pool.scope(|s| {
                for (r, y) in split.iter().zip(ys.iter_mut()) {
                    let w = &w[r.start * bpr..r.end * bpr];
                    let d = MatmulDims::new(n, k, r.len());
                    s.spawn(move |_| kernel(w, y, d));
                }
            }),
            _ => {
                for (r, y) in split.iter().zip(ys.iter_mut()) {
                    kernel(
                        &w[r.start * bpr..r.end * bpr],
                        y,
                        MatmulDims::new(n, k, r.len()),
                    );
                }
            }
        }
        black_box(&mut ys);
    })
}

/// [`matmul_call`] for the x8 layout: every weight copy is repacked once here (outside the
/// timed call) and each thread takes whole 8-row panels; the threads' parts are
/// [`row_split`]'s (multiples of 16 rows), so `rows % 8 == 0` is all a shape needs.
/// The call of a repacked design: `repack` each weight copy into panels of `panel` rows, then
/// split the rows across `threads` at panel boundaries.
fn panel_call<'a, B: QuantBlock + Sync, P: bytemuck::Pod + Send + Sync + 'a>(
    m: &'a MatmulInputs<B>,
    (threads, panel): (usize, usize),
    pool: Option<&'a ThreadPool>,
    repack: impl Fn(&[B], usize) -> PageBuf<P>,
    kernel: impl Fn(&[BlockQ8K], &[P], &mut [f32], MatmulDims) + Send + Sync + Copy + 'a,
) -> Call<'a> {
    let MatmulDims { n, k, rows, .. } = m.dims;
    let per_panel = k / QK_K;
    let copies: Vec<PageBuf<P>> = m.copies.iter().map(|w| repack(w, rows)).collect();
    let split = row_split(rows, threads.max(1));
    let mut ys: Vec<Vec<f32>> = split.iter().map(|r| vec![0f32; n * r.len()]).collect();
    let mut next = 0usize;
    let x = &m.x8k;
    Box::new(move || {
        let w = &copies[next];
        next = (next + 1) % copies.len();
        let part = |r: &Range<usize>| &w[r.start / panel * per_panel..r.end / panel * per_panel];
        match pool {
            Some(pool) if split.len() > 1 => pool.scope(|s| {
                for (r, y) in split.iter().zip(ys.iter_mut()) {
                    let (w, d) = (part(r), MatmulDims::new(n, k, r.len()));
                    s.spawn(move |_| kernel(x, w, y, d));
                }
            }),
            _ => {
                for (r, y) in split.iter().zip(ys.iter_mut()) {
                    kernel(x, part(r), y, MatmulDims::new(n, k, r.len()));
                }
            }
        }
        black_box(&mut ys);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_covers_every_row_once() {
        for (rows, t) in [(256, 2), (2048, 3), (5, 2), (17, 4), (32000, 2)] {
            let s = row_split(rows, t);
            assert_eq!(s.first().unwrap().start, 0);
            assert_eq!(s.last().unwrap().end, rows);
            assert!(s.windows(2).all(|w| w[0].end == w[1].start));
        }
    }

    #[test]
    fn shapes_parse_and_refuse_nonsense() {
        let w = parse_shapes(&["tinyllama".into()], &DEFAULT_NS).unwrap();
        assert_eq!(
            w.iter()
                .filter(|w| matches!(w, Workload::Matmul { .. }))
                .count(),
            15
        );
        assert_eq!(
            parse_shapes(&["64x256x2".into()], &[1]).unwrap()[0].rkn(),
            (64, 256, 2)
        );
        assert!(parse_shapes(&["64x256".into()], &[1]).is_err());
        assert!(parse_shapes(&["huge".into()], &[1]).is_err());
    }

    /// Every family `bench` times builds and runs a call of every variant this CPU runs on a
    /// model shape (a family the call table misses would panic mid-sweep).
    #[test]
    fn every_benched_variant_runs_once() {
        let shapes = parse_shapes(&["tinyllama".into()], &[1]).unwrap();
        for kernel in Kernel::ALL
            .into_iter()
            .filter(|k| crate::bench::is_benched(*k))
        {
            let w = shapes
                .iter()
                .find(|w| unsupported(kernel, w).is_none())
                .unwrap_or_else(|| panic!("{kernel}: no tinyllama shape"));
            let inputs = GroupInputs::new(kernel, w, None, 1);
            for v in variants::variants_of(kernel) {
                if v.unavailable_reason().is_none() {
                    let mut call = inputs.call(v, 1, None);
                    call();
                }
            }
        }
    }

    /// A threaded call computes what a one-thread call does (the split is right).
    #[test]
    fn threaded_matmul_matches_one_thread() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let m: MatmulInputs<BlockQ4K> =
            matmul_inputs(40, 512, 3, None, &mut StdRng::seed_from_u64(1));
        let mut full = vec![0f32; 3 * 40];
        matmul::matmul_q4k_q8k(Isa::Scalar, &m.x8k, &m.copies[0], &mut full, m.dims);
        let split = row_split(40, 2);
        let bpr = 2;
        for r in split {
            let mut y = vec![0f32; 3 * r.len()];
            pool.install(|| {
                matmul::matmul_q4k_q8k(
                    Isa::Scalar,
                    &m.x8k,
                    &m.copies[0][r.start * bpr..r.end * bpr],
                    &mut y,
                    MatmulDims::new(3, 512, r.len()),
                )
            });
            for t in 0..3 {
                assert_eq!(
                    y[t * r.len()..(t + 1) * r.len()],
                    full[t * 40 + r.start..t * 40 + r.end]
                );
            }
        }
    }
}
