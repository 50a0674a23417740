//! The model's tensors, borrowed from the file mapping. Each matrix is a [`Matrix`], one
//! variant per tensor type that has a matmul kernel, so a new kernel family is one more variant
//! here and in [`Matrix::matmul_rows`]. Two exceptions to borrowing, both made at load for the
//! x86 `q8` design ([`super::Model::load`]): Q4_K and Q6_K matrices with a multiple of 8 rows
//! are repacked into the 8-row interleaved layout of [`x8`] ([`Matrix::pack_x8`]), and the
//! matrices decode still reads in the file's layout are copied into huge-page memory
//! ([`Matrix::copy_blocks`]). On CPUs with AMX, the Q4_K and Q6_K matrices also get a copy in
//! the 16-row panels of [`amx`] for prompts ([`Matrix::pack_amx`]). The x8 and AMX kernels are
//! bit-identical to the others and a copy holds the same bytes, so which path runs never
//! changes a result.

use super::{Config, Design, ModelError};
use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::matmul::amx::{self, BlockQ4Kx16, BlockQ6Kx16};
use crate::matmul::x8::{self, BlockQ4Kx8, BlockQ6Kx8};
use crate::matmul::{self, MatmulDims};
use crate::mem::PageBuf;
use crate::quant::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, QuantBlock,
};
use crate::Isa;
use half::f16;
use std::sync::Arc;

/// The activation format a matrix's kernel reads in a design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActFormat {
    F32,
    Q8K,
    Q8_0,
    Q8_1,
}

