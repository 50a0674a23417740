//! `harness inspect FILE [--json]`: what a GGUF file holds: metadata (long arrays summarized),
//! a tensor table (name, type, shape, offset, bytes), totals by type, the parameter count and
//! bits per weight. A tensor type the project cannot run is listed like any other and marked.

use anyhow::{Context, Result};
use kernels::gguf::{Array, GgmlType, Gguf, GgufFile, TensorInfo, Value};
use kernels::quant::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8_0, QuantBlock};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Array elements shown before "... (N more)".
const ARRAY_HEAD: usize = 6;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The GGUF file.
    pub file: PathBuf,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// (Tests) with --json: add each tensor's first N values as `kernels::quant` dequantizes
    /// them, and the sum and sum of squares of all its values.
    #[arg(long, hide = true, requires = "json")]
    pub dump_values: Option<usize>,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let file = GgufFile::open(&args.file).with_context(|| args.file.display().to_string())?;
    let g = file.gguf();
    if args.json {
        let doc = to_json(g, file.len(), args.dump_values)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!(
            "{}",
            to_text(g, &args.file.display().to_string(), file.len())
        );
    }
    Ok(())
}

fn scalar_text(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Array(a) => array_text(a),
        v => v
            .as_integer()
            .map(|i| i.to_string())
            .or_else(|| v.as_bool().map(|b| b.to_string()))
            .unwrap_or_default(),
    }
}

fn array_text(a: &Array<'_>) -> String {
    let head: Vec<String> = a
        .iter_values()
        .take(ARRAY_HEAD)
        .map(|v| scalar_text(&v))
        .collect();
    let more = a.len().saturating_sub(ARRAY_HEAD);
    let tail = if more > 0 {
        format!(", ... ({more} more)")
    } else {
        String::new()
    };
    format!("[{}{tail}]", head.join(", "))
}

fn type_text(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("[{}; {}]", a.elem_type().name(), a.len()),
        v => v.type_name(),
    }
}

fn shape_text(t: &TensorInfo<'_>) -> String {
    let dims: Vec<String> = t.dims.iter().map(u64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Whether `kernels` has the block format to run a tensor of this type.
fn runnable(t: GgmlType) -> bool {
    t.to_quant().is_some()
}

struct Totals {
    by_type: BTreeMap<String, (usize, u64, u64)>,
    params: u64,
    bytes: u64,
    unknown: usize,
}

fn totals(g: &Gguf<'_>) -> Totals {
    let mut by_type = BTreeMap::new();
    let (mut params, mut bytes, mut unknown) = (0u64, 0u64, 0);
    for t in g.tensors() {
        let e: &mut (usize, u64, u64) = by_type.entry(t.ggml_type.name()).or_default();
        e.0 += 1;
        e.1 += t.n_elements();
        match t.n_bytes() {
            Some(b) => {
                e.2 += b;
                params += t.n_elements();
                bytes += b;
            }
            None => unknown += 1,
        }
    }
    Totals {
        by_type,
        params,
        bytes,
        unknown,
    }
}

fn bpw(bytes: u64, params: u64) -> f64 {
    if params == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / params as f64
    }
}

fn to_text(g: &Gguf<'_>, path: &str, file_len: u64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{path}: GGUF v{}, {file_len} bytes, alignment {}, {} metadata entries, {} tensors, data at offset {}",
        g.version(),
        g.alignment(),
        g.metadata().len(),
        g.tensors().len(),
        g.data_offset()
    );
    let _ = writeln!(s, "\nmetadata:");
    let key_w = g.metadata().iter().map(|e| e.key.len()).max().unwrap_or(0);
    for e in g.metadata() {
        let _ = writeln!(
            s,
            "  {:key_w$}  {:<16} {}",
            e.key,
            type_text(&e.value),
            scalar_text(&e.value)
        );
    }
    if g.tensors().is_empty() {
        let _ = writeln!(s, "\ntensors: none (a vocab-only file)");
        return s;
    }
    let name_w = g
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        s,
        "\ntensors:\n  {:>4}  {:name_w$}  {:<8} {:<20} {:>12} {:>12}",
        "#", "name", "type", "shape", "offset", "bytes"
    );
    for (i, t) in g.tensors().iter().enumerate() {
        let bytes = t.n_bytes().map_or("?".into(), |b| b.to_string());
        let note = if runnable(t.ggml_type) {
            ""
        } else {
            "  (no kernels for this type)"
        };
        let _ = writeln!(
            s,
            "  {i:>4}  {:name_w$}  {:<8} {:<20} {:>12} {:>12}{note}",
            t.name,
            t.ggml_type.name(),
            shape_text(t),
            t.offset,
            bytes
        );
    }
    let tot = totals(g);
    let _ = writeln!(s, "\ntotals by type:");
    for (ty, (n, params, bytes)) in &tot.by_type {
        let _ = writeln!(
            s,
            "  {ty:<8} {n:>5} tensors {params:>14} params {bytes:>14} bytes {:>7.3} bits/weight",
            bpw(*bytes, *params)
        );
    }
    let _ = writeln!(
        s,
        "\ntotal: {} parameters, {} bytes of tensor data ({:.1} MiB), {:.3} bits per weight",
        tot.params,
        tot.bytes,
        tot.bytes as f64 / (1 << 20) as f64,
        bpw(tot.bytes, tot.params)
    );
    if tot.unknown > 0 {
        let _ = writeln!(
            s,
            "({} tensors of unknown type are not counted)",
            tot.unknown
        );
    }
    s
}

