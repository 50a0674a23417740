//! The reference's own GGUF reader: small, safe and separate from `kernels::gguf`, so that a
//! parsing or layout bug in one cannot be reproduced by the other when the harness compares the
//! two forward passes.
//!
//! The container, as the GGUF specification (versions 2 and 3) lays it out; every integer is
//! little-endian:
//! - header: the magic `GGUF`, `u32` version, `u64` tensor count, `u64` metadata count;
//! - metadata: key (string), `u32` value type, value. Types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32,
//!   5 i32, 6 f32, 7 bool, 8 string, 9 array (`u32` element type, `u64` count, elements), 10 u64,
//!   11 i64, 12 f64. A string is a `u64` byte length and UTF-8 bytes;
//! - tensor infos: name, `u32` n_dims, `u64` dims (dims[0] is the contiguous row length),
//!   `u32` ggml type, `u64` offset relative to the data section;
//! - the data section starts at the first multiple of `general.alignment` (default 32) after
//!   the tensor infos.
//!
//! Every read is bounds-checked and every count is checked against the bytes left before
//! anything is allocated, so a corrupt file gives an error, never a panic or a huge allocation.

use std::fmt;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    fn describe(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a bool",
            Value::Str(_) => "a string",
            Value::Array(_) => "an array",
        }
    }
}

/// One tensor's description.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Absolute byte offset of the tensor's data in the file.
    pub start: usize,
}

/// A parsed file: its metadata and tensor table (the data stays in the caller's bytes).
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<Tensor>,
}

/// Why a file was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufError(pub String);

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GgufError {}

fn err<T>(msg: impl Into<String>) -> Result<T, GgufError> {
    Err(GgufError(msg.into()))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        match self.at.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            _ => err(format!(
                "{what} at byte {} needs {n} bytes but the file ends at {}",
                self.at,
                self.bytes.len()
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// A count of items each at least `min_bytes` long, checked against the bytes left.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, GgufError> {
        let at = self.at;
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_bytes.max(1)))
            .is_some_and(|need| need <= self.left());
        if !fits {
            return err(format!(
                "{what} at byte {at} is {n}, more than the {} bytes left could hold",
                self.left()
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let at = self.at;
        let len = self.count(what, 1)?;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => err(format!("{what} at byte {at} is not UTF-8")),
        }
    }

    fn value(&mut self, ty: u32, what: &str, depth: u32) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::Int(self.array::<1>(what)?[0].into()),
            1 => Value::Int((self.array::<1>(what)?[0] as i8).into()),
            2 => Value::Int(u16::from_le_bytes(self.array(what)?).into()),
            3 => Value::Int(i16::from_le_bytes(self.array(what)?).into()),
            4 => Value::Int(self.u32(what)?.into()),
            5 => Value::Int(i32::from_le_bytes(self.array(what)?).into()),
            6 => Value::Float(f32::from_le_bytes(self.array(what)?).into()),
            7 => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return err(format!("{what}: bool byte {b} is neither 0 nor 1")),
            },
            8 => Value::Str(self.string(what)?),
            9 => {
                if depth > 0 {
                    return err(format!("{what}: nested arrays are not supported"));
                }
                let elem = self.u32(what)?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    _ => return err(format!("{what}: unknown array element type {elem}")),
                };
                let n = self.count(what, min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, what, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::Int(self.u64(what)?.into()),
            11 => Value::Int(i64::from_le_bytes(self.array(what)?).into()),
            12 => Value::Float(f64::from_le_bytes(self.array(what)?)),
            _ => return err(format!("{what}: unknown value type {ty}")),
        })
    }
}

/// Bytes of `values` values of ggml type `ty`, for the types the reference decodes.
fn tensor_bytes(ty: u32, values: u64) -> Option<u64> {
    let (block_values, block_bytes) = match ty {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        8 => (32, 34),
        12 => (256, 144),
        14 => (256, 210),
        _ => return None,
    };
    if !values.is_multiple_of(block_values) {
        return None;
    }
    (values / block_values).checked_mul(block_bytes)
}