/// Blocks of a quantized matrix, borrowed from the map (see [`Matrix::copy`] for a copy of them).
#[derive(Clone, Copy, Debug)]
pub enum Blocks<'a> {
    Q4K(&'a [BlockQ4K]),
    Q6K(&'a [BlockQ6K]),
    Q8_0(&'a [BlockQ8_0]),
    Q4_0(&'a [BlockQ4_0]),
    Q5_0(&'a [BlockQ5_0]),
    Q4_1(&'a [BlockQ4_1]),
    F16(&'a [f16]),
}

impl<'a> Blocks<'a> {
    /// The blocks' bytes (in the file, for blocks borrowed from it).
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Blocks::Q4K(b) => bytemuck::cast_slice(b),
            Blocks::Q6K(b) => bytemuck::cast_slice(b),
            Blocks::Q8_0(b) => bytemuck::cast_slice(b),
            Blocks::Q4_0(b) => bytemuck::cast_slice(b),
            Blocks::Q5_0(b) => bytemuck::cast_slice(b),
            Blocks::Q4_1(b) => bytemuck::cast_slice(b),
            Blocks::F16(b) => bytemuck::cast_slice(b),
        }
    }
}

/// A matrix's blocks repacked for the x8 kernels: owned, `rows / 8 * k/256` blocks.
#[derive(Debug)]
pub enum Packed {
    /// Q4_K panels with their `qs` interleave (the ISA they were packed for decides it).
    Q4K(PageBuf<BlockQ4Kx8>, x8::Interleave),
    Q6K(PageBuf<BlockQ6Kx8>),
}

/// A matrix's blocks repacked for the AMX kernels: owned, `rows / 16 * k/256` blocks.
#[derive(Debug)]
pub enum PackedAmx {
    Q4K(PageBuf<BlockQ4Kx16>),
    Q6K(PageBuf<BlockQ6Kx16>),
}

/// A weight matrix `[rows x k]` (GGUF dims `[k, rows]`).
#[derive(Clone, Debug)]
pub struct Matrix<'a> {
    pub name: &'a str,
    pub rows: usize,
    pub k: usize,
    pub blocks: Blocks<'a>,
    /// The same weights in the x8 layout, used by `matmul_rows` for the `q8` design on the ISAs
    /// [`x8::runs_on`] admits. `blocks` stays valid (the other ISAs and designs read it, or
    /// its `copy`).
    pub packed: Option<Arc<Packed>>,
    /// The fewest activation rows that take `packed`: 1 when the original blocks were released
    /// at load, 2 when decode reads them (or their `copy`; see [`Matrix::pack_x8`]).
    pub packed_min_n: usize,
    /// The same weights in the AMX layout, used by `matmul_rows` for the `q8` design on avx512
    /// when AMX is available and the call has at least `amx_min_n` activation rows.
    pub amx: Option<Arc<PackedAmx>>,
    /// The fewest activation rows that take `amx` (see [`super::AMX_MIN_N`]).
    pub amx_min_n: usize,
    /// `blocks` copied into huge-page memory ([`Matrix::copy_blocks`]); the row-major paths read
    /// it in their place (same bytes).
    pub copy: Option<Arc<PageBuf<u8>>>,
}

/// The activations of one matmul input: f32 always, quantized forms when a kernel needs them.
#[derive(Clone, Copy)]
pub struct Input<'b> {
    pub n: usize,
    pub k: usize,
    /// `n * k` values.
    pub f32: &'b [f32],
    /// `n * k/256` blocks, or empty when no kernel reads Q8_K.
    pub q8k: &'b [BlockQ8K],
    /// `n * k/32` blocks, or empty when no kernel reads Q8_0.
    pub q8_0: &'b [BlockQ8_0],
    /// `n * k/32` blocks, or empty when no kernel reads Q8_1.
    pub q8_1: &'b [BlockQ8_1],
}

impl<'a> Matrix<'a> {
    /// The activation format this matrix's kernel takes in `design`.
    pub fn act_format(&self, design: Design) -> ActFormat {
        match (design, self.blocks) {
            (Design::F32, _) | (Design::Int8, Blocks::F16(_)) => ActFormat::F32,
            (Design::Int8, Blocks::Q4K(_) | Blocks::Q6K(_)) => ActFormat::Q8K,
            (Design::Int8, Blocks::Q8_0(_) | Blocks::Q4_0(_) | Blocks::Q5_0(_)) => ActFormat::Q8_0,
            (Design::Int8, Blocks::Q4_1(_)) => ActFormat::Q8_1,
        }
    }

    /// `y[t][r - rows.start] = x[t] . w[r]` for `r` in `rows`: `y` is `[n x y_stride]`.
    ///
    /// # Panics
    /// On shapes that do not fit (a caller bug) or an ISA the CPU lacks.
    pub fn matmul_rows(
        &self,
        isa: Isa,
        design: Design,
        x: &Input,
        rows: std::ops::Range<usize>,
        y: &mut [f32],
        y_stride: usize,
    ) {
        assert_eq!(x.k, self.k, "{}: input width", self.name);
        let dims = MatmulDims {
            n: x.n,
            k: self.k,
            rows: rows.len(),
            y_stride,
        };
        if rows.is_empty() || x.n == 0 {
            return;
        }
        if let Some(packed) = self.amx.as_ref().filter(|_| x.n >= self.amx_min_n) {
            let r16 = amx::ROWS;
            let aligned = rows.start.is_multiple_of(r16) && rows.end.is_multiple_of(r16);
            if design == Design::Int8 && isa == Isa::Avx512 && aligned && amx::available() {
                let nb = self.k / crate::quant::QK_K;
                let panels = rows.start / r16 * nb..rows.end / r16 * nb;
                match &**packed {
                    PackedAmx::Q4K(w) => amx::matmul_q4kx16_q8k(x.q8k, &w[panels], y, dims),
                    PackedAmx::Q6K(w) => amx::matmul_q6kx16_q8k(x.q8k, &w[panels], y, dims),
                }
                return;
            }
        }
        if let Some(packed) = self.packed.as_ref().filter(|_| x.n >= self.packed_min_n) {
            let r8 = x8::ROWS;
            let aligned = rows.start.is_multiple_of(r8) && rows.end.is_multiple_of(r8);
            // Row ranges off the 8-row panels (no caller of the forward pass makes them) take
            // the original blocks: same bits, slower.
            // So do sessions of an ISA whose Q4_K interleave differs from the one packed.
            let layout_fits = match &**packed {
                Packed::Q4K(_, il) => *il == x8::Interleave::q4k(isa),
                Packed::Q6K(_) => true,
            };
            if design == Design::Int8 && x8::runs_on(isa) && aligned && layout_fits {
                let nb = self.k / crate::quant::QK_K;
                let panels = rows.start / r8 * nb..rows.end / r8 * nb;
                match &**packed {
                    Packed::Q4K(w, _) => x8::matmul_q4kx8_q8k(isa, x.q8k, &w[panels], y, dims),
                    Packed::Q6K(w) => x8::matmul_q6kx8_q8k(isa, x.q8k, &w[panels], y, dims),
                }
                return;
            }
        }
        // Weight rows `rows` of a matrix of `B` blocks.
        fn sub<'w, B: QuantBlock>(w: &'w [B], k: usize, rows: &std::ops::Range<usize>) -> &'w [B] {
            let per_row = k / B::VALUES;
            &w[rows.start * per_row..rows.end * per_row]
        }
        let (k, fmt) = (self.k, self.act_format(design));
        use ActFormat as A;
        match (self.row_blocks(), fmt) {
            (Blocks::Q4K(w), A::F32) => {
                matmul::matmul_q4k_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q4K(w), A::Q8K) => {
                matmul::matmul_q4k_q8k(isa, x.q8k, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q6K(w), A::F32) => {
                matmul::matmul_q6k_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q6K(w), A::Q8K) => {
                matmul::matmul_q6k_q8k(isa, x.q8k, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q8_0(w), A::F32) => {
                matmul::matmul_q8_0_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q8_0(w), A::Q8_0) => {
                matmul::matmul_q8_0_q8_0(isa, x.q8_0, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q4_0(w), A::F32) => {
                matmul::matmul_q4_0_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q4_0(w), A::Q8_0) => {
                matmul::matmul_q4_0_q8_0(isa, x.q8_0, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q5_0(w), A::F32) => {
                matmul::matmul_q5_0_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q5_0(w), A::Q8_0) => {
                matmul::matmul_q5_0_q8_0(isa, x.q8_0, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q4_1(w), A::F32) => {
                matmul::matmul_q4_1_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (Blocks::Q4_1(w), A::Q8_1) => {
                matmul::matmul_q4_1_q8_1(isa, x.q8_1, sub(w, k, &rows), y, dims)
            }
            (Blocks::F16(w), A::F32) => {
                matmul::matmul_f16_f32(isa, x.f32, sub(w, k, &rows), y, dims)
            }
            (b, f) => unreachable!("act_format gives no {f:?} for {b:?}"),
        }
    }

    fn from_tensor(t: &TensorInfo<'a>, k: usize, rows: usize) -> Result<Matrix<'a>, ModelError> {
        check_dims(t, &[k, rows])?;
        let blocks = match t.ggml_type {
            GgmlType::Q4K => Blocks::Q4K(cast(t)?),
            GgmlType::Q6K => Blocks::Q6K(cast(t)?),
            GgmlType::Q8_0 => Blocks::Q8_0(cast(t)?),
            GgmlType::Q4_0 => Blocks::Q4_0(cast(t)?),
            GgmlType::Q5_0 => Blocks::Q5_0(cast(t)?),
            GgmlType::Q4_1 => Blocks::Q4_1(cast(t)?),
            // The F16 kernel (and its activation layout) works in 32-value steps.
            GgmlType::F16 if k.is_multiple_of(32) => Blocks::F16(cast(t)?),
            other => {
                return Err(ModelError::UnsupportedTensorType {
                    name: t.name.to_string(),
                    ty: other.name(),
                    supported: MATRIX_TYPES,
                })
            }
        };
        Ok(Matrix {
            name: t.name,
            rows,
            k,
            blocks,
            packed: None,
            packed_min_n: 1,
            amx: None,
            amx_min_n: usize::MAX,
            copy: None,
        })
    }

    /// The row-major blocks: the huge-page copy when one was made, else the file's.
    fn row_blocks(&self) -> Blocks<'_> {
        let Some(c) = &self.copy else {
            return self.blocks;
        };
        let c: &[u8] = c;
        // The copy is page aligned and as long as `blocks`, so these casts cannot fail.
        match self.blocks {
            Blocks::Q4K(_) => Blocks::Q4K(bytemuck::cast_slice(c)),
            Blocks::Q6K(_) => Blocks::Q6K(bytemuck::cast_slice(c)),
            Blocks::Q8_0(_) => Blocks::Q8_0(bytemuck::cast_slice(c)),
            Blocks::Q4_0(_) => Blocks::Q4_0(bytemuck::cast_slice(c)),
            Blocks::Q5_0(_) => Blocks::Q5_0(bytemuck::cast_slice(c)),
            Blocks::Q4_1(_) => Blocks::Q4_1(bytemuck::cast_slice(c)),
            Blocks::F16(_) => Blocks::F16(bytemuck::cast_slice(c)),
        }
    }

    /// Whether decode (`n = 1`) reads the row-major blocks rather than an x8 repack.
    pub fn decode_reads_rows(&self) -> bool {
        self.packed.is_none() || self.packed_min_n > 1
    }

    /// Copies the row-major blocks into a huge-page-advised buffer ([`PageBuf`]) that the
    /// row-major paths read from then on, and returns the file bytes they came from for the
    /// caller to release. `None` when a copy exists already or the memory cannot be mapped (the
    /// matrix then keeps reading the file's pages: same results).
    pub fn copy_blocks(&mut self) -> Option<&'a [u8]> {
        if self.copy.is_some() {
            return None;
        }
        let bytes = self.blocks.bytes();
        let mut buf = PageBuf::<u8>::zeroed(bytes.len()).ok()?;
        buf.copy_from_slice(bytes);
        self.copy = Some(Arc::new(buf));
        Some(bytes)
    }

    /// Adds a copy of a Q4_K or Q6_K matrix of a multiple of 16 rows in the AMX layout (up to
    /// `threads` threads), taken by calls of at least `min_n` activation rows. Whether it was
    /// made: not for other types or shapes, nor when the OS refuses the memory (same results,
    /// slower prompts).
    pub fn pack_amx(&mut self, threads: usize, min_n: usize) -> bool {
        if self.amx.is_some() || !self.rows.is_multiple_of(amx::ROWS) {
            return false;
        }
        let packed = match self.row_blocks() {
            Blocks::Q4K(w) => amx::repack_q4k(w, self.rows, threads).map(PackedAmx::Q4K),
            Blocks::Q6K(w) => amx::repack_q6k(w, self.rows, threads).map(PackedAmx::Q6K),
            _ => return false,
        };
        let Ok(packed) = packed else {
            return false;
        };
        self.amx = Some(Arc::new(packed));
        self.amx_min_n = min_n;
        true
    }

    /// Repacks a Q4_K matrix (and a Q6_K one if `q6k`) of a multiple of 8 rows into the x8
    /// layout of `isa` (up to `threads` threads) and returns the bytes of the original blocks,
    /// which the fast path no longer reads. Other matrices stay as they are (`None`).
    pub fn pack_x8(&mut self, isa: Isa, threads: usize, q6k: bool) -> Option<&'a [u8]> {
        if self.packed.is_some() || !self.rows.is_multiple_of(x8::ROWS) {
            return None;
        }
        // The shapes were checked at load, so repacking fails only when the OS refuses the
        // memory; the matrix then stays unpacked (same results, slower prompts).
        let packed = match self.blocks {
            Blocks::Q4K(w) => Packed::Q4K(
                x8::repack_q4k(w, self.rows, threads, isa).ok()?,
                x8::Interleave::q4k(isa),
            ),
            // Q6_K only when the caller asks: see `Q6kLayers` in `model` for the layers'
            // matrices; the output matrix, read at n = 1, stays in the file's layout.
            Blocks::Q6K(w) if q6k => Packed::Q6K(x8::repack_q6k(w, self.rows, threads).ok()?),
            _ => return None,
        };
        self.packed = Some(Arc::new(packed));
        Some(self.blocks.bytes())
    }
}

/// The tensor types [`Matrix`] runs.
pub const MATRIX_TYPES: &str = "Q4_K, Q6_K, Q8_0, Q4_0, Q5_0, Q4_1, F16 (rows a multiple of 32)";

/// The token embedding: any block format the quant module decodes; rows are dequantized on
/// lookup.
#[derive(Clone, Debug)]
pub struct Embedding<'a> {
    pub tensor: &'a [u8],
    pub ty: GgmlType,
    pub n_embd: usize,
    pub n_vocab: usize,
    /// `tensor`'s bytes in memory of the process's own, read in its place: a tied output
    /// matrix's copy ([`Matrix::copy_blocks`]), whose file pages were released.
    pub copy: Option<Arc<PageBuf<u8>>>,
}

impl Embedding<'_> {
    /// Writes the embedding of `token` (`< n_vocab`, checked by the caller) into `out`.
    pub fn lookup(&self, token: usize, out: &mut [f32]) {
        fn row<B: QuantBlock>(bytes: &[u8], token: usize, out: &mut [f32]) {
            let per_row = out.len() / B::VALUES;
            let size = std::mem::size_of::<B>();
            let bytes = &bytes[token * per_row * size..(token + 1) * per_row * size];
            // Alignment and length were checked at load (`Embedding::from_tensor`).
            let blocks: &[B] = bytemuck::cast_slice(bytes);
            B::dequantize_row(blocks, out);
        }
        let b: &[u8] = self.copy.as_deref().map_or(self.tensor, |c| c);
        match self.ty {
            GgmlType::F32 => row::<f32>(b, token, out),
            GgmlType::F16 => row::<half::f16>(b, token, out),
            GgmlType::Q8_0 => row::<BlockQ8_0>(b, token, out),
            GgmlType::Q4_0 => row::<BlockQ4_0>(b, token, out),
            GgmlType::Q4_1 => row::<BlockQ4_1>(b, token, out),
            GgmlType::Q5_0 => row::<BlockQ5_0>(b, token, out),
            GgmlType::Q4K => row::<BlockQ4K>(b, token, out),
            GgmlType::Q6K => row::<BlockQ6K>(b, token, out),
            _ => unreachable!("refused at load"),
        }
    }

    fn from_tensor<'a>(t: &TensorInfo<'a>, n_embd: usize) -> Result<Embedding<'a>, ModelError> {
        let n_vocab = t.n_rows() as usize;
        check_dims(t, &[n_embd, n_vocab])?;
        let align = match t.ggml_type {
            GgmlType::F32 => 4,
            GgmlType::F16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q4K
            | GgmlType::Q6K => 2,
            other => {
                return Err(ModelError::UnsupportedTensorType {
                    name: t.name.to_string(),
                    ty: other.name(),
                    supported: "F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K",
                })
            }
        };
        if !(t.data.as_ptr() as usize).is_multiple_of(align) {
            return Err(misaligned(t));
        }
        Ok(Embedding {
            tensor: t.data,
            ty: t.ggml_type,
            n_embd,
            n_vocab,
            copy: None,
        })
    }
}

