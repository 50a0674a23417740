//! [`Session`]: the forward pass over a KV cache. `prefill` takes the prompt in batches of up
//! to `n_batch` tokens through the `n > 1` matmul kernels; `decode` is one token. Everything
//! the token loop touches is allocated in [`Session::new`].
//!
//! Per layer, for a batch of `n` tokens at positions `pos .. pos+n`:
//! RMSNorm -> Q/K/V (one activation quantization shared by the three) -> RoPE -> K/V appended to
//! the cache -> flash attention -> output projection -> residual; RMSNorm -> gate/up (one
//! quantization shared) -> SwiGLU -> down -> residual. Logits are computed for the last token.
//!
//! Threads: matmuls are cut into chunks of weight rows (multiples of [`ROW_ALIGN`]) that the
//! threads claim as they go ([`Ctx::matmuls`]), attention by query heads. Each output element is computed
//! by the same kernel call shape whatever the thread count, so the logits (and greedy text) do
//! not depend on it.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::kv_cache::{store, KvCache, LayerCache, StoreElem};
use super::pool::{part_range, Pool};
use super::profile::{Phase, Profile, Profiler};
use super::split::{ColumnSplit, MAX_PARTS};
use super::weights::{ActFormat, Input, Matrix};
use super::{Design, Model, ModelError};
use crate::attention::{self, AttentionDims, KvFormat};
use crate::matmul;
use crate::ops::{self, RopeTable};
use crate::quant::{self, BlockQ8K, BlockQ8_0, BlockQ8_1, QK_K};
use crate::Isa;

/// Weight-row boundaries of the chunks the threads claim fall on multiples of this; also the
/// rows one `n > 1` kernel call computes into a thread's scratch before it is scattered.
pub const ROW_ALIGN: usize = 64;
const CHUNK_ROWS: usize = 2 * ROW_ALIGN;

/// Weight rows of one prompt work item of a `rows`-row matrix: [`CHUNK_ROWS`], or a multiple of
/// it when that would make more than [`MAX_PARTS`] chunks.
fn prompt_chunk_rows(rows: usize) -> usize {
    rows.div_ceil(MAX_PARTS).div_ceil(CHUNK_ROWS).max(1) * CHUNK_ROWS
}

/// Weight rows of one decode (`n = 1`) work item of a `rows`-row matrix on `threads` threads: a
/// multiple of [`ROW_ALIGN`], at most [`DECODE_CHUNK_ROWS`], small enough for four chunks a
/// thread, but never so small that there would be more than [`MAX_PARTS`] chunks. Each row's
/// kernel call is the same whatever the chunk, so the logits do not depend on it.
fn decode_chunk_rows(rows: usize, threads: usize) -> usize {
    let fair = (rows / (4 * threads.max(1))) / ROW_ALIGN * ROW_ALIGN;
    let least = rows.div_ceil(MAX_PARTS).div_ceil(ROW_ALIGN).max(1) * ROW_ALIGN;
    fair.clamp(ROW_ALIGN, DECODE_CHUNK_ROWS).max(least)
}

/// 256 rows: 0.3 MB of a 2048-column Q4_K matrix, 20-30 us of streaming for one core, against
/// a fraction of a microsecond to claim it.
const DECODE_CHUNK_ROWS: usize = 4 * ROW_ALIGN;

/// Bugs the gate's self-test plants into the forward pass (`harness verify --model FILE
/// --self-test`), each the kind a real refactor introduces, so that the model-level gate is shown
/// to catch them. Never set outside that test: see [`Session::plant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// A decode step after a prefill rotates Q and K at the previous position.
    RopeDecodePosition,
    /// A batch after the first stores its K/V one cache row early, over the previous token's.
    KvRowOffByOne,
    /// K/V heads stored rotated by one slot: query head h reads the wrong KV head.
    KvHeadsRotated,
    /// Layer 0's attention RMSNorm leaves out its weight.
    AttnNormWeightIgnored,
    /// A file with a tied output (no `output.weight`) gets no output projection: logits stay 0.
    TiedOutputIgnored,
    /// A prefill batch after a boundary sees the previous batch's last token as zeros.
    BatchBoundaryDropsToken,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 6] = [
        PlantedBug::RopeDecodePosition,
        PlantedBug::KvRowOffByOne,
        PlantedBug::KvHeadsRotated,
        PlantedBug::AttnNormWeightIgnored,
        PlantedBug::TiedOutputIgnored,
        PlantedBug::BatchBoundaryDropsToken,
    ];
}

