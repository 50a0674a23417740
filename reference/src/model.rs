//! The Llama forward pass as ground truth, written the way llama2.c writes it: a [`Config`], the
//! [`Weights`] (every matrix dequantized once into f64 by this crate's own decoder), a
//! preallocated [`RunState`], and one [`Transformer::forward`] that reads top to bottom.
//!
//! Everything is f64 and naive: no quantized activations, no f16 cache, no tiling, no threads.
//! The file is read by this crate's own GGUF reader ([`crate::gguf`]); nothing here is shared
//! with `kernels`, so a wrong RoPE position, a KV cache row off by one or a misread tensor in the
//! fast forward pass shows up as a difference instead of being reproduced.
//!
//! The architecture (Llama 2 / 3, TinyLlama, SmolLM2), per token at position `pos`:
//! ```text
//! x = token_embd[token]
//! for each layer:
//!     h = rmsnorm(x) * attn_norm
//!     q, k, v = Wq h, Wk h, Wv h;  rotate q and k (adjacent pairs, angle pos * base^(-2i/hd))
//!     cache k, v at pos;  a = attention(q, cache[0..=pos]) (head h reads KV head h / group)
//!     x += Wo a
//!     h = rmsnorm(x) * ffn_norm
//!     x += W_down (silu(W_gate h) * W_up h)
//! logits = W_out (rmsnorm(x) * output_norm)      (W_out = token_embd when output.weight is absent)
//! ```

use crate::gguf::{Gguf, GgufError, Value};
use crate::ops;
use crate::quant::{self, Format};

/// The model's hyperparameters, from the GGUF metadata (`llama.*` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Width of the residual stream (`llama.embedding_length`).
    pub dim: usize,
    /// Width of the feed-forward layer (`llama.feed_forward_length`).
    pub hidden_dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Values per attention head (`llama.attention.key_length`, else dim / n_heads).
    pub head_dim: usize,
    /// Rows of the token embedding.
    pub vocab_size: usize,
    /// Positions the cache holds (the caller's context, at most `llama.context_length`).
    pub seq_len: usize,
    pub rope_base: f64,
    /// Linear RoPE scaling: positions are divided by this (`llama.rope.scaling.factor`), 1 when absent.
    pub rope_scale: f64,
    pub rms_eps: f64,
}

/// One layer's weights, dequantized. Matrices are row-major `[out][in]` (a GGUF tensor
/// `[ne0, ne1]` holds `ne1` rows of `ne0` values).
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// `[dim]`
    pub attn_norm: Vec<f64>,
    /// `[n_heads * head_dim][dim]`
    pub wq: Vec<f64>,
    /// `[n_kv_heads * head_dim][dim]`
    pub wk: Vec<f64>,
    /// `[n_kv_heads * head_dim][dim]`
    pub wv: Vec<f64>,
    /// `[dim][n_heads * head_dim]`
    pub wo: Vec<f64>,
    /// `[dim]`
    pub ffn_norm: Vec<f64>,
    /// `[hidden_dim][dim]`
    pub w_gate: Vec<f64>,
    /// `[hidden_dim][dim]`
    pub w_up: Vec<f64>,
    /// `[dim][hidden_dim]`
    pub w_down: Vec<f64>,
}

/// Every weight of the model, dequantized to f64.
#[derive(Clone, Debug)]
pub struct Weights {
    /// `[vocab_size][dim]`
    pub token_embd: Vec<f64>,
    pub layers: Vec<LayerWeights>,
    /// `[dim]`
    pub output_norm: Vec<f64>,
    /// `[vocab_size][dim]`; `None` when the output is tied to `token_embd` (SmolLM2).
    pub output: Option<Vec<f64>>,
}

