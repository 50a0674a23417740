//! `Gguf::parse`: the whole header, metadata and tensor-info region validated up front, tensor
//! data borrowed from the input slice.

use super::cursor::Cursor;
use super::value::{Array, Value, ValueType};
use super::{GgmlType, GgufError};
use std::collections::HashMap;

/// The data section's alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: u32 = 4;
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Smallest metadata entry: an empty key (8-byte length), a type id and a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest tensor info: an empty name, `n_dims` = 0, a type id and an offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// One metadata entry, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaEntry<'a> {
    pub key: &'a str,
    pub value: Value<'a>,
    /// File offset of the entry (its key's length field).
    pub offset: u64,
}

/// One tensor: its info and its bytes, borrowed from the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    /// dims[0] is the row length (contiguous); at most [`MAX_DIMS`].
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the data section, as stored.
    pub offset: u64,
    /// The tensor's bytes. For a type of unknown layout: the bytes from its offset up to the
    /// next tensor or the end of the file (its size cannot be known).
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// Values in the tensor (the product of the dims; the reader checked it fits).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Length of one row (dims[0]; 1 for a tensor without dims).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Rows: the product of dims[1..].
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// The tensor's size in bytes, `None` if its type's layout is unknown.
    pub fn n_bytes(&self) -> Option<u64> {
        self.ggml_type.bytes_for(self.n_elements())
    }
}

/// A parsed, fully validated GGUF file (version 2 or 3) borrowing `&'a [u8]`.
#[derive(Clone, Debug)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<MetaEntry<'a>>,
    meta_index: HashMap<&'a str, usize>,
    tensors: Vec<TensorInfo<'a>>,
    tensor_index: HashMap<&'a str, usize>,
}

impl<'a> Gguf<'a> {
    /// Parses and validates `bytes` as a GGUF file. Nothing is copied: strings, arrays and
    /// tensor data borrow from `bytes`. Any inconsistency is an error naming the field and its
    /// offset; no count or size in the file can make this allocate more than a small multiple
    /// of `bytes.len()`.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>, GgufError> {
        let mut cur = Cursor::new(bytes);
        let magic: [u8; 4] = cur
            .take(4, &|| "header: magic".into())?
            .try_into()
            .unwrap_or_default();
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = cur.u32(&|| "header: version".into())?;
        if version != 2 && version != 3 {
            let hint = if version == 1 {
                " (version 1 used 32-bit counts)"
            } else if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
                " (this looks like a big-endian file; only little-endian files are read)"
            } else {
                ""
            };
            return Err(GgufError::UnsupportedVersion { version, hint });
        }
        let tensor_count = cur.u64(&|| "header: tensor_count".into())?;
        let kv_count = cur.u64(&|| "header: kv_count".into())?;
        // Each count alone must fit in what is left; the tensor count is checked again once
        // the metadata has been read.
        let n_kv = cur.check_count(kv_count, MIN_KV_BYTES, &|| "header: kv_count".into())?;
        cur.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, &|| {
            "header: tensor_count".into()
        })?;

        let mut metadata = Vec::with_capacity(n_kv);
        let mut meta_index = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let offset = cur.offset();
            let key = cur.string(&|| format!("metadata entry {i}: key"))?;
            if key.is_empty() {
                return Err(cur.invalid(offset, format!("metadata entry {i}"), "empty key".into()));
            }
            let type_at = cur.offset();
            let type_id = cur.u32(&|| format!("metadata `{key}`: value type"))?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| {
                cur.invalid(
                    type_at,
                    format!("metadata `{key}`"),
                    format!("unknown value type id {type_id}"),
                )
            })?;
            let value = cur.value(key, ty, 1)?;
            if meta_index.insert(key, i).is_some() {
                return Err(cur.invalid(
                    offset,
                    format!("metadata entry {i} `{key}`"),
                    "duplicate key".into(),
                ));
            }
            metadata.push(MetaEntry { key, value, offset });
        }

        let alignment = match meta_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i]) {
            None => DEFAULT_ALIGNMENT,
            Some(entry) => match entry.value {
                Value::U32(a) if a.is_power_of_two() => u64::from(a),
                ref v => {
                    return Err(cur.invalid(
                        entry.offset,
                        format!("metadata `{ALIGNMENT_KEY}`"),
                        format!("must be a u32 power of two, found {} {v:?}", v.type_name()),
                    ))
                }
            },
        };

        let n_tensors = cur.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, &|| {
            format!("tensor infos: tensor_count {tensor_count}")
        })?;
        let mut infos = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let info_at = cur.offset();
            let name = cur.string(&|| format!("tensor {i}: name"))?;
            let what = |field: &str| format!("tensor {i} `{name}`: {field}");
            let dims_at = cur.offset();
            let n_dims = cur.u32(&|| what("n_dims"))?;
            if n_dims > MAX_DIMS {
                return Err(cur.invalid(
                    dims_at,
                    what("n_dims"),
                    format!("{n_dims} dimensions, at most {MAX_DIMS} allowed"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            let mut n_elements: u64 = 1;
            for d in 0..n_dims {
                let at = cur.offset();
                let dim = cur.u64(&|| what(&format!("dims[{d}]")))?;
                // ggml counts elements in i64.
                n_elements = n_elements
                    .checked_mul(dim)
                    .filter(|&n| n <= i64::MAX as u64)
                    .ok_or_else(|| {
                        cur.invalid(
                            at,
                            what(&format!("dims[{d}] = {dim}")),
                            "the element count overflows 63 bits".into(),
                        )
                    })?;
                dims.push(dim);
            }
            let type_at = cur.offset();
            let ggml_type = GgmlType::from_id(cur.u32(&|| what("type"))?);
            let offset_at = cur.offset();
            let offset = cur.u64(&|| what("offset"))?;
            if let Some((block_values, _)) = ggml_type.block_layout() {
                let row = dims.first().copied().unwrap_or(1);
                if !row.is_multiple_of(block_values) {
                    return Err(cur.invalid(
                        type_at,
                        what("type"),
                        format!("a row of {row} values is not a whole number of {ggml_type} blocks ({block_values} values)"),
                    ));
                }
                if ggml_type.bytes_for(n_elements).is_none() {
                    return Err(cur.invalid(
                        dims_at,
                        what("dims"),
                        format!("{dims:?} {ggml_type} values take more than 2^64 bytes"),
                    ));
                }
            }
            if !offset.is_multiple_of(alignment) {
                return Err(cur.invalid(
                    offset_at,
                    what("offset"),
                    format!("data offset {offset} is not a multiple of the alignment {alignment}"),
                ));
            }
            if tensor_index.insert(name, i).is_some() {
                return Err(cur.invalid(info_at, what("name"), "duplicate tensor name".into()));
            }
            infos.push((name, dims, ggml_type, offset, n_elements));
        }

        let data_offset = (cur.pos() as u64)
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| {
                cur.invalid(
                    cur.offset(),
                    "data section".into(),
                    "start overflows".into(),
                )
            })?;
        let file_len = bytes.len() as u64;
        let tensors = place_tensors(bytes, data_offset, infos)?;
        if !tensors.is_empty() && data_offset > file_len {
            return Err(GgufError::Truncated {
                what: "data section (padding to the alignment)".into(),
                offset: cur.offset(),
                needed: data_offset - cur.offset(),
                file_len,
            });
        }
        Ok(Gguf {
            bytes,
            version,
            alignment,
            data_offset,
            metadata,
            meta_index,
            tensors,
            tensor_index,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// File offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The metadata in file order.
    pub fn metadata(&self) -> &[MetaEntry<'a>] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].value)
    }

    fn require(&self, key: &str) -> Result<&Value<'a>, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&Value<'a>) -> Option<T>,
    ) -> Result<T, GgufError> {
        let v = self.require(key)?;
        convert(v).ok_or_else(|| GgufError::WrongType {
            key: key.to_string(),
            expected: expected.to_string(),
            found: match v {
                Value::Array(a) => {
                    format!("array of {} ({} entries)", a.elem_type().name(), a.len())
                }
                Value::Str(s) => format!("string {s:?}"),
                v => format!("{} {v:?}", v.type_name()),
            },
        })
    }

    /// Any integer value that fits a u32.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.typed(key, "an integer that fits u32", Value::as_u32)
    }

    /// Any integer value that fits a u64.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.typed(key, "an integer that fits u64", Value::as_u64)
    }

    /// An f32 (or f64) value.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.typed(key, "f32", Value::as_f32)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        self.typed(key, "bool", Value::as_bool)
    }

    pub fn get_str(&self, key: &str) -> Result<&'a str, GgufError> {
        self.typed(key, "string", Value::as_str)
    }

    pub fn get_array(&self, key: &str) -> Result<&Array<'a>, GgufError> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| GgufError::WrongType {
            key: key.to_string(),
            expected: "array".into(),
            found: v.type_name(),
        })
    }

    /// The tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Like [`Gguf::tensor`], but a missing tensor is an error.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo<'a>, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            name: name.to_string(),
        })
    }
}