/// How a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    pub isa: Isa,
    pub design: Design,
    /// Worker threads including the caller, 1 to 64.
    pub threads: usize,
    /// Positions the KV cache holds.
    pub n_ctx: usize,
    /// Most tokens one prefill step processes.
    pub n_batch: usize,
    pub kv: KvFormat,
}

impl SessionOptions {
    /// The best ISA and design, an f16 cache, `threads` threads.
    pub fn new(threads: usize, n_ctx: usize) -> SessionOptions {
        SessionOptions {
            isa: Isa::best(),
            design: Design::Int8,
            threads,
            n_ctx,
            n_batch: 512,
            kv: KvFormat::F16,
        }
    }
}

/// One thread's private buffers.
struct WorkerScratch {
    /// `[n_batch x CHUNK_ROWS]`: one chunk of an `n > 1` matmul before it is scattered.
    matmul: Vec<f32>,
    /// `[n_batch x q_dim]`: the whole attention output buffer the kernel writes its heads into.
    attn_out: Vec<f32>,
    attn_scratch: Vec<f32>,
}

/// The batch buffers, each sized for `n_batch` tokens.
struct Buffers {
    /// Residual stream `[n x n_embd]`.
    x: Vec<f32>,
    /// Normed input / projection output `[n x n_embd]`.
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    hidden: Vec<f32>,
    /// The quantized activations of the current matmul input.
    q8k: Vec<BlockQ8K>,
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
    logits: Vec<f32>,
}

/// A model plus everything one generation needs: pool, cache, buffers, position.
pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    opts: SessionOptions,
    pool: Pool,
    rope: RopeTable,
    kv: KvCache,
    buf: Buffers,
    scratch: Vec<Mutex<WorkerScratch>>,
    pos: usize,
    planted: Option<PlantedBug>,
    prof: Profiler,
}

impl<'m, 'a> Session<'m, 'a> {
    pub fn new(model: &'m Model<'a>, opts: SessionOptions) -> Result<Self, ModelError> {
        let c = &model.config;
        if let Some(reason) = opts.isa.unavailable_reason() {
            return Err(ModelError::Options(format!(
                "ISA {} cannot run here: {reason}",
                opts.isa
            )));
        }
        if !(1..=MAX_PARTS).contains(&opts.threads) {
            return Err(ModelError::Options(format!(
                "threads must be 1 to {MAX_PARTS}, not {}",
                opts.threads
            )));
        }
        if opts.n_ctx == 0 || opts.n_batch == 0 {
            return Err(ModelError::Options(
                "the context and the batch must hold at least one token".into(),
            ));
        }
        let nb = opts.n_batch.min(opts.n_ctx);
        let opts = SessionOptions {
            n_batch: nb,
            ..opts
        };
        let max_k = c.n_embd.max(c.n_ff).max(c.q_dim());
        let pool = Pool::new(opts.threads).map_err(ModelError::Threads)?;
        let dims = AttentionDims {
            n_q: 1,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            pos0: 0,
        };
        let scratch = (0..opts.threads)
            .map(|_| {
                Mutex::new(WorkerScratch {
                    matmul: vec![0.0; nb * CHUNK_ROWS],
                    attn_out: vec![0.0; nb * c.q_dim()],
                    attn_scratch: vec![0.0; attention::scratch_len(&dims)],
                })
            })
            .collect();
        Ok(Session {
            model,
            opts,
            pool,
            rope: RopeTable::new_scaled(c.head_dim, c.rope_base, opts.n_ctx, c.rope_pos_scale),
            kv: KvCache::new(opts.kv, c.n_layer, opts.n_ctx, c.kv_dim()),
            buf: Buffers {
                x: vec![0.0; nb * c.n_embd],
                xb: vec![0.0; nb * c.n_embd],
                q: vec![0.0; nb * c.q_dim()],
                k: vec![0.0; nb * c.kv_dim()],
                v: vec![0.0; nb * c.kv_dim()],
                att: vec![0.0; nb * c.q_dim()],
                gate: vec![0.0; nb * c.n_ff],
                up: vec![0.0; nb * c.n_ff],
                hidden: vec![0.0; nb * c.n_ff],
                q8k: vec![BlockQ8K::default(); nb * max_k.div_ceil(QK_K)],
                q8_0: vec![BlockQ8_0::default(); nb * max_k.div_ceil(32)],
                q8_1: vec![BlockQ8_1::default(); nb * max_k.div_ceil(32)],
                logits: vec![0.0; c.n_vocab],
            },
            scratch,
            pos: 0,
            planted: None,
            prof: Profiler::default(),
        })
    }