/// The buffers of one forward step, allocated once.
#[derive(Clone, Debug)]
pub struct RunState {
    /// The residual stream, `[dim]`.
    pub x: Vec<f64>,
    /// Normalized input of the attention or the FFN, `[dim]`.
    pub xb: Vec<f64>,
    /// Attention output before Wo, `[n_heads * head_dim]`.
    pub att_out: Vec<f64>,
    /// `[dim]`
    pub xb2: Vec<f64>,
    /// FFN gate, then silu(gate) * up, `[hidden_dim]`.
    pub hb: Vec<f64>,
    /// FFN up, `[hidden_dim]`.
    pub hb2: Vec<f64>,
    /// `[n_heads * head_dim]`
    pub q: Vec<f64>,
    /// `[n_layers][seq_len][n_kv_heads * head_dim]`
    pub key_cache: Vec<f64>,
    /// `[n_layers][seq_len][n_kv_heads * head_dim]`
    pub value_cache: Vec<f64>,
    /// `[vocab_size]`
    pub logits: Vec<f64>,
}

/// A model ready to run.
#[derive(Clone, Debug)]
pub struct Transformer {
    pub config: Config,
    pub weights: Weights,
    pub state: RunState,
}

fn bad(msg: impl Into<String>) -> GgufError {
    GgufError(msg.into())
}

fn usize_key(g: &Gguf, key: &str) -> Result<usize, GgufError> {
    let v = g.int(key)?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| bad(format!("metadata `{key}` is {v}, not a positive size")))
}

/// The tensor `name`, checked to hold `rows` rows of `cols` values, dequantized.
fn matrix(
    g: &Gguf,
    bytes: &[u8],
    name: &str,
    cols: usize,
    rows: usize,
) -> Result<Vec<f64>, GgufError> {
    let t = g
        .tensor(name)
        .ok_or_else(|| bad(format!("tensor `{name}` is missing")))?;
    let want: Vec<u64> = if rows == 1 {
        vec![cols as u64]
    } else {
        vec![cols as u64, rows as u64]
    };
    if t.dims != want {
        return Err(bad(format!(
            "tensor `{name}` has dims {:?}, expected {want:?}",
            t.dims
        )));
    }
    let format = Format::from_ggml_type(t.ggml_type)
        .filter(|f| *f != Format::Q8K)
        .ok_or_else(|| {
            bad(format!(
                "tensor `{name}`: ggml type {} is not one the reference decodes",
                t.ggml_type
            ))
        })?;
    let data = g.data(bytes, t)?;
    quant::dequantize(format, data).map_err(|e| bad(format!("tensor `{name}`: {e}")))
}

impl Config {
    /// Reads the hyperparameters of a `llama` architecture file; `seq_len` is the context the
    /// caller will use.
    pub fn from_gguf(g: &Gguf, seq_len: usize) -> Result<Config, GgufError> {
        let arch = g.string("general.architecture")?;
        if arch != "llama" {
            return Err(bad(format!(
                "architecture `{arch}`: the reference runs `llama`"
            )));
        }
        let dim = usize_key(g, "llama.embedding_length")?;
        let n_heads = usize_key(g, "llama.attention.head_count")?;
        let n_kv_heads = match g.get("llama.attention.head_count_kv") {
            Some(_) => usize_key(g, "llama.attention.head_count_kv")?,
            None => n_heads,
        };
        if n_heads % n_kv_heads != 0 {
            return Err(bad(format!(
                "{n_heads} heads cannot be grouped over {n_kv_heads} KV heads"
            )));
        }
        let head_dim = match g.get("llama.attention.key_length") {
            Some(_) => usize_key(g, "llama.attention.key_length")?,
            None => dim / n_heads,
        };
        if let Some(Value::Int(rot)) = g.get("llama.rope.dimension_count") {
            if *rot != head_dim as i128 {
                return Err(bad(format!(
                    "rope over {rot} of {head_dim} head values (partial rotary) is not supported"
                )));
            }
        }
        let rope_scale = match g.get("llama.rope.scaling.type") {
            None => 1.0,
            Some(Value::Str(s)) if s == "none" => 1.0,
            Some(Value::Str(s)) if s == "linear" => g.float("llama.rope.scaling.factor")?,
            Some(v) => return Err(bad(format!("rope scaling {v:?} is not supported"))),
        };
        let ctx = usize_key(g, "llama.context_length")?;
        if seq_len == 0 || seq_len > ctx {
            return Err(bad(format!(
                "context {seq_len} outside the model's 1..={ctx}"
            )));
        }
        let embd = g
            .tensor("token_embd.weight")
            .ok_or_else(|| bad("tensor `token_embd.weight` is missing"))?;
        let vocab_size = match embd.dims.as_slice() {
            [_, v] => *v as usize,
            d => return Err(bad(format!("token_embd.weight has dims {d:?}"))),
        };
        Ok(Config {
            dim,
            hidden_dim: usize_key(g, "llama.feed_forward_length")?,
            n_layers: usize_key(g, "llama.block_count")?,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            seq_len,
            rope_base: match g.get("llama.rope.freq_base") {
                Some(_) => g.float("llama.rope.freq_base")?,
                None => 10_000.0,
            },
            rope_scale,
            rms_eps: g.float("llama.attention.layer_norm_rms_epsilon")?,
        })
    }

    fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
}

impl Weights {
    pub fn from_gguf(g: &Gguf, bytes: &[u8], c: &Config) -> Result<Weights, GgufError> {
        let (dim, q_dim, kv_dim, hidden) = (c.dim, c.q_dim(), c.kv_dim(), c.hidden_dim);
        let mut layers = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let name = |t: &str| format!("blk.{l}.{t}.weight");
            layers.push(LayerWeights {
                attn_norm: matrix(g, bytes, &name("attn_norm"), dim, 1)?,
                wq: matrix(g, bytes, &name("attn_q"), dim, q_dim)?,
                wk: matrix(g, bytes, &name("attn_k"), dim, kv_dim)?,
                wv: matrix(g, bytes, &name("attn_v"), dim, kv_dim)?,
                wo: matrix(g, bytes, &name("attn_output"), q_dim, dim)?,
                ffn_norm: matrix(g, bytes, &name("ffn_norm"), dim, 1)?,
                w_gate: matrix(g, bytes, &name("ffn_gate"), dim, hidden)?,
                w_up: matrix(g, bytes, &name("ffn_up"), dim, hidden)?,
                w_down: matrix(g, bytes, &name("ffn_down"), hidden, dim)?,
            });
        }
        Ok(Weights {
            token_embd: matrix(g, bytes, "token_embd.weight", dim, c.vocab_size)?,
            layers,
            output_norm: matrix(g, bytes, "output_norm.weight", dim, 1)?,
            output: match g.tensor("output.weight") {
                Some(_) => Some(matrix(g, bytes, "output.weight", dim, c.vocab_size)?),
                None => None,
            },
        })
    }
}

impl RunState {
    pub fn new(c: &Config) -> RunState {
        let cache = c.n_layers * c.seq_len * c.kv_dim();
        RunState {
            x: vec![0.0; c.dim],
            xb: vec![0.0; c.dim],
            att_out: vec![0.0; c.q_dim()],
            xb2: vec![0.0; c.dim],
            hb: vec![0.0; c.hidden_dim],
            hb2: vec![0.0; c.hidden_dim],
            q: vec![0.0; c.q_dim()],
            key_cache: vec![0.0; cache],
            value_cache: vec![0.0; cache],
            logits: vec![0.0; c.vocab_size],
        }
    }
}

/// `out[i] = sum_j w[i][j] x[j]` for `out.len()` rows of `x.len()` values.
fn matvec(out: &mut [f64], w: &[f64], x: &[f64]) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
        *o = row.iter().zip(x).map(|(a, b)| a * b).sum();
    }
}