type RawInfo<'a> = (&'a str, Vec<u64>, GgmlType, u64, u64);

/// Checks every tensor's data lies inside the file and no two overlap, and borrows each one's
/// bytes.
fn place_tensors<'a>(
    bytes: &'a [u8],
    data_offset: u64,
    infos: Vec<RawInfo<'a>>,
) -> Result<Vec<TensorInfo<'a>>, GgufError> {
    let file_len = bytes.len() as u64;
    // (start, size or None, index): start is the absolute file offset.
    let mut spans = Vec::with_capacity(infos.len());
    for (i, &(name, _, ty, offset, n_elements)) in infos.iter().enumerate() {
        let size = ty.bytes_for(n_elements);
        let start = data_offset.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(size.unwrap_or(0)));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => spans.push((start, size, i)),
            _ => {
                return Err(GgufError::DataOutOfBounds {
                    index: i,
                    name: name.to_string(),
                    offset: start.unwrap_or(u64::MAX),
                    size: size.unwrap_or(0),
                    file_len,
                })
            }
        }
    }
    spans.sort_unstable();
    let mut ranges = vec![(0usize, 0usize); infos.len()];
    for (k, &(start, size, i)) in spans.iter().enumerate() {
        let next_start = spans.get(k + 1).map_or(file_len, |s| s.0);
        let end = match size {
            Some(size) => start + size,
            None => next_start,
        };
        if end > next_start && size != Some(0) {
            let j = spans[k + 1].2;
            return Err(GgufError::DataOverlap {
                index: i,
                name: infos[i].0.to_string(),
                offset: start,
                size: end - start,
                other: j,
                other_name: infos[j].0.to_string(),
            });
        }
        // Both ends are within the file, which fits in memory.
        ranges[i] = (start as usize, end as usize);
    }
    Ok(infos
        .into_iter()
        .zip(ranges)
        .map(|((name, dims, ggml_type, offset, _), (s, e))| TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            data: &bytes[s..e],
        })
        .collect())
}
