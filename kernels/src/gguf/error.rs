//! The one error type of the GGUF reader and writer. Every parse error says what was being read
//! and at which byte offset of the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not a GGUF file: the first 4 bytes are {found:02x?}, expected \"GGUF\" (47 47 55 46)"
    )]
    BadMagic { found: [u8; 4] },
    #[error("GGUF version {version} is not supported (this reader reads versions 2 and 3){hint}")]
    UnsupportedVersion { version: u32, hint: &'static str },
    #[error("{what} at offset {offset} needs {needed} bytes, but the file ends at {file_len}")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    #[error(
        "{what} at offset {offset}: {count} entries cannot fit in the {remaining} bytes left \
         in the file (each takes at least {min_size} bytes)"
    )]
    CountTooLarge {
        what: String,
        offset: u64,
        count: u64,
        remaining: u64,
        min_size: u64,
    },
    #[error("{what} at offset {offset}: {reason}")]
    Invalid {
        what: String,
        offset: u64,
        reason: String,
    },
    #[error(
        "tensor {index} `{name}`: data [offset {offset}, {size} bytes] runs past the end of the \
         file ({file_len} bytes)"
    )]
    DataOutOfBounds {
        index: usize,
        name: String,
        offset: u64,
        size: u64,
        file_len: u64,
    },
    #[error(
        "tensor {index} `{name}`: data [offset {offset}, {size} bytes] overlaps tensor {other} \
         `{other_name}`"
    )]
    DataOverlap {
        index: usize,
        name: String,
        offset: u64,
        size: u64,
        other: usize,
        other_name: String,
    },
    #[error("missing metadata key `{key}`")]
    MissingKey { key: String },
    #[error("metadata key `{key}`: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: String,
        found: String,
    },
    #[error("missing tensor `{name}`")]
    MissingTensor { name: String },
    #[error("tensor `{name}` has type {ty}, which this project cannot run")]
    UnsupportedType { name: String, ty: String },
    #[error("writer: {0}")]
    Write(String),
}
