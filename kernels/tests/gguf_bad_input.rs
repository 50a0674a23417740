//! Bad input for the GGUF reader: a valid file truncated at every offset of its header and
//! tensor-info region and at many offsets in its data, every structural header field overwritten
//! with extreme values, and random byte flips. Each case must give an error (or, where the damage
//! leaves a well-formed file, a successful parse), never a panic; a counting allocator checks
//! that no case makes the reader allocate more than a small multiple of the file's size, and
//! every loop of the reader is bounded by the bytes left, so none can hang.

use kernels::gguf::{GgmlType, Gguf, GgufError, GgufWriter, MetaValue, ValueType};
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes this thread has allocated, so one parse's allocations can be measured
/// while other tests run on other threads.
struct CountingAlloc;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to `System` unchanged; the counter is a plain thread-local Cell
// with a const initializer and no destructor, so touching it never allocates or re-enters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        // SAFETY: the caller's contract for `alloc` is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size));
        // SAFETY: the caller's contract for `realloc` is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Parses `bytes`, checking the allocation bound: the reader keeps one `Vec` entry per metadata
/// entry and tensor (each at least 13 / 24 bytes of file), two hash indexes and the tensors'
/// dims, so 16x the file plus a constant is a generous ceiling that a count driving an
/// allocation of its own (GiBs) would exceed at once.
fn parse_checked(bytes: &[u8]) -> Result<usize, GgufError> {
    let before = ALLOCATED.with(Cell::get);
    let result = Gguf::parse(bytes).map(|g| g.tensors().len());
    let used = ALLOCATED.with(Cell::get) - before;
    assert!(
        used <= 16 * bytes.len() + 4096,
        "parse of {} bytes allocated {used} bytes",
        bytes.len()
    );
    result
}

/// A small llama-like file: strings, arrays of strings and floats, a bool, and tensors of
/// several types at 32-byte alignment.
fn fixture() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_meta("general.architecture", MetaValue::Str("llama".into()))
        .unwrap();
    w.add_meta("general.alignment", MetaValue::U32(32)).unwrap();
    w.add_meta("llama.block_count", MetaValue::U32(1)).unwrap();
    w.add_meta("llama.rope.freq_base", MetaValue::F32(10000.0))
        .unwrap();
    w.add_meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(true))
        .unwrap();
    w.add_meta(
        "tokenizer.ggml.tokens",
        MetaValue::str_array(["<unk>", "<s>", "</s>", "▁a", "▁b"]),
    )
    .unwrap();
    w.add_meta(
        "tokenizer.ggml.scores",
        MetaValue::Array(
            ValueType::F32,
            (0..5).map(|i| MetaValue::F32(-(i as f32))).collect(),
        ),
    )
    .unwrap();
    w.add_meta(
        "test.nested",
        MetaValue::Array(
            ValueType::Array,
            vec![MetaValue::Array(ValueType::U16, vec![MetaValue::U16(7)])],
        ),
    )
    .unwrap();
    let specs: [(&str, &[u64], GgmlType); 4] = [
        ("token_embd.weight", &[256, 5], GgmlType::Q4K),
        ("output_norm.weight", &[256], GgmlType::F32),
        ("blk.0.attn_q.weight", &[256, 4], GgmlType::Q6K),
        ("blk.0.ffn_up.weight", &[64, 3], GgmlType::Q8_0),
    ];
    for (i, (name, dims, ty)) in specs.into_iter().enumerate() {
        let n = ty.bytes_for(dims.iter().product()).unwrap() as usize;
        w.add_tensor(name, dims, ty, (0..n).map(|j| (j + i) as u8).collect())
            .unwrap();
    }
    w.to_bytes().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    Magic,
    Version,
    Count,
    Length,
    ValueType,
    Bool,
    NDims,
    Dim,
    TensorType,
    TensorOffset,
}

