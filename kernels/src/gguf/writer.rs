//! `GgufWriter`: GGUF v3 files with metadata of every value type (arrays of each, nested
//! arrays included) and tensors aligned to `general.alignment`.
//!
//! Tensors are declared first (name, dims, type), which fixes every offset; the header then
//! goes out, and the tensors' bytes follow in declaration order, so a large file can be
//! streamed without holding all its data at once.

use super::reader::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_DIMS};
use super::value::{Value, ValueType};
use super::{GgmlType, GgufError};
use std::collections::HashSet;
use std::io::Write;

/// An owned metadata value for the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    /// Element type and elements (all of that type; checked when added).
    Array(ValueType, Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::Str(_) => ValueType::Str,
            MetaValue::Array(..) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// A string array.
    pub fn str_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> MetaValue {
        MetaValue::Array(
            ValueType::Str,
            items
                .into_iter()
                .map(|s| MetaValue::Str(s.into()))
                .collect(),
        )
    }

    /// An owned copy of a value read from a file (for copying keys between files).
    pub fn from_value(v: &Value<'_>) -> MetaValue {
        match v {
            Value::U8(x) => MetaValue::U8(*x),
            Value::I8(x) => MetaValue::I8(*x),
            Value::U16(x) => MetaValue::U16(*x),
            Value::I16(x) => MetaValue::I16(*x),
            Value::U32(x) => MetaValue::U32(*x),
            Value::I32(x) => MetaValue::I32(*x),
            Value::F32(x) => MetaValue::F32(*x),
            Value::Bool(x) => MetaValue::Bool(*x),
            Value::Str(s) => MetaValue::Str(s.to_string()),
            Value::Array(a) => MetaValue::Array(
                a.elem_type(),
                a.iter_values().map(|e| MetaValue::from_value(&e)).collect(),
            ),
            Value::U64(x) => MetaValue::U64(*x),
            Value::I64(x) => MetaValue::I64(*x),
            Value::F64(x) => MetaValue::F64(*x),
        }
    }

    fn check(&self, key: &str, depth: u32) -> Result<(), GgufError> {
        if let MetaValue::Array(elem, items) = self {
            if depth > super::MAX_ARRAY_DEPTH {
                return Err(GgufError::Write(format!("`{key}`: arrays nested too deep")));
            }
            for item in items {
                if item.value_type() != *elem {
                    return Err(GgufError::Write(format!(
                        "`{key}`: array of {} holds a {}",
                        elem.name(),
                        item.value_type().name()
                    )));
                }
                item.check(key, depth + 1)?;
            }
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(x) => out.push(*x),
            MetaValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::Bool(x) => out.push(u8::from(*x)),
            MetaValue::Str(s) => encode_str(s, out),
            MetaValue::Array(elem, items) => {
                out.extend_from_slice(&elem.id().to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    item.encode(out);
                }
            }
            MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Where a declared tensor goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSlot {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset relative to the data section (a multiple of the alignment).
    pub offset: u64,
    pub n_bytes: u64,
}

/// Builds a GGUF v3 file: metadata, then declared tensors, then [`GgufWriter::write_header`]
/// and one [`GgufWriter::write_tensor_data`] per tensor in order (or [`GgufWriter::write_all`]).
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    keys: HashSet<String>,
    tensors: Vec<TensorSlot>,
    names: HashSet<String>,
    data_len: u64,
    /// Tensor data held by `add_tensor`, for `write_all`.
    held: Vec<Vec<u8>>,
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// The data alignment: `general.alignment` if set (a u32 power of two), else 32.
    pub fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == ALIGNMENT_KEY)
            .and_then(|(_, v)| match v {
                MetaValue::U32(a) => Some(u64::from(*a)),
                _ => None,
            })
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Adds a metadata entry. Keys are unique; `general.alignment` must be a u32 power of two
    /// and must come before any tensor is declared (it moves every offset).
    pub fn add_meta(&mut self, key: &str, value: MetaValue) -> Result<(), GgufError> {
        if key.is_empty() || self.keys.contains(key) {
            return Err(GgufError::Write(format!("empty or duplicate key `{key}`")));
        }
        value.check(key, 1)?;
        if key == ALIGNMENT_KEY {
            if !matches!(value, MetaValue::U32(a) if a.is_power_of_two()) {
                return Err(GgufError::Write(format!(
                    "`{ALIGNMENT_KEY}` must be a u32 power of two, not {value:?}"
                )));
            }
            if !self.tensors.is_empty() {
                return Err(GgufError::Write(format!(
                    "`{ALIGNMENT_KEY}` must be set before tensors are declared"
                )));
            }
        }
        self.keys.insert(key.to_string());
        self.metadata.push((key.to_string(), value));
        Ok(())
    }

    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// Declares a tensor and returns its index; its data must later be `n_bytes` long.
    pub fn declare_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: GgmlType,
    ) -> Result<usize, GgufError> {
        if self.names.contains(name) {
            return Err(GgufError::Write(format!("duplicate tensor `{name}`")));
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(GgufError::Write(format!(
                "tensor `{name}`: more than {MAX_DIMS} dims"
            )));
        }
        let n_bytes = dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| ggml_type.bytes_for(n))
            .ok_or_else(|| {
                GgufError::Write(format!(
                    "tensor `{name}`: dims {dims:?} are not a whole number of {ggml_type} blocks"
                ))
            })?;
        let offset = self.data_len;
        self.data_len = offset
            .checked_add(n_bytes)
            .and_then(|e| e.checked_next_multiple_of(self.alignment()))
            .ok_or_else(|| GgufError::Write("data section overflows".into()))?;
        self.names.insert(name.to_string());
        self.tensors.push(TensorSlot {
            name: name.to_string(),
            dims: dims.to_vec(),
            ggml_type,
            offset,
            n_bytes,
        });
        Ok(self.tensors.len() - 1)
    }

    /// Declares a tensor and keeps its bytes for [`GgufWriter::write_all`].
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<usize, GgufError> {
        let i = self.declare_tensor(name, dims, ggml_type)?;
        if data.len() as u64 != self.tensors[i].n_bytes {
            return Err(GgufError::Write(format!(
                "tensor `{name}`: {} bytes given, {} expected",
                data.len(),
                self.tensors[i].n_bytes
            )));
        }
        self.held.resize(i, Vec::new());
        self.held.push(data);
        Ok(i)
    }

    pub fn tensors(&self) -> &[TensorSlot] {
        &self.tensors
    }

    /// The header, metadata, tensor infos and the padding up to the data section.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            encode_str(key, &mut out);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            value.encode(&mut out);
        }
        for t in &self.tensors {
            encode_str(&t.name, &mut out);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        let aligned = (out.len() as u64).next_multiple_of(self.alignment());
        out.resize(aligned as usize, 0);
        out
    }

    /// Total file size once every tensor is written.
    pub fn file_len(&self) -> u64 {
        self.header_bytes().len() as u64 + self.data_len
    }

    pub fn write_header(&self, w: &mut impl Write) -> Result<(), GgufError> {
        w.write_all(&self.header_bytes()).map_err(write_err)
    }

    /// Writes tensor `index`'s data and the padding after it. Tensors must be written in
    /// declaration order, right after the header.
    pub fn write_tensor_data(
        &self,
        w: &mut impl Write,
        index: usize,
        data: &[u8],
    ) -> Result<(), GgufError> {
        let t = self
            .tensors
            .get(index)
            .ok_or_else(|| GgufError::Write(format!("no tensor {index}")))?;
        if data.len() as u64 != t.n_bytes {
            return Err(GgufError::Write(format!(
                "tensor `{}`: {} bytes given, {} expected",
                t.name,
                data.len(),
                t.n_bytes
            )));
        }
        let end = self
            .tensors
            .get(index + 1)
            .map_or(self.data_len, |n| n.offset);
        w.write_all(data).map_err(write_err)?;
        let pad = (end - t.offset - t.n_bytes) as usize;
        w.write_all(&vec![0u8; pad]).map_err(write_err)
    }

    /// Writes the whole file; every tensor must have been given with `add_tensor`.
    pub fn write_all(&self, w: &mut impl Write) -> Result<(), GgufError> {
        if self.held.len() != self.tensors.len() {
            return Err(GgufError::Write(
                "write_all needs every tensor's data (use add_tensor)".into(),
            ));
        }
        self.write_header(w)?;
        for (i, data) in self.held.iter().enumerate() {
            self.write_tensor_data(w, i, data)?;
        }
        Ok(())
    }

    /// The whole file in memory (tests and small files).
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_all(&mut out)?;
        Ok(out)
    }
}

fn write_err(e: std::io::Error) -> GgufError {
    GgufError::Io {
        path: "<output>".into(),
        source: e,
    }
}