    /// Plants `bug` into this session's forward pass. For the gate's self-test only: a session
    /// with a planted bug computes wrong logits on purpose.
    #[doc(hidden)]
    pub fn plant(&mut self, bug: PlantedBug) {
        self.planted = Some(bug);
    }

    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// Positions filled so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes()
    }

    /// Forgets the cached positions (the buffers stay).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Turns the time profile of the steps on or off (off by default; the accumulated profile
    /// is kept either way, see [`Session::clear_profile`]).
    pub fn set_profiling(&mut self, on: bool) {
        self.prof.set(on);
    }

    pub fn profiling(&self) -> bool {
        self.prof.is_on()
    }

    /// Nanoseconds per phase accumulated over the steps run while profiling was on.
    pub fn profile(&self) -> Profile {
        self.prof.profile()
    }

    pub fn clear_profile(&mut self) {
        self.prof.clear();
    }

    /// Runs `tokens` (in batches of up to `n_batch`) and returns the logits after the last.
    ///
    /// # Errors
    /// A token outside the vocabulary, or more tokens than the context has room for; nothing is
    /// computed then.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        let n_vocab = self.model.config.n_vocab;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::TokenOutOfRange { id, n_vocab });
        }
        if tokens.is_empty() {
            return Err(ModelError::Options("no tokens to run".into()));
        }
        if tokens.len() > self.opts.n_ctx - self.pos {
            return Err(ModelError::ContextFull {
                pos: self.pos,
                more: tokens.len(),
                n_ctx: self.opts.n_ctx,
            });
        }
        let chunks = tokens.chunks(self.opts.n_batch);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.enumerate() {
            self.step(chunk, i == last);
        }
        Ok(&self.buf.logits)
    }

    /// Runs `tokens` (in batches of up to `n_batch`) and writes the logits after every one of
    /// them into `out` (`[tokens.len() x n_vocab]`), as perplexity needs. Allocates nothing; the
    /// output projection then runs on whole batches.
    ///
    /// # Errors
    /// As [`Session::prefill`], and an `out` of the wrong length.
    pub fn prefill_all_logits(
        &mut self,
        tokens: &[u32],
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let n_vocab = self.model.config.n_vocab;
        if out.len() != tokens.len() * n_vocab {
            return Err(ModelError::Options(format!(
                "logits buffer holds {} values, {} tokens need {}",
                out.len(),
                tokens.len(),
                tokens.len() * n_vocab
            )));
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::TokenOutOfRange { id, n_vocab });
        }
        if tokens.len() > self.opts.n_ctx - self.pos {
            return Err(ModelError::ContextFull {
                pos: self.pos,
                more: tokens.len(),
                n_ctx: self.opts.n_ctx,
            });
        }
        let nb = self.opts.n_batch;
        for (chunk, logits) in tokens.chunks(nb).zip(out.chunks_mut(nb * n_vocab)) {
            self.step(chunk, false);
            self.output_rows(chunk.len(), logits);
        }
        Ok(())
    }

    /// The output projection of every row of the last step into `out` (`[n x n_vocab]`).
    fn output_rows(&mut self, n: usize, out: &mut [f32]) {
        let m = self.model;
        let (c, w) = (&m.config, &m.weights);
        let (isa, design, d) = (self.opts.isa, self.opts.design, c.n_embd);
        let b = &mut self.buf;
        for t in 0..n {
            let row = t * d..(t + 1) * d;
            ops::rmsnorm(
                isa,
                &b.x[row.clone()],
                w.output_norm,
                c.rms_eps,
                &mut b.xb[row],
            );
        }
        let ctx = Ctx {
            pool: &self.pool,
            scratch: &self.scratch,
            isa,
            design,
        };
        let x = ctx.prepare(
            &b.xb[..n * d],
            n,
            d,
            &[&w.output],
            (&mut b.q8k, &mut b.q8_0, &mut b.q8_1),
        );
        ctx.matmuls(&x, [&w.output], [&mut out[..n * c.n_vocab]]);
    }

    /// One token: the logits that follow it.
    pub fn decode(&mut self, token: u32) -> Result<&[f32], ModelError> {
        self.prefill(std::slice::from_ref(&token))
    }

    /// The logits of the last step.
    pub fn logits(&self) -> &[f32] {
        &self.buf.logits
    }

    fn step(&mut self, tokens: &[u32], want_logits: bool) {
        let m = self.model;
        let c = &m.config;
        let w = &m.weights;
        let (isa, design) = (self.opts.isa, self.opts.design);
        let n = tokens.len();
        let pos0 = self.pos;
        let (d, qd, kvd, ff, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.head_dim);
        let ctx = Ctx {
            pool: &self.pool,
            scratch: &self.scratch,
            isa,
            design,
        };
        let b = &mut self.buf;
        let prof = &mut self.prof;
        prof.start();
        for (t, &tok) in tokens.iter().enumerate() {
            w.token_embd
                .lookup(tok as usize, &mut b.x[t * d..(t + 1) * d]);
        }
        prof.lap(Phase::Other);
        let planted = self.planted;
        for (l, lw) in w.layers.iter().enumerate() {
            let ignore_weight = l == 0 && planted == Some(PlantedBug::AttnNormWeightIgnored);
            if ignore_weight {
                // `up` is free until the FFN of this layer writes it.
                b.up[..d].fill(1.0);
            }
            for t in 0..n {
                let row = t * d..(t + 1) * d;
                let weight = if ignore_weight {
                    &b.up[..d]
                } else {
                    lw.attn_norm
                };
                ops::rmsnorm(isa, &b.x[row.clone()], weight, c.rms_eps, &mut b.xb[row]);
            }
            prof.lap(Phase::Norms);
            {
                let x = ctx.prepare(
                    &b.xb[..n * d],
                    n,
                    d,
                    &[&lw.wq, &lw.wk, &lw.wv],
                    (&mut b.q8k, &mut b.q8_0, &mut b.q8_1),
                );
                ctx.matmuls(
                    &x,
                    [&lw.wq, &lw.wk, &lw.wv],
                    [&mut b.q[..], &mut b.k[..], &mut b.v[..]],
                );
            }
            prof.lap(Phase::AttnQkv);
            for t in 0..n {
                let wrong = planted == Some(PlantedBug::RopeDecodePosition) && n == 1 && pos0 > 0;
                let (cos, sin) = self.rope.cos_sin(if wrong { pos0 - 1 } else { pos0 + t });
                ops::rope_adjacent(isa, &mut b.q[t * qd..(t + 1) * qd], hd, cos, sin);
                ops::rope_adjacent(isa, &mut b.k[t * kvd..(t + 1) * kvd], hd, cos, sin);
            }
            prof.lap(Phase::Rope);
            let dims = AttentionDims {
                n_q: n,
                n_head: c.n_head,
                n_head_kv: c.n_head_kv,
                head_dim: hd,
                pos0,
            };
            if planted == Some(PlantedBug::KvHeadsRotated) {
                for t in 0..n {
                    b.k[t * kvd..(t + 1) * kvd].rotate_right(hd);
                    b.v[t * kvd..(t + 1) * kvd].rotate_right(hd);
                }
            }
            match &mut self.kv {
                KvCache::F16(layers) => ctx.attention(&mut layers[l], b, dims, kvd, planted),
                KvCache::F32(layers) => ctx.attention(&mut layers[l], b, dims, kvd, planted),
            }
            prof.lap(Phase::Attention);
            {
                let x = ctx.prepare(
                    &b.att[..n * qd],
                    n,
                    qd,
                    &[&lw.wo],
                    (&mut b.q8k, &mut b.q8_0, &mut b.q8_1),
                );
                ctx.matmuls(&x, [&lw.wo], [&mut b.xb[..]]);
            }
            prof.lap(Phase::AttnOutput);
            ops::residual_add(isa, &mut b.x[..n * d], &b.xb[..n * d]);
            prof.lap(Phase::Other);
            for t in 0..n {
                let row = t * d..(t + 1) * d;
                ops::rmsnorm(
                    isa,
                    &b.x[row.clone()],
                    lw.ffn_norm,
                    c.rms_eps,
                    &mut b.xb[row],
                );
            }
            prof.lap(Phase::Norms);
            {
                let x = ctx.prepare(
                    &b.xb[..n * d],
                    n,
                    d,
                    &[&lw.w_gate, &lw.w_up],
                    (&mut b.q8k, &mut b.q8_0, &mut b.q8_1),
                );
                ctx.matmuls(&x, [&lw.w_gate, &lw.w_up], [&mut b.gate[..], &mut b.up[..]]);
            }
            prof.lap(Phase::FfnGateUp);
            ops::swiglu(
                isa,
                &b.gate[..n * ff],
                &b.up[..n * ff],
                &mut b.hidden[..n * ff],
            );
            prof.lap(Phase::Other);
            {
                let x = ctx.prepare(
                    &b.hidden[..n * ff],
                    n,
                    ff,
                    &[&lw.w_down],
                    (&mut b.q8k, &mut b.q8_0, &mut b.q8_1),
                );
                ctx.matmuls(&x, [&lw.w_down], [&mut b.xb[..]]);
            }
            prof.lap(Phase::FfnDown);
            ops::residual_add(isa, &mut b.x[..n * d], &b.xb[..n * d]);
            prof.lap(Phase::Other);
        }
        self.pos += n;
        if want_logits {
            let last = (n - 1) * d..n * d;
            ops::rmsnorm(isa, &b.x[last], w.output_norm, c.rms_eps, &mut b.xb[..d]);
            prof.lap(Phase::Norms);
            let x = ctx.prepare(
                &b.xb[..d],
                1,
                d,
                &[&w.output],
                (&mut b.q8k, &mut b.q8_0, &mut b.q8_1),
            );
            ctx.matmuls(&x, [&w.output], [&mut b.logits[..]]);
            prof.lap(Phase::Output);
            if planted == Some(PlantedBug::TiedOutputIgnored) && w.output_tied {
                b.logits.fill(0.0);
            }
        }
    }
}