/// The offset, width and kind of every structural field, found by a walk of our own (the
/// test's, independent of the reader). Metadata payloads other than bools are not listed:
/// any value of them is well-formed.
fn fields(b: &[u8]) -> Vec<(usize, usize, Field)> {
    let u32_at = |p: usize| u32::from_le_bytes(b[p..p + 4].try_into().unwrap());
    let u64_at = |p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap()) as usize;
    let mut out = vec![
        (0, 4, Field::Magic),
        (4, 4, Field::Version),
        (8, 8, Field::Count),
        (16, 8, Field::Count),
    ];
    fn value(
        p: &mut usize,
        ty: u32,
        out: &mut Vec<(usize, usize, Field)>,
        u32_at: &dyn Fn(usize) -> u32,
        u64_at: &dyn Fn(usize) -> usize,
    ) {
        match ty {
            0 | 1 => *p += 1,
            7 => {
                out.push((*p, 1, Field::Bool));
                *p += 1
            }
            2 | 3 => *p += 2,
            4..=6 => *p += 4,
            10..=12 => *p += 8,
            8 => {
                out.push((*p, 8, Field::Length));
                *p += 8 + u64_at(*p)
            }
            9 => {
                let elem = u32_at(*p);
                out.push((*p, 4, Field::ValueType));
                out.push((*p + 4, 8, Field::Count));
                let n = u64_at(*p + 4);
                *p += 12;
                for _ in 0..n {
                    value(p, elem, out, u32_at, u64_at);
                }
            }
            _ => unreachable!(),
        }
    }
    let n_tensors = u64_at(8);
    let n_kv = u64_at(16);
    let mut p = 24;
    for _ in 0..n_kv {
        out.push((p, 8, Field::Length));
        p += 8 + u64_at(p);
        let ty = u32_at(p);
        out.push((p, 4, Field::ValueType));
        p += 4;
        value(&mut p, ty, &mut out, &u32_at, &u64_at);
    }
    for _ in 0..n_tensors {
        out.push((p, 8, Field::Length));
        p += 8 + u64_at(p);
        let n_dims = u32_at(p) as usize;
        out.push((p, 4, Field::NDims));
        p += 4;
        for _ in 0..n_dims {
            out.push((p, 8, Field::Dim));
            p += 8;
        }
        out.push((p, 4, Field::TensorType));
        out.push((p + 4, 8, Field::TensorOffset));
        p += 12;
    }
    out
}

/// End of the tensor-info region (where the walk above stops).
fn infos_end(b: &[u8]) -> usize {
    let (p, w, _) = *fields(b).last().unwrap();
    p + w
}

#[test]
fn fixture_is_valid() {
    let b = fixture();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.tensors().len(), 4);
    assert_eq!((infos_end(&b) as u64).next_multiple_of(32), g.data_offset());
}

#[test]
fn truncation_anywhere_is_an_error() {
    let b = fixture();
    let g = Gguf::parse(&b).unwrap();
    let data_end = g
        .tensors()
        .iter()
        .map(|t| (g.data_offset() + t.offset) as usize + t.data.len())
        .max()
        .unwrap();
    // Every offset of the header and tensor infos, then every 7th byte of the data.
    let cuts = (0..g.data_offset() as usize).chain((g.data_offset() as usize..data_end).step_by(7));
    for n in cuts {
        match parse_checked(&b[..n]) {
            Err(e) => assert!(!e.to_string().is_empty()),
            Ok(_) => panic!("file cut at {n} of {} bytes parsed", b.len()),
        }
    }
    // Cutting only the padding after the last tensor leaves a complete file.
    for n in data_end..=b.len() {
        assert!(parse_checked(&b[..n]).is_ok(), "cut at {n}");
    }
}

#[test]
fn truncation_errors_name_the_field_and_offset() {
    let b = fixture();
    // Too short for the counts it claims: refused before any entry is read.
    let e = Gguf::parse(&b[..30]).unwrap_err().to_string();
    assert_eq!(
        e,
        "header: kv_count at offset 24: 8 entries cannot fit in the 6 bytes left in the file \
         (each takes at least 13 bytes)"
    );
    let e = Gguf::parse(&b[..300]).unwrap_err().to_string();
    assert!(e.starts_with("metadata `"), "{e}");
    assert!(e.ends_with("but the file ends at 300"), "{e}");
    let g = Gguf::parse(&b).unwrap();
    let last = g.tensors().last().unwrap();
    let end = (g.data_offset() + last.offset) as usize + last.data.len();
    let e = Gguf::parse(&b[..end - 1]).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "tensor 3 `blk.0.ffn_up.weight`: data [offset {}, {} bytes] runs past the end of the file ({} bytes)",
            g.data_offset() + last.offset,
            last.data.len(),
            end - 1
        )
    );
}