/// One layer's tensors. Shapes as `[rows x k]`.
#[derive(Clone, Debug)]
pub struct LayerWeights<'a> {
    /// `[n_embd]`
    pub attn_norm: &'a [f32],
    /// `[q_dim x n_embd]`
    pub wq: Matrix<'a>,
    /// `[kv_dim x n_embd]`
    pub wk: Matrix<'a>,
    /// `[kv_dim x n_embd]`
    pub wv: Matrix<'a>,
    /// `[n_embd x q_dim]`
    pub wo: Matrix<'a>,
    /// `[n_embd]`
    pub ffn_norm: &'a [f32],
    /// `[n_ff x n_embd]`
    pub w_gate: Matrix<'a>,
    /// `[n_ff x n_embd]`
    pub w_up: Matrix<'a>,
    /// `[n_embd x n_ff]`
    pub w_down: Matrix<'a>,
}

impl<'a> LayerWeights<'a> {
    /// The layer's seven matrices, mutably.
    pub fn matrices_mut(&mut self) -> [&mut Matrix<'a>; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.w_gate,
            &mut self.w_up,
            &mut self.w_down,
        ]
    }
}

/// Every tensor of the model.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    /// `[n_vocab x n_embd]`
    pub token_embd: Embedding<'a>,
    pub layers: Vec<LayerWeights<'a>>,
    /// `[n_embd]`
    pub output_norm: &'a [f32],
    /// `[n_vocab x n_embd]`: `output.weight`, or `token_embd.weight` when the file ties them.
    pub output: Matrix<'a>,
    /// Whether `output` is `token_embd.weight` (the file has no `output.weight`).
    pub output_tied: bool,
}

