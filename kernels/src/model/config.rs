//! The hyper-parameters of a Llama-architecture model, read from GGUF metadata
//! (`{arch}.block_count`, `{arch}.embedding_length`, ...; keys in FORMATS.md).

use super::ModelError;
use crate::gguf::{Gguf, GgufError};

/// Everything the forward pass needs to know about the model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub n_vocab: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Hidden width of the SwiGLU feed-forward block.
    pub n_ff: usize,
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Values per head (`attention.key_length`, else `n_embd / n_head`).
    pub head_dim: usize,
    pub rope_base: f64,
    /// Linear RoPE scaling: positions are multiplied by this (`1 / scaling.factor`); 1 without.
    pub rope_pos_scale: f64,
    pub rms_eps: f32,
    /// The context length the model was trained with.
    pub n_ctx_train: usize,
}

fn opt_u32(g: &Gguf, key: &str) -> Result<Option<u32>, GgufError> {
    g.get(key).map(|_| g.get_u32(key)).transpose()
}

fn opt_f32(g: &Gguf, key: &str) -> Result<Option<f32>, GgufError> {
    g.get(key).map(|_| g.get_f32(key)).transpose()
}

impl Config {
    /// Reads and checks the hyper-parameters. Errors name the key at fault.
    pub fn from_gguf(g: &Gguf) -> Result<Config, ModelError> {
        let arch = g.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(ModelError::Unsupported(format!(
                "architecture `{arch}` (this forward pass runs `llama`)"
            )));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let req = |k: &str| -> Result<usize, ModelError> {
            let v = g.get_u32(&key(k))? as usize;
            if v == 0 {
                return Err(ModelError::BadConfig(format!("`{}` is 0", key(k))));
            }
            Ok(v)
        };
        let n_embd = req("embedding_length")?;
        let n_ff = req("feed_forward_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = match opt_u32(g, &key("attention.head_count_kv"))? {
            Some(v) => v as usize,
            None => n_head,
        };
        if n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) {
            return Err(ModelError::BadConfig(format!(
                "{n_head} query heads cannot be grouped over {n_head_kv} KV heads"
            )));
        }
        let head_dim = match opt_u32(g, &key("attention.key_length"))? {
            Some(v) => v as usize,
            None if n_embd.is_multiple_of(n_head) => n_embd / n_head,
            None => {
                return Err(ModelError::BadConfig(format!(
                    "embedding_length {n_embd} is not a multiple of head_count {n_head}"
                )))
            }
        };
        if let Some(v) = opt_u32(g, &key("attention.value_length"))? {
            if v as usize != head_dim {
                return Err(ModelError::Unsupported(format!(
                    "value_length {v} differs from key_length {head_dim}"
                )));
            }
        }
        if head_dim == 0 || !head_dim.is_multiple_of(16) {
            return Err(ModelError::Unsupported(format!(
                "head size {head_dim} (the attention kernels need a positive multiple of 16)"
            )));
        }
        if let Some(d) = opt_u32(g, &key("rope.dimension_count"))? {
            if d as usize != head_dim {
                return Err(ModelError::Unsupported(format!(
                    "RoPE over {d} of {head_dim} dimensions (partial rotary embedding)"
                )));
            }
        }
        let rope_base = opt_f32(g, &key("rope.freq_base"))?.unwrap_or(10000.0) as f64;
        if !(rope_base.is_finite() && rope_base > 1.0) {
            return Err(ModelError::BadConfig(format!("rope.freq_base {rope_base}")));
        }
        let rope_pos_scale = rope_scaling(g, arch)?;
        let rms_eps = opt_f32(g, &key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(ModelError::BadConfig(format!(
                "attention.layer_norm_rms_epsilon {rms_eps}"
            )));
        }
        let n_ctx_train = opt_u32(g, &key("context_length"))?.unwrap_or(2048) as usize;
        let n_vocab = g.require_tensor("token_embd.weight")?.n_rows() as usize;
        Ok(Config {
            n_vocab,
            n_embd,
            n_ff,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            rope_base,
            rope_pos_scale,
            rms_eps,
            n_ctx_train,
        })
    }

    /// Width of the query projection: `n_head * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key and value projections: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// `1 / factor` for linear scaling, 1 for none; other schemes are refused by name.
fn rope_scaling(g: &Gguf, arch: &str) -> Result<f64, ModelError> {
    let kind_key = format!("{arch}.rope.scaling.type");
    let factor_key = format!("{arch}.rope.scaling.factor");
    let legacy_key = format!("{arch}.rope.scale_linear");
    let kind = g.get(&kind_key).map(|_| g.get_str(&kind_key)).transpose()?;
    let factor = match kind {
        None | Some("none") => opt_f32(g, &legacy_key)?.unwrap_or(1.0),
        Some("linear") => opt_f32(g, &factor_key)?.unwrap_or(1.0),
        Some(other) => {
            return Err(ModelError::Unsupported(format!(
                "RoPE scaling `{other}` (supported: none, linear)"
            )))
        }
    };
    if g.tensor("rope_freqs.weight").is_some() {
        return Err(ModelError::Unsupported(
            "per-frequency RoPE factors (`rope_freqs.weight`, Llama 3.1 scaling)".into(),
        ));
    }
    if !(factor.is_finite() && factor > 0.0) {
        return Err(ModelError::BadConfig(format!(
            "RoPE scaling factor {factor}"
        )));
    }
    Ok(1.0 / factor as f64)
}
