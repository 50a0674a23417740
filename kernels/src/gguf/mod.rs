//! GGUF files (FORMATS.md): a validating reader over a byte slice, the one memory map
//! ([`GgufFile`]), and a writer.
//!
//! This module owns the container format only: header, metadata, tensor infos, alignment and
//! where each tensor's bytes are. It must not decode or quantize tensor data (that is
//! `quant`'s) nor interpret model metadata beyond `general.alignment`.
//!
//! Every count, length, dimension, type id, offset and size is checked before use with
//! arithmetic that cannot overflow; counts are held to what the remaining bytes could hold, so
//! no field can make the reader allocate more than a small multiple of the file's size.

mod cursor;
mod error;
mod file;
mod reader;
mod types;
mod value;
mod writer;

pub use cursor::MAX_ARRAY_DEPTH;
pub use error::GgufError;
pub use file::GgufFile;
pub use reader::{Gguf, MetaEntry, TensorInfo, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_DIMS};
pub use types::GgmlType;
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, MetaValue, TensorSlot};
