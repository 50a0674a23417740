//! The Llama forward pass over a GGUF file: [`Config`] from the metadata, [`Weights`] borrowed
//! from the file mapping (no quantized matrix is copied), a [`Session`] holding the KV cache,
//! the persistent thread [`Pool`] and every buffer the token loop touches, and a [`Sampler`].
//!
//! This module composes the kernels (`matmul`, `attention`, `ops`); it owns no numeric kernel of
//! its own and never opens a file: the caller maps it ([`crate::gguf::GgufFile`]) and passes the
//! parse in. Slices in, no allocation once a session is built.

mod config;
mod forward;
mod kv_cache;
pub mod pool;
mod profile;
pub mod sampler;
pub mod split;
mod weights;

pub use config::Config;
pub use forward::{PlantedBug, Session, SessionOptions, ROW_ALIGN};
pub use kv_cache::KvCache;
pub use pool::Pool;
pub use profile::{Phase, Profile};
pub use sampler::{Sampler, SamplerOptions};
pub use split::{ColumnSplit, Columns};
pub use weights::{
    ActFormat, Blocks, Embedding, LayerWeights, Matrix, Packed, PackedAmx, Weights, MATRIX_TYPES,
};

use crate::gguf::{Gguf, GgufError, GgufFile};
use crate::Isa;

/// How the matmuls take their activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Design {
    /// f32 activations; weights dequantized in registers (FMA).
    F32,
    /// Activations quantized once per matmul input to 8 bits in the format each weight type's
    /// integer kernel takes (Q8_K for Q4_K/Q6_K). The default: faster.
    Int8,
}

impl Design {
    pub const ALL: [Design; 2] = [Design::F32, Design::Int8];

    pub fn name(self) -> &'static str {
        match self {
            Design::F32 => "f32",
            Design::Int8 => "q8",
        }
    }

    pub fn from_name(name: &str) -> Option<Design> {
        Design::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Why a model cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("bad model metadata: {0}")]
    BadConfig(String),
    #[error("tensor `{name}` has dims {have:?}, expected {want:?}")]
    BadShape {
        name: String,
        have: Vec<usize>,
        want: Vec<usize>,
    },
    #[error(
        "tensor `{name}` has type {ty}, which the forward pass cannot run (it runs {supported})"
    )]
    UnsupportedTensorType {
        name: String,
        ty: String,
        supported: &'static str,
    },
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    #[error("the context is full: {pos} of {n_ctx} positions used, {more} more asked for")]
    ContextFull {
        pos: usize,
        more: usize,
        n_ctx: usize,
    },
    #[error("{0}")]
    Options(String),
    #[error("cannot start the worker threads: {0}")]
    Threads(std::io::Error),
}

/// A Llama-architecture model: its hyper-parameters and its tensors, borrowed from a parse.
pub struct Model<'a> {
    pub config: Config,
    pub weights: Weights<'a>,
}

/// How [`Model::load`] lays out the layers' Q6_K matrices (attn_v, ffn_down) for the `q8`
/// design on the ISAs the x8 kernels run on.
///
/// Measured on TinyLlama Q4_K_M (idle Zen 3, two alternated rounds of `harness e2e -p 40,512
/// -n 128 -r 2 -t 1,2`, means, tok/s, 1 / 2 threads):
///
/// | layout | pp40 | pp512 | tg128 | peak RSS MiB |
/// |---|---|---|---|---|
/// | `File` | 20.9 / 38.1 | 19.3 / 35.6 | 9.89 / 16.9 | 750 / 950 |
/// | `X8` | 22.7 / 41.6 | 20.7 / 38.8 | 9.36 / 16.2 | 862 / 971 |
/// | `X8ForPrompts` | 22.9 / 41.7 | 20.9 / 38.5 | 10.0 / 17.3 | 957 / 1073 |
///
/// The x8 Q6_K panels hold whole-byte values, 30% more bytes than the file's blocks: prompts
/// gain 8-9% from the kernel that does no unpacking, but decode, which streams every matrix
/// once per token, pays for the bytes. So prompts take the x8 copy and decode the file's
/// layout, at the cost of holding both (about 200 MiB more at one thread; the decode layout is
/// now a huge-page copy of the file's, the file's pages released).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Q6kLayers {
    /// The file's layout only.
    #[allow(dead_code)]
    File,
    /// The x8 layout only, the file's pages released.
    #[allow(dead_code)]
    X8,
    /// The x8 layout for `n >= 2` activation rows, the file's for `n = 1`.
    X8ForPrompts,
}

const LAYER_Q6K: Q6kLayers = Q6kLayers::X8ForPrompts;

