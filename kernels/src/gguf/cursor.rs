//! A bounds-checked little-endian reader over the file bytes: every read says what it reads, so
//! that running off the end becomes a [`GgufError::Truncated`] naming the field and its offset.

use super::value::{Array, Value, ValueType};
use super::GgufError;

/// Arrays of arrays may nest this deep; deeper is refused (it would only serve to exhaust the
/// stack of a recursive reader).
pub const MAX_ARRAY_DEPTH: u32 = 8;

#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// File offset of `bytes[0]`.
    base: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor::new_at(bytes, 0)
    }

    pub fn new_at(bytes: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor {
            bytes,
            pos: 0,
            base,
        }
    }

    /// Absolute file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    pub fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.offset(),
                needed: n,
                file_len: self.end(),
            });
        }
        // n <= remaining <= usize::MAX, so the cast is exact.
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    pub fn invalid(&self, offset: u64, what: String, reason: String) -> GgufError {
        GgufError::Invalid {
            what,
            offset,
            reason,
        }
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self, what: &dyn Fn() -> String) -> Result<&'a str, GgufError> {
        let len = self.u64(&|| format!("{} (length)", what()))?;
        let at = self.offset();
        let bytes = self.take(len, &|| format!("{} ({len} bytes)", what()))?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.invalid(
                at + e.valid_up_to() as u64,
                what(),
                "string is not valid UTF-8".into(),
            )
        })
    }

    /// Refuses `count` entries of at least `min_size` bytes each when they cannot fit in what is
    /// left of the file: the guard that keeps any count from driving a large allocation or loop.
    pub fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|n| n <= self.remaining());
        if !fits {
            return Err(GgufError::CountTooLarge {
                what: what(),
                offset: self.offset(),
                count,
                remaining: self.remaining(),
                min_size,
            });
        }
        // count * min_size <= remaining <= usize::MAX and min_size >= 1.
        Ok(count as usize)
    }

    /// One value of type `ty`; `depth` counts the enclosing arrays (1 for a top-level value).
    pub fn value(
        &mut self,
        key: &'a str,
        ty: ValueType,
        depth: u32,
    ) -> Result<Value<'a>, GgufError> {
        let what = || format!("metadata `{key}`: {} value", ty.name());
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(&what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(&what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(&what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(&what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let at = self.offset();
                match self.array::<1>(&what)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => {
                        return Err(self.invalid(
                            at,
                            what(),
                            format!("bool byte is {b}, not 0 or 1"),
                        ))
                    }
                }
            }
            ValueType::Str => Value::Str(self.string(&what)?),
            ValueType::Array => Value::Array(self.array_value(key, depth)?),
        })
    }

    fn array_value(&mut self, key: &'a str, depth: u32) -> Result<Array<'a>, GgufError> {
        let at = self.offset();
        let what = || format!("metadata `{key}`: array");
        if depth > MAX_ARRAY_DEPTH {
            return Err(self.invalid(
                at,
                what(),
                format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"),
            ));
        }
        let elem_id = self.u32(&|| format!("{} element type", what()))?;
        let elem = ValueType::from_id(elem_id).ok_or_else(|| {
            self.invalid(at, what(), format!("unknown element type id {elem_id}"))
        })?;
        let count = self.u64(&|| format!("{} length", what()))?;
        let len = self.check_count(count, elem.min_size(), &|| {
            format!("{} of {}", what(), elem.name())
        })?;
        let start = self.pos;
        let raw_offset = self.offset();
        match elem.fixed_size() {
            Some(size) if elem != ValueType::Bool => {
                // check_count made count * size fit.
                self.take(count * size, &what)?;
            }
            _ => {
                for _ in 0..len {
                    self.value(key, elem, depth + 1)?;
                }
            }
        }
        Ok(Array::new(
            key,
            elem,
            len,
            &self.bytes[start..self.pos],
            raw_offset,
        ))
    }
}