fn value_json(v: &Value<'_>) -> Json {
    match v {
        Value::Str(s) => json!(s),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Bool(b) => json!(b),
        Value::Array(a) => json!({
            "elem_type": a.elem_type().name(),
            "len": a.len(),
            "head": a.iter_values().take(ARRAY_HEAD).map(|e| value_json(&e)).collect::<Vec<_>>(),
        }),
        v => v
            .as_i64()
            .map(|i| json!(i))
            .or_else(|| v.as_u64().map(|u| json!(u)))
            .unwrap_or(Json::Null),
    }
}

fn dequantize_with<B: QuantBlock>(data: &[u8]) -> Vec<f32> {
    // A copy, so that the blocks are aligned whatever the tensor's offset.
    let mut blocks = vec![B::zeroed(); data.len() / std::mem::size_of::<B>()];
    bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(data);
    let mut out = vec![0f32; blocks.len() * B::VALUES];
    B::dequantize_row(&blocks, &mut out);
    out
}

/// A tensor's values as `kernels::quant` decodes them, `None` for a type it has no format for.
pub fn dequantize(t: &TensorInfo<'_>) -> Option<Vec<f32>> {
    Some(match t.ggml_type {
        GgmlType::F32 => dequantize_with::<f32>(t.data),
        GgmlType::F16 => dequantize_with::<half::f16>(t.data),
        GgmlType::Q4K => dequantize_with::<BlockQ4K>(t.data),
        GgmlType::Q6K => dequantize_with::<BlockQ6K>(t.data),
        GgmlType::Q8_0 => dequantize_with::<BlockQ8_0>(t.data),
        GgmlType::Q4_0 => dequantize_with::<BlockQ4_0>(t.data),
        GgmlType::Q4_1 => dequantize_with::<BlockQ4_1>(t.data),
        GgmlType::Q5_0 => dequantize_with::<BlockQ5_0>(t.data),
        _ => return None,
    })
}

fn to_json(g: &Gguf<'_>, file_len: u64, dump_values: Option<usize>) -> Result<Json> {
    let metadata: Vec<Json> = g
        .metadata()
        .iter()
        .map(|e| json!({"key": e.key, "type": type_text(&e.value), "value": value_json(&e.value)}))
        .collect();
    let mut tensors = Vec::new();
    for t in g.tensors() {
        let mut row = json!({
            "name": t.name,
            "type": t.ggml_type.name(),
            "type_id": t.ggml_type.id(),
            "dims": t.dims,
            "offset": t.offset,
            "file_offset": g.data_offset() + t.offset,
            "bytes": t.n_bytes(),
            "runnable": runnable(t.ggml_type),
        });
        if let (Some(n), Some(values)) = (dump_values, dump_values.and_then(|_| dequantize(t))) {
            let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
            let sum_sq: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            row["values"] = json!(values[..n.min(values.len())]);
            row["sum"] = json!(sum);
            row["sum_sq"] = json!(sum_sq);
        }
        tensors.push(row);
    }
    let tot = totals(g);
    let by_type: Vec<Json> = tot
        .by_type
        .iter()
        .map(|(ty, (n, params, bytes))| json!({"type": ty, "tensors": n, "params": params, "bytes": bytes}))
        .collect();
    Ok(json!({
        "version": g.version(),
        "alignment": g.alignment(),
        "file_len": file_len,
        "data_offset": g.data_offset(),
        "metadata": metadata,
        "tensors": tensors,
        "totals_by_type": by_type,
        "parameters": tot.params,
        "tensor_bytes": tot.bytes,
        "bits_per_weight": bpw(tot.bytes, tot.params),
    }))
}
