//! Metadata values: the thirteen GGUF value types, borrowed from the file. Arrays keep their
//! validated bytes and decode on iteration, so a 32000-entry vocabulary costs no allocation.

use super::cursor::Cursor;
use super::GgufError;

/// A metadata value type id (FORMATS.md: 0 u8 .. 12 f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    Str = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub const ALL: [ValueType; 13] = {
        use ValueType::*;
        [
            U8, I8, U16, I16, U32, I32, F32, Bool, Str, Array, U64, I64, F64,
        ]
    };

    pub fn from_id(id: u32) -> Option<ValueType> {
        ValueType::ALL.get(usize::try_from(id).ok()?).copied()
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// Bytes of one value of a fixed-size type, `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        Some(match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
            Str | Array => return None,
        })
    }

    /// The fewest bytes one value of this type can take in a file (a string is at least its
    /// 8-byte length, an array its element type and count): the bound every count is held to.
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::Str => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            Str => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value, borrowing strings and array contents from the file.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::Str(_) => ValueType::Str,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// `u32`, `array of string`, ...: what error messages call the type.
    pub fn type_name(&self) -> String {
        match self {
            Value::Array(a) => format!("array of {}", a.elem_type().name()),
            v => v.value_type().name().to_string(),
        }
    }

    /// Any integer value, if it is one, as i128 (which holds every u64 and i64).
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// Any integer value that fits a u32.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_integer().and_then(|v| u32::try_from(v).ok())
    }

    /// Any integer value that fits a u64.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// Any integer value that fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// An f32 or f64 value as f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// An array value: its element type, length and validated bytes (borrowed from the file).
#[derive(Clone, Debug, PartialEq)]
pub struct Array<'a> {
    key: &'a str,
    elem: ValueType,
    len: usize,
    /// The elements as they are in the file (for strings: length-prefixed, already checked).
    raw: &'a [u8],
    /// File offset of `raw`, for nested parsing.
    raw_offset: u64,
}

macro_rules! fixed_iter {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $vt:ident) => {
        $(#[$doc])*
        pub fn $name(&self) -> Result<impl ExactSizeIterator<Item = $ty> + 'a, GgufError> {
            self.expect(ValueType::$vt)?;
            let raw: &'a [u8] = self.raw;
            Ok(raw
                .chunks_exact(std::mem::size_of::<$ty>())
                .map(|c| <$ty>::from_le_bytes(c.try_into().unwrap_or_default())))
        }
    };
}

impl<'a> Array<'a> {
    pub(crate) fn new(
        key: &'a str,
        elem: ValueType,
        len: usize,
        raw: &'a [u8],
        raw_offset: u64,
    ) -> Array<'a> {
        Array {
            key,
            elem,
            len,
            raw,
            raw_offset,
        }
    }

    /// The metadata key this array belongs to (for nested arrays: the outer key).
    pub fn key(&self) -> &'a str {
        self.key
    }

    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements' bytes as stored (little-endian values, or length-prefixed strings).
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.raw
    }

    fn expect(&self, want: ValueType) -> Result<(), GgufError> {
        if self.elem == want {
            Ok(())
        } else {
            Err(GgufError::WrongType {
                key: self.key.to_string(),
                expected: format!("array of {}", want.name()),
                found: format!("array of {}", self.elem.name()),
            })
        }
    }

    fixed_iter!(iter_u8, u8, U8);
    fixed_iter!(iter_i8, i8, I8);
    fixed_iter!(iter_u16, u16, U16);
    fixed_iter!(iter_i16, i16, I16);
    fixed_iter!(iter_u32, u32, U32);
    fixed_iter!(iter_i32, i32, I32);
    fixed_iter!(iter_f32, f32, F32);
    fixed_iter!(iter_u64, u64, U64);
    fixed_iter!(iter_i64, i64, I64);
    fixed_iter!(iter_f64, f64, F64);

    /// The elements of a bool array.
    pub fn iter_bool(&self) -> Result<impl ExactSizeIterator<Item = bool> + 'a, GgufError> {
        self.expect(ValueType::Bool)?;
        Ok(self.raw.iter().map(|&b| b != 0))
    }

    /// The elements of a string array.
    pub fn iter_str(&self) -> Result<impl ExactSizeIterator<Item = &'a str> + 'a, GgufError> {
        self.expect(ValueType::Str)?;
        Ok(self.values())
    }

    /// The elements of an array of arrays.
    pub fn iter_arrays(&self) -> Result<impl ExactSizeIterator<Item = Array<'a>> + 'a, GgufError> {
        self.expect(ValueType::Array)?;
        Ok(self.values())
    }

    /// Every element as a [`Value`], whatever the element type.
    pub fn iter_values(&self) -> impl ExactSizeIterator<Item = Value<'a>> + 'a {
        self.values()
    }

    fn values<T: FromValue<'a>>(&self) -> Values<'a, T> {
        Values {
            cursor: Cursor::new_at(self.raw, self.raw_offset),
            key: self.key,
            elem: self.elem,
            left: self.len,
            _item: std::marker::PhantomData,
        }
    }
}

/// Decodes the elements of an array that the parser already validated, so a decode error
/// cannot happen here; should it anyway, iteration ends early rather than panicking.
struct Values<'a, T> {
    cursor: Cursor<'a>,
    key: &'a str,
    elem: ValueType,
    left: usize,
    _item: std::marker::PhantomData<T>,
}

trait FromValue<'a>: Sized {
    fn from_value(v: Value<'a>) -> Option<Self>;
}

impl<'a> FromValue<'a> for Value<'a> {
    fn from_value(v: Value<'a>) -> Option<Self> {
        Some(v)
    }
}

impl<'a> FromValue<'a> for &'a str {
    fn from_value(v: Value<'a>) -> Option<Self> {
        v.as_str()
    }
}

impl<'a> FromValue<'a> for Array<'a> {
    fn from_value(v: Value<'a>) -> Option<Self> {
        match v {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl<'a, T: FromValue<'a>> Iterator for Values<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let item = self
            .cursor
            .value(self.key, self.elem, 1)
            .ok()
            .and_then(T::from_value);
        if item.is_none() {
            self.left = 0;
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, T: FromValue<'a>> ExactSizeIterator for Values<'a, T> {}