/// The fewest activation rows a layer matmul needs to take the AMX copy of its weights (made at
/// load for the `q8` design on avx512 where AMX runs; see [`Model::load`]), Q4_K and Q6_K.
///
/// Kernel alone (`harness bench --kernel matmul_q4k,matmul_q6k --design q8k-x8,q8k-amx --isa
/// avx512 --cache hot`, 2048x2048, 1 thread, the 2-core Xeon VM with AMX, x8 time / AMX time):
/// Q4_K 0.34 at n = 2, 0.68 at 8, 0.98 at 16 and 40, 1.23 at 512; Q6_K 0.43 at 2, 0.88 at 8,
/// 1.33 at 16, 1.22 at 40, 1.20 at 512: a tile of few tokens leaves the tile unit idle while
/// the vector epilogue costs the same per token. In the forward pass (`harness e2e -p 40,512
/// -n 0 -t 1,2`, alternated with the x8-only build) the AMX copies at 48 / 16 rows gave pp512
/// +15-50% at 1 thread and +3% at 2, but pp40 at 2 threads lost 10-25% (ffn_down, the Q6_K
/// half, slower on AMX with both cores on it): so prompts of fewer than 64 rows stay on x8.
pub const AMX_MIN_N: [usize; 2] = [64, 64];

impl<'a> Model<'a> {
    /// Reads the config and finds, checks (dims, type, alignment) and borrows every tensor. No
    /// tensor data is read or copied.
    pub fn from_gguf(g: &Gguf<'a>) -> Result<Model<'a>, ModelError> {
        let config = Config::from_gguf(g)?;
        let weights = Weights::from_gguf(g, &config)?;
        Ok(Model { config, weights })
    }

    /// [`Model::from_gguf`] of a mapped file, then made ready for sessions of `isa` and
    /// `design`: for the `q8` design on the ISAs the x8 kernels run on, the Q4_K and the layers'
    /// Q6_K matrices are repacked (on up to `threads` threads) and the mapped pages of the Q4_K
    /// blocks are released, so the process does not hold both copies; the layers' Q6_K blocks
    /// stay for decode ([`Q6kLayers`]), copied, like every matrix decode then reads in the
    /// file's layout, into huge-page memory ([`crate::mem::PageBuf`]), the mapped pages
    /// released. On avx512 where AMX runs, the layers' Q4_K and Q6_K matrices first get a
    /// third copy in the AMX panels for prompt batches of [`AMX_MIN_N`] tokens or more.
    /// Sessions of any other ISA or design still run from such a model (from the original
    /// blocks, paged in again, or the copies), with the same results.
    pub fn load(
        file: &'a GgufFile,
        isa: Isa,
        design: Design,
        threads: usize,
    ) -> Result<Model<'a>, ModelError> {
        let mut model = Model::from_gguf(file.gguf())?;
        if design == Design::Int8 && crate::matmul::x8::runs_on(isa) {
            // Loading runs before any session: every core may take part.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = threads.max(cores).max(1);
            // Prompts on AMX: the layers' Q4_K and Q6_K matrices get a copy in the AMX panels,
            // made first, from the file's blocks, before any of their pages are released. The
            // output matrix, which a prompt multiplies for its last token only, does not.
            if isa == Isa::Avx512 && crate::matmul::amx::available() {
                for m in model.weights.layer_matrices_mut() {
                    let q6k = matches!(m.blocks, weights::Blocks::Q6K(_));
                    m.pack_amx(threads, AMX_MIN_N[usize::from(q6k)]);
                }
            }
            // The layers' Q6_K matrices (attn_v, ffn_down) as `LAYER_Q6K` says; a Q6_K output
            // matrix, which decode streams every token at n = 1, keeps the file's layout.
            let w = &mut model.weights;
            for m in w.layer_matrices_mut() {
                let q6k = matches!(m.blocks, weights::Blocks::Q6K(_));
                let policy = if q6k { LAYER_Q6K } else { Q6kLayers::X8 };
                if policy == Q6kLayers::File {
                    continue;
                }
                if let Some(bytes) = m.pack_x8(isa, threads, true) {
                    if policy == Q6kLayers::X8ForPrompts {
                        m.packed_min_n = 2;
                    } else {
                        file.release_pages(bytes);
                    }
                }
            }
            if let Some(bytes) = w.output.pack_x8(isa, threads, false) {
                file.release_pages(bytes);
            }
            // What decode still reads in the file's layout (the layers' Q6_K matrices, a Q6_K
            // output matrix) moves into huge-page memory and its file pages are released: see
            // `mem` for why and what it measured. Only here, where it was measured: the other
            // designs and ISAs keep reading (and sharing) the file's pages.
            for m in w.matrices_mut() {
                if m.decode_reads_rows() {
                    if let Some(bytes) = m.copy_blocks() {
                        file.release_pages(bytes);
                    }
                }
            }
            // A tied output is the embedding's tensor: the lookups read the copy too, so the
            // released pages stay released.
            if w.output_tied && std::ptr::eq(w.output.blocks.bytes(), w.token_embd.tensor) {
                w.token_embd.copy = w.output.copy.clone();
            }
        }
        Ok(model)
    }
}