/// Fewest Q8_K blocks worth a pool run: below it (decode's 8 to 22) waking the other threads
/// costs more than the quantization they would share.
const PAR_QUANT_BLOCKS: usize = 64;

/// [`quant::quantize_q8k`] on `isa`'s code with the blocks split into one contiguous part per
/// pool thread: each block is quantized on its own, so the bytes do not depend on the split (nor
/// on the ISA). Serial and scalar, this was about a fifth of a 1-thread prompt.
fn quantize_q8k(pool: &Pool, isa: Isa, x: &[f32], out: &mut [BlockQ8K]) {
    let threads = pool.n_threads();
    if threads == 1 || out.len() < PAR_QUANT_BLOCKS {
        quant::quantize_q8k(isa, x, out);
        return;
    }
    let per = out.len().div_ceil(threads);
    let mut pieces = x.chunks(per * QK_K).zip(out.chunks_mut(per));
    type Piece<'x> = Mutex<Option<(&'x [f32], &'x mut [BlockQ8K])>>;
    let parts: [Piece; MAX_PARTS] = std::array::from_fn(|_| Mutex::new(pieces.next()));
    pool.run(|tid| {
        let piece = parts[tid].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((x, out)) = piece {
            quant::quantize_q8k(isa, x, out);
        }
    });
}