#[test]
fn extreme_field_values_are_errors() {
    let b = fixture();
    let mut cases = 0;
    for (at, width, kind) in fields(&b) {
        let extremes: &[u64] = match width {
            1 => &[2, 0x7f, 0xff],
            4 => match kind {
                Field::ValueType => &[0xffff_ffff, 0xffff_fffe, 0x8000_0000, 0x7fff_ffff, 13],
                Field::NDims => &[0xffff_ffff, 0xffff_fffe, 0x8000_0000, 0x7fff_ffff, 5],
                _ => &[0xffff_ffff, 0xffff_fffe, 0x8000_0000, 0x7fff_ffff],
            },
            _ => &[
                u64::MAX,
                u64::MAX - 1,
                1 << 63,
                (1 << 63) - 1,
                1 << 32,
                1 << 40,
                b.len() as u64,
            ],
        };
        for &v in extremes {
            let mut bad = b.clone();
            bad[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            cases += 1;
            let result = parse_checked(&bad);
            match (kind, result) {
                (_, Err(_)) => {}
                // An unknown type id is listed, not refused (only loading a model refuses it).
                (Field::TensorType, Ok(_)) => {
                    let g = Gguf::parse(&bad).unwrap();
                    assert!(g
                        .tensors()
                        .iter()
                        .any(|t| matches!(t.ggml_type, GgmlType::Unknown(_))));
                }
                (kind, Ok(_)) => {
                    panic!("{kind:?} field at offset {at} set to {v:#x}: the file parsed")
                }
            }
        }
        // Small values too: these may leave a well-formed file, but must not panic.
        for v in 0..4u64 {
            let mut bad = b.clone();
            bad[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            let _ = parse_checked(&bad);
        }
    }
    assert!(
        cases > 150,
        "only {cases} cases: did the walk find the fields?"
    );
}

#[test]
fn random_byte_flips_never_panic() {
    let b = fixture();
    let header = infos_end(&b);
    let seed = 0x6775_6766u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut errors, mut parsed) = (0, 0);
    for case in 0..20_000 {
        let mut bad = b.clone();
        let flips = rng.gen_range(1..=8);
        for _ in 0..flips {
            // Mostly the header (where damage matters), sometimes anywhere.
            let i = if rng.gen_bool(0.9) {
                rng.gen_range(0..header)
            } else {
                rng.gen_range(0..bad.len())
            };
            bad[i] ^= 1 << rng.gen_range(0..8);
        }
        let result = std::panic::catch_unwind(|| parse_checked(&bad));
        match result {
            Ok(Ok(_)) => parsed += 1,
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("seed {seed:#x}, case {case}: the reader panicked"),
        }
    }
    // Flips inside names or tensor bytes leave a well-formed file; most flips do not.
    assert!(errors > parsed, "{errors} errors, {parsed} parsed");
}

#[test]
fn other_corruptions() {
    let b = fixture();
    let expect = |bad: &[u8], needle: &str| {
        let e = Gguf::parse(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    };
    let mut bad = b.clone();
    bad[0] = b'X';
    expect(&bad, "not a GGUF file");
    let mut bad = b.clone();
    bad[4..8].copy_from_slice(&3u32.to_be_bytes());
    expect(&bad, "big-endian");
    let mut bad = b.clone();
    bad[4..8].copy_from_slice(&1u32.to_le_bytes());
    expect(&bad, "version 1");
    // Invalid UTF-8 in the first key.
    let mut bad = b.clone();
    bad[32] = 0xff;
    expect(&bad, "not valid UTF-8");
    // Alignment 3.
    let g = Gguf::parse(&b).unwrap();
    let align_at = g.metadata()[1].offset as usize + 8 + "general.alignment".len() + 4;
    let mut bad = b.clone();
    bad[align_at..align_at + 4].copy_from_slice(&3u32.to_le_bytes());
    expect(&bad, "power of two");
    // Duplicate key: rename the third key to the second's name (same length).
    let mut w = GgufWriter::new();
    w.add_meta("aa", MetaValue::U8(1)).unwrap();
    w.add_meta("ab", MetaValue::U8(1)).unwrap();
    let mut bad = w.to_bytes().unwrap();
    let i = bad.windows(2).rposition(|x| x == b"ab").unwrap();
    bad[i + 1] = b'a';
    expect(&bad, "duplicate key");
    assert!(Gguf::parse(&[]).is_err());
}

/// Writes the fixture (and a vocab-only variant) as the fuzz seed corpus:
/// `cargo test -p kernels --test gguf_bad_input -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/gguf_parse");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/llama-like-v3"), fixture()).unwrap();
    let mut v2 = fixture();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(format!("{dir}/llama-like-v2"), v2).unwrap();
    let mut w = GgufWriter::new();
    w.add_meta("general.alignment", MetaValue::U32(64)).unwrap();
    w.add_meta(
        "tokenizer.ggml.tokens",
        MetaValue::str_array(["<unk>", "▁x"]),
    )
    .unwrap();
    w.add_meta(
        "nested",
        MetaValue::Array(
            ValueType::Array,
            vec![MetaValue::Array(
                ValueType::Bool,
                vec![MetaValue::Bool(true)],
            )],
        ),
    )
    .unwrap();
    w.add_meta("i64", MetaValue::I64(-1)).unwrap();
    w.add_meta("f64", MetaValue::F64(0.5)).unwrap();
    std::fs::write(format!("{dir}/vocab-only"), w.to_bytes().unwrap()).unwrap();
}