impl<'a> Weights<'a> {
    /// Every matrix of the layers, mutably (not the output matrix).
    pub fn layer_matrices_mut(&mut self) -> impl Iterator<Item = &mut Matrix<'a>> {
        self.layers.iter_mut().flat_map(LayerWeights::matrices_mut)
    }

    /// The layers' matrices, then the output matrix.
    pub fn matrices_mut(&mut self) -> impl Iterator<Item = &mut Matrix<'a>> {
        let Weights { layers, output, .. } = self;
        layers
            .iter_mut()
            .flat_map(LayerWeights::matrices_mut)
            .chain(std::iter::once(output))
    }

    pub fn from_gguf(g: &Gguf<'a>, c: &Config) -> Result<Weights<'a>, ModelError> {
        let t = |name: &str| g.require_tensor(name).map_err(ModelError::from);
        let norm = |name: &str| -> Result<&'a [f32], ModelError> {
            let t = g.require_tensor(name)?;
            check_dims(t, &[c.n_embd])?;
            if t.ggml_type != GgmlType::F32 {
                return Err(ModelError::UnsupportedTensorType {
                    name: t.name.to_string(),
                    ty: t.ggml_type.name(),
                    supported: "F32",
                });
            }
            cast(t)
        };
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let name = |s: &str| format!("blk.{i}.{s}.weight");
            let m = |s: &str, k: usize, rows: usize| Matrix::from_tensor(t(&name(s))?, k, rows);
            layers.push(LayerWeights {
                attn_norm: norm(&name("attn_norm"))?,
                wq: m("attn_q", c.n_embd, c.q_dim())?,
                wk: m("attn_k", c.n_embd, c.kv_dim())?,
                wv: m("attn_v", c.n_embd, c.kv_dim())?,
                wo: m("attn_output", c.q_dim(), c.n_embd)?,
                ffn_norm: norm(&name("ffn_norm"))?,
                w_gate: m("ffn_gate", c.n_embd, c.n_ff)?,
                w_up: m("ffn_up", c.n_embd, c.n_ff)?,
                w_down: m("ffn_down", c.n_ff, c.n_embd)?,
            });
        }
        let embd = t("token_embd.weight")?;
        let output_tied = g.tensor("output.weight").is_none();
        let output = match g.tensor("output.weight") {
            Some(out) => Matrix::from_tensor(out, c.n_embd, c.n_vocab)?,
            None => Matrix::from_tensor(embd, c.n_embd, c.n_vocab)?,
        };
        Ok(Weights {
            token_embd: Embedding::from_tensor(embd, c.n_embd)?,
            layers,
            output_norm: norm("output_norm.weight")?,
            output,
            output_tied,
        })
    }
}

fn check_dims(t: &TensorInfo, want: &[usize]) -> Result<(), ModelError> {
    let have: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    if have != want {
        return Err(ModelError::BadShape {
            name: t.name.to_string(),
            have,
            want: want.to_vec(),
        });
    }
    Ok(())
}

fn misaligned(t: &TensorInfo) -> ModelError {
    ModelError::BadConfig(format!(
        "tensor `{}`: data at a misaligned address (general.alignment too small?)",
        t.name
    ))
}

/// Views a tensor's bytes as blocks, without copying.
fn cast<'a, B: bytemuck::Pod>(t: &TensorInfo<'a>) -> Result<&'a [B], ModelError> {
    bytemuck::try_cast_slice(t.data).map_err(|_| misaligned(t))
}