/// What every parallel step needs.
struct Ctx<'s> {
    pool: &'s Pool,
    scratch: &'s [Mutex<WorkerScratch>],
    isa: Isa,
    design: Design,
}

impl Ctx<'_> {
    /// The input of one or more matmuls: `x` (`[n x k]`) and its quantizations in the formats
    /// `mats` read in `design`, each made once and shared by all of them.
    #[allow(clippy::type_complexity)]
    fn prepare<'b>(
        &self,
        x: &'b [f32],
        n: usize,
        k: usize,
        mats: &[&Matrix],
        bufs: (&'b mut [BlockQ8K], &'b mut [BlockQ8_0], &'b mut [BlockQ8_1]),
    ) -> Input<'b> {
        let (design, isa) = (self.design, self.isa);
        let needs = |f: ActFormat| mats.iter().any(|m| m.act_format(design) == f);
        let (q8k, q8_0, q8_1) = bufs;
        let q8k: &[BlockQ8K] = if needs(ActFormat::Q8K) {
            let blocks = &mut q8k[..n * k / QK_K];
            quantize_q8k(self.pool, isa, x, blocks);
            blocks
        } else {
            &[]
        };
        let q8_0: &[BlockQ8_0] = if needs(ActFormat::Q8_0) {
            let blocks = &mut q8_0[..n * k / 32];
            matmul::quantize_q8_0(isa, x, blocks);
            blocks
        } else {
            &[]
        };
        let q8_1: &[BlockQ8_1] = if needs(ActFormat::Q8_1) {
            let blocks = &mut q8_1[..n * k / 32];
            matmul::quantize_q8_1(isa, x, blocks);
            blocks
        } else {
            &[]
        };
        Input {
            n,
            k,
            f32: x,
            q8k,
            q8_0,
            q8_1,
        }
    }

    /// `outs[i][t][r] = x[t] . mats[i][r]`, all `N` matmuls in one pool run. Every matrix is cut
    /// into chunks of weight rows ([`decode_chunk_rows`] at `n = 1`, [`prompt_chunk_rows`]
    /// otherwise) that the threads claim one at a time from a shared counter: a thread that a
    /// busy machine slows down takes fewer chunks instead of holding the others at the end of
    /// the step. A static split ran 2 threads at about 1.45x one thread's pp512 on a shared Zen 4
    /// VM, where two 1-thread processes made about 1.9x; at `n = 1` (one part per thread before)
    /// on a 2-core Intel Xeon VM, `harness e2e -p 0 -n 64 -t 2 -r 5`, five alternated rounds:
    /// 30.7 / 27.5 / 32.6 / 28.8 / 28.6 t/s static, 32.0 / 32.7 / 30.6 / 28.5 / 30.1 claimed.
    fn matmuls<const N: usize>(&self, x: &Input, mats: [&Matrix; N], outs: [&mut [f32]; N]) {
        let n = x.n;
        let mut i = 0;
        let splits = outs.map(|y| {
            let rows = mats[i].rows;
            i += 1;
            let chunk = if n == 1 {
                decode_chunk_rows(rows, self.pool.n_threads())
            } else {
                prompt_chunk_rows(rows)
            };
            ColumnSplit::new(y, n, rows, rows.div_ceil(chunk), |c| {
                c * chunk..((c + 1) * chunk).min(rows)
            })
        });
        // Work item `j` is chunk `j - first[i]` of matrix `i`.
        let mut first = [0usize; N];
        let mut total = 0;
        for (f, split) in first.iter_mut().zip(&splits) {
            *f = total;
            total += split.parts();
        }
        let next = AtomicUsize::new(0);
        self.pool.run(|tid| {
            // Prompts go through the thread's scratch; decode writes its one row in place.
            let mut ws =
                (n > 1).then(|| self.scratch[tid].lock().unwrap_or_else(|e| e.into_inner()));
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= total {
                    break;
                }
                let i = first.iter().rposition(|&f| f <= j).unwrap_or(0);
                let mut cols = splits[i].take(j - first[i]);
                let rows = cols.cols();
                let Some(ws) = ws.as_mut() else {
                    let len = rows.len();
                    mats[i].matmul_rows(self.isa, self.design, x, rows, cols.row_mut(0), len);
                    continue;
                };
                // Kernel calls of `CHUNK_ROWS` rows (the scratch's size) at the same row
                // offsets whatever the thread count.
                for start in rows.clone().step_by(CHUNK_ROWS) {
                    let sub = start..(start + CHUNK_ROWS).min(rows.end);
                    let (width, off) = (sub.len(), start - rows.start);
                    let tmp = &mut ws.matmul[..n * width];
                    mats[i].matmul_rows(self.isa, self.design, x, sub, tmp, width);
                    for t in 0..n {
                        cols.row_mut(t)[off..off + width]
                            .copy_from_slice(&tmp[t * width..(t + 1) * width]);
                    }
                }
            }
        });
    }

    /// Appends the batch's K/V to the cache and writes the attention output into `b.att`, split
    /// by query heads.
    fn attention<T: StoreElem>(
        &self,
        cache: &mut LayerCache<T>,
        b: &mut Buffers,
        dims: AttentionDims,
        kvd: usize,
        planted: Option<PlantedBug>,
    ) {
        let (n, pos0) = (dims.n_q, dims.pos0);
        let at = if planted == Some(PlantedBug::KvRowOffByOne) && n > 1 && pos0 > 0 {
            pos0 - 1
        } else {
            pos0
        };
        store(&mut cache.k[at * kvd..(at + n) * kvd], &b.k[..n * kvd]);
        store(&mut cache.v[at * kvd..(at + n) * kvd], &b.v[..n * kvd]);
        if planted == Some(PlantedBug::BatchBoundaryDropsToken) && n > 1 && pos0 > 0 {
            let row = (pos0 - 1) * kvd..pos0 * kvd;
            for e in cache.k[row.clone()].iter_mut().chain(&mut cache.v[row]) {
                *e = T::from_f32(0.0);
            }
        }
        let kv_len = (pos0 + n) * kvd;
        let (k, v) = (&cache.k[..kv_len], &cache.v[..kv_len]);
        let qd = dims.n_head * dims.head_dim;
        let q = &b.q[..n * qd];
        let parts = self.pool.n_threads();
        let heads = |p: usize| -> Range<usize> { part_range(dims.n_head, p, parts, 1) };
        let hd = dims.head_dim;
        let split = ColumnSplit::new(&mut b.att[..n * qd], n, qd, parts, |p| {
            let h = heads(p);
            h.start * hd..h.end * hd
        });
        self.pool.run(|tid| {
            let h = heads(tid);
            let mut cols = split.take(tid);
            if h.is_empty() {
                return;
            }
            let mut ws = self.scratch[tid].lock().unwrap_or_else(|e| e.into_inner());
            let WorkerScratch {
                attn_out,
                attn_scratch,
                ..
            } = &mut *ws;
            let out = &mut attn_out[..n * qd];
            attention::flash_attention(self.isa, q, k, v, out, attn_scratch, dims, h.clone());
            let c = cols.cols();
            for t in 0..n {
                cols.row_mut(t)
                    .copy_from_slice(&out[t * qd + c.start..t * qd + c.end]);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_chunks_fit_a_split() {
        for threads in [1, 2, 3, 8, 16, 64] {
            for rows in [
                1, 8, 255, 256, 257, 2048, 5632, 16_384, 16_385, 32000, 152_064,
            ] {
                let chunk = decode_chunk_rows(rows, threads);
                let case = format!("rows {rows}, threads {threads}: chunk {chunk}");
                assert_eq!(chunk % ROW_ALIGN, 0, "{case}");
                assert!(rows.div_ceil(chunk) <= MAX_PARTS, "{case}");
                // One ROW_ALIGN less would make more than MAX_PARTS chunks.
                let forced = chunk > ROW_ALIGN && rows.div_ceil(chunk - ROW_ALIGN) > MAX_PARTS;
                if chunk > ROW_ALIGN && !forced {
                    // Four chunks a thread at least, and as large as that and the cap allow.
                    assert!(chunk <= DECODE_CHUNK_ROWS, "{case}");
                    assert!(rows / chunk >= 4 * threads, "{case}");
                    if chunk < DECODE_CHUNK_ROWS {
                        assert!(rows / (chunk + ROW_ALIGN) < 4 * threads, "{case}");
                    }
                }
            }
        }
        // Two threads, TinyLlama's matrices.
        assert_eq!(decode_chunk_rows(2048, 2), 256);
        assert_eq!(decode_chunk_rows(5632, 2), 256);
        assert_eq!(decode_chunk_rows(256, 2), 64);
        assert_eq!(decode_chunk_rows(32000, 2), 512);
    }

    #[test]
    fn prompt_chunks_fit_a_split() {
        for rows in [
            1,
            8,
            127,
            128,
            129,
            2048,
            5632,
            8192,
            8193,
            32000,
            49152,
            152_064,
            1 << 20,
        ] {
            let chunk = prompt_chunk_rows(rows);
            assert_eq!(chunk % CHUNK_ROWS, 0, "rows {rows}: chunk {chunk}");
            assert!(
                rows.div_ceil(chunk) <= MAX_PARTS,
                "rows {rows}: chunk {chunk}"
            );
            // The smallest such chunk: one CHUNK_ROWS less would need too many parts.
            if chunk > CHUNK_ROWS {
                assert!(rows.div_ceil(chunk - CHUNK_ROWS) > MAX_PARTS, "rows {rows}");
            }
        }
    }
}