/// Adjacent-pair RoPE of every head of `v` at the (possibly scaled) position `pos`.
fn rope(v: &mut [f64], head_dim: usize, pos: f64, base: f64) {
    for head in v.chunks_exact_mut(head_dim) {
        for i in 0..head_dim / 2 {
            let angle = pos * base.powf(-((2 * i) as f64) / head_dim as f64);
            let (s, c) = angle.sin_cos();
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * c - b * s;
            head[2 * i + 1] = a * s + b * c;
        }
    }
}

impl Transformer {
    /// Reads and dequantizes a whole model for a context of `seq_len` positions.
    pub fn from_gguf(bytes: &[u8], seq_len: usize) -> Result<Transformer, GgufError> {
        let g = Gguf::parse(bytes)?;
        let config = Config::from_gguf(&g, seq_len)?;
        let weights = Weights::from_gguf(&g, bytes, &config)?;
        let state = RunState::new(&config);
        Ok(Transformer {
            config,
            weights,
            state,
        })
    }

    /// Runs `token` at position `pos` (every earlier position must have been run, in order)
    /// and returns the next-token logits.
    ///
    /// # Panics
    /// If `token` is not below the vocabulary size or `pos` not below `seq_len`.
    pub fn forward(&mut self, token: usize, pos: usize) -> &[f64] {
        let c = &self.config;
        let w = &self.weights;
        let s = &mut self.state;
        assert!(token < c.vocab_size, "token {token} outside the vocabulary");
        assert!(pos < c.seq_len, "position {pos} beyond the context");
        let (dim, kv_dim, hd) = (c.dim, c.kv_dim(), c.head_dim);

        s.x.copy_from_slice(&w.token_embd[token * dim..(token + 1) * dim]);

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention.
            ops::rmsnorm(&s.x, &lw.attn_norm, c.rms_eps, &mut s.xb);
            let cache_at = (l * c.seq_len + pos) * kv_dim;
            let layer_cache = l * c.seq_len * kv_dim..cache_at + kv_dim;
            matvec(&mut s.q, &lw.wq, &s.xb);
            matvec(&mut s.key_cache[cache_at..cache_at + kv_dim], &lw.wk, &s.xb);
            matvec(
                &mut s.value_cache[cache_at..cache_at + kv_dim],
                &lw.wv,
                &s.xb,
            );
            let rope_pos = pos as f64 / c.rope_scale;
            rope(&mut s.q, hd, rope_pos, c.rope_base);
            rope(
                &mut s.key_cache[cache_at..cache_at + kv_dim],
                hd,
                rope_pos,
                c.rope_base,
            );
            crate::attention::attention(
                &s.q,
                &s.key_cache[layer_cache.clone()],
                &s.value_cache[layer_cache],
                &mut s.att_out,
                crate::attention::AttnDims {
                    n_q: 1,
                    n_head: c.n_heads,
                    n_head_kv: c.n_kv_heads,
                    head_dim: hd,
                    pos0: pos,
                },
                0..c.n_heads,
            );
            matvec(&mut s.xb2, &lw.wo, &s.att_out);
            ops::residual_add(&mut s.x, &s.xb2);

            // Feed-forward.
            ops::rmsnorm(&s.x, &lw.ffn_norm, c.rms_eps, &mut s.xb);
            matvec(&mut s.hb, &lw.w_gate, &s.xb);
            matvec(&mut s.hb2, &lw.w_up, &s.xb);
            for (g, u) in s.hb.iter_mut().zip(&s.hb2) {
                *g = ops::silu(*g) * u;
            }
            matvec(&mut s.xb2, &lw.w_down, &s.hb);
            ops::residual_add(&mut s.x, &s.xb2);
        }

        ops::rmsnorm(&s.x, &w.output_norm, c.rms_eps, &mut s.xb);
        let out = w.output.as_deref().unwrap_or(&w.token_embd);
        matvec(&mut s.logits, out, &s.xb);
        &s.logits
    }
}