impl Gguf {
    /// Parses the header, metadata and tensor table of a GGUF file.
    pub fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "magic")? != b"GGUF" {
            return err("not a GGUF file (no GGUF magic)");
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return err(format!(
                "GGUF version {version} (the reference reads 2 and 3)"
            ));
        }
        // A tensor info takes at least 8 + 4 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
        let n_tensors = r.count("tensor count", 24)?;
        let n_kv = r.count("metadata count", 13)?;
        let mut metadata = Vec::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key {i}"))?;
            let ty = r.u32(&format!("type of `{key}`"))?;
            let value = r.value(ty, &format!("`{key}`"), 0)?;
            metadata.push((key, value));
        }
        let mut infos = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor {i} name"))?;
            let n_dims = r.u32(&format!("tensor `{name}` n_dims"))?;
            if !(1..=4).contains(&n_dims) {
                return err(format!("tensor `{name}`: {n_dims} dimensions"));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&format!("tensor `{name}` dims"))?);
            }
            let ggml_type = r.u32(&format!("tensor `{name}` type"))?;
            let offset = r.u64(&format!("tensor `{name}` offset"))?;
            infos.push((name, dims, ggml_type, offset));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => 32u64,
            Some((_, Value::Int(a))) if *a > 0 && (*a as u64).is_power_of_two() => *a as u64,
            Some((_, v)) => return err(format!("general.alignment is {v:?}")),
        };
        let data_start = (r.at as u64).div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, ggml_type, offset) in infos {
            let values = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| GgufError(format!("tensor `{name}`: dims {dims:?} overflow")))?;
            // Types the reference cannot decode are kept (a model that uses one is refused
            // when it is loaded); their size is unknown here, so only their start is checked.
            let size = tensor_bytes(ggml_type, values).unwrap_or(0);
            let start = data_start.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(size));
            match (start, end) {
                (Some(start), Some(end)) if end <= file_len => tensors.push(Tensor {
                    name,
                    dims,
                    ggml_type,
                    start: start as usize,
                }),
                _ => {
                    return err(format!(
                        "tensor `{name}`: data [offset {offset}, {size} bytes] runs past the end of the file ({file_len} bytes)"
                    ))
                }
            }
        }
        Ok(Gguf {
            version,
            metadata,
            tensors,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// An integer metadata value.
    pub fn int(&self, key: &str) -> Result<i128, GgufError> {
        match self.get(key) {
            Some(Value::Int(i)) => Ok(*i),
            Some(v) => err(format!(
                "metadata `{key}` is {}, not an integer",
                v.describe()
            )),
            None => err(format!("metadata `{key}` is missing")),
        }
    }

    /// A float metadata value (an integer one is accepted too).
    pub fn float(&self, key: &str) -> Result<f64, GgufError> {
        match self.get(key) {
            Some(Value::Float(f)) => Ok(*f),
            Some(Value::Int(i)) => Ok(*i as f64),
            Some(v) => err(format!(
                "metadata `{key}` is {}, not a number",
                v.describe()
            )),
            None => err(format!("metadata `{key}` is missing")),
        }
    }

    pub fn string(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key) {
            Some(Value::Str(s)) => Ok(s),
            Some(v) => err(format!(
                "metadata `{key}` is {}, not a string",
                v.describe()
            )),
            None => err(format!("metadata `{key}` is missing")),
        }
    }

    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The data of `tensor` within the file's `bytes`, if the reference knows its type.
    pub fn data<'b>(&self, bytes: &'b [u8], tensor: &Tensor) -> Result<&'b [u8], GgufError> {
        let values: u64 = tensor.dims.iter().product();
        let size = tensor_bytes(tensor.ggml_type, values).ok_or_else(|| {
            GgufError(format!(
                "tensor `{}`: ggml type {} with {values} values is not one the reference decodes",
                tensor.name, tensor.ggml_type
            ))
        })?;
        let end = tensor.start + size as usize;
        bytes
            .get(tensor.start..end)
            .ok_or_else(|| GgufError(format!("tensor `{}` runs past the file", tensor.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal v3 file: one metadata entry and one 4-value f32 tensor.
    fn tiny_file() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        let key = b"general.architecture";
        b.extend((key.len() as u64).to_le_bytes());
        b.extend(key);
        b.extend(8u32.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        b.extend(b"llama");
        let name = b"w";
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(name);
        b.extend(1u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            b.extend(v.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_a_small_file() {
        let bytes = tiny_file();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.string("general.architecture").unwrap(), "llama");
        let t = g.tensor("w").unwrap();
        assert_eq!(t.dims, vec![4]);
        assert_eq!(g.data(&bytes, t).unwrap().len(), 16);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = tiny_file();
        for cut in 0..bytes.len() {
            assert!(Gguf::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut bytes = tiny_file();
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = Gguf::parse(&bytes).unwrap_err();
        assert!(e.0.contains("metadata count"), "{e}");
    }
}
