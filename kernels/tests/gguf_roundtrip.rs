//! Writer -> reader round trip: every value type, arrays of each (nested too), a non-default
//! alignment, tensors of several types; the file read back has identical metadata and bytes.

use kernels::gguf::{GgmlType, Gguf, GgufError, GgufWriter, MetaValue, ValueType};

fn every_value() -> Vec<(String, MetaValue)> {
    use MetaValue as M;
    let scalars = vec![
        M::U8(0xfe),
        M::I8(-128),
        M::U16(65535),
        M::I16(-32768),
        M::U32(u32::MAX),
        M::I32(i32::MIN),
        M::F32(-1.5e-7),
        M::Bool(true),
        M::Str("héllo ▁world".into()),
        M::U64(u64::MAX),
        M::I64(i64::MIN),
        M::F64(std::f64::consts::PI),
    ];
    let mut out = Vec::new();
    for (i, v) in scalars.iter().enumerate() {
        let t = v.value_type();
        out.push((format!("test.scalar.{}", t.name()), v.clone()));
        // An array of each type: three elements (the scalar, and the scalar again) and empty.
        out.push((
            format!("test.array.{}", t.name()),
            M::Array(t, vec![v.clone(), scalars[i].clone(), v.clone()]),
        ));
        out.push((format!("test.empty.{}", t.name()), M::Array(t, vec![])));
    }
    out.push((
        "test.array.array".into(),
        M::Array(
            ValueType::Array,
            vec![
                M::Array(ValueType::Str, vec![M::Str("a".into()), M::Str("".into())]),
                M::Array(ValueType::Str, vec![]),
            ],
        ),
    ));
    out
}

fn build(alignment: u32) -> (GgufWriter, Vec<Vec<u8>>) {
    let mut w = GgufWriter::new();
    w.add_meta("general.alignment", MetaValue::U32(alignment))
        .unwrap();
    for (k, v) in every_value() {
        w.add_meta(&k, v).unwrap();
    }
    let specs: [(&str, &[u64], GgmlType); 5] = [
        ("a.f32", &[3, 5], GgmlType::F32),
        ("b.q4k", &[512, 2], GgmlType::Q4K),
        ("c.q8_0", &[32], GgmlType::Q8_0),
        ("d.f16", &[7, 1, 1], GgmlType::F16),
        ("e.q6k", &[256, 3, 1, 2], GgmlType::Q6K),
    ];
    let mut datas = Vec::new();
    for (i, (name, dims, ty)) in specs.iter().enumerate() {
        let n: u64 = dims.iter().product();
        let bytes = ty.bytes_for(n).unwrap() as usize;
        let data: Vec<u8> = (0..bytes).map(|j| (j * 31 + i * 7) as u8).collect();
        w.add_tensor(name, dims, *ty, data.clone()).unwrap();
        datas.push(data);
    }
    (w, datas)
}

#[test]
fn round_trip_is_identical() {
    for alignment in [1u32, 32, 64, 4096] {
        let (w, datas) = build(alignment);
        let bytes = w.to_bytes().unwrap();
        assert_eq!(bytes.len() as u64, w.file_len());
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.version(), 3);
        assert_eq!(g.alignment(), alignment as u64);
        assert_eq!(g.metadata().len(), w.metadata().len());
        for (entry, (key, value)) in g.metadata().iter().zip(w.metadata()) {
            assert_eq!(entry.key, key);
            assert_eq!(&MetaValue::from_value(&entry.value), value, "{key}");
        }
        assert_eq!(g.tensors().len(), datas.len());
        for ((t, slot), data) in g.tensors().iter().zip(w.tensors()).zip(&datas) {
            assert_eq!(t.name, slot.name);
            assert_eq!(t.dims, slot.dims);
            assert_eq!(t.ggml_type, slot.ggml_type);
            assert_eq!(t.offset, slot.offset);
            assert_eq!(t.offset % alignment as u64, 0);
            assert_eq!((g.data_offset() + t.offset) % alignment as u64, 0);
            assert_eq!(t.data, &data[..], "{}", t.name);
            assert_eq!(g.tensor(t.name).unwrap().data.as_ptr(), t.data.as_ptr());
        }
    }
}

#[test]
fn typed_getters_and_iterators() {
    let (w, _) = build(32);
    let bytes = w.to_bytes().unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_u32("test.scalar.u16").unwrap(), 65535);
    assert_eq!(g.get_u32("test.scalar.u8").unwrap(), 0xfe);
    assert_eq!(g.get_u64("test.scalar.u64").unwrap(), u64::MAX);
    assert!(matches!(
        g.get_u32("test.scalar.u64"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        g.get_u32("test.scalar.i8"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        g.get_u32("no.such.key"),
        Err(GgufError::MissingKey { .. })
    ));
    assert_eq!(g.get_f32("test.scalar.f32").unwrap(), -1.5e-7);
    assert!(g.get_bool("test.scalar.bool").unwrap());
    assert_eq!(g.get_str("test.scalar.string").unwrap(), "héllo ▁world");
    let e = g.get_str("test.scalar.u32").unwrap_err().to_string();
    assert!(e.contains("test.scalar.u32") && e.contains("string"), "{e}");
    let a = g.get_array("test.array.string").unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(
        a.iter_str().unwrap().collect::<Vec<_>>(),
        ["héllo ▁world"; 3]
    );
    assert!(a.iter_f32().is_err());
    let f = g.get_array("test.array.f32").unwrap();
    assert_eq!(f.iter_f32().unwrap().collect::<Vec<_>>(), [-1.5e-7f32; 3]);
    let b = g.get_array("test.array.bool").unwrap();
    assert_eq!(b.iter_bool().unwrap().collect::<Vec<_>>(), [true; 3]);
    let i = g.get_array("test.array.i32").unwrap();
    assert_eq!(i.iter_i32().unwrap().collect::<Vec<_>>(), [i32::MIN; 3]);
    let nested = g.get_array("test.array.array").unwrap();
    let inner: Vec<Vec<&str>> = nested
        .iter_arrays()
        .unwrap()
        .map(|a| a.iter_str().unwrap().collect())
        .collect();
    assert_eq!(inner, vec![vec!["a", ""], vec![]]);
    assert!(g.get_array("test.empty.u8").unwrap().is_empty());
}

#[test]
fn writer_refuses_bad_input() {
    let mut w = GgufWriter::new();
    w.add_meta("k", MetaValue::U8(1)).unwrap();
    assert!(w.add_meta("k", MetaValue::U8(2)).is_err());
    assert!(w.add_meta("general.alignment", MetaValue::U32(3)).is_err());
    assert!(w
        .add_meta("m", MetaValue::Array(ValueType::U8, vec![MetaValue::I8(1)]))
        .is_err());
    assert!(w.declare_tensor("t", &[100, 2], GgmlType::Q4K).is_err());
    w.declare_tensor("t", &[256], GgmlType::Q4K).unwrap();
    assert!(w.declare_tensor("t", &[256], GgmlType::Q4K).is_err());
    assert!(w.add_meta("general.alignment", MetaValue::U32(64)).is_err());
    assert!(w
        .add_tensor("u", &[32], GgmlType::Q8_0, vec![0; 33])
        .is_err());
}

#[test]
fn version_2_files_read_the_same() {
    let (w, _) = build(32);
    let mut bytes = w.to_bytes().unwrap();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version(), 2);
    assert_eq!(g.tensors().len(), 5);
}

/// The real Llama SentencePiece vocab (a vocab-only GGUF written by llama.cpp's tools).
#[test]
fn reads_the_real_llama_vocab() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/assets/llama-spm-vocab.gguf"
    );
    let f = kernels::gguf::GgufFile::open(path).unwrap();
    let g = f.gguf();
    assert!(g.tensors().is_empty());
    assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), "llama");
    let tokens = g.get_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 32000);
    assert_eq!(tokens.iter_str().unwrap().nth(3), Some("<0x00>"));
    assert_eq!(
        g.get_array("tokenizer.ggml.scores")
            .unwrap()
            .iter_f32()
            .unwrap()
            .len(),
        32000
    );
    // Every value re-encodes to exactly the bytes it was read from.
    let mut w = GgufWriter::new();
    for e in g.metadata() {
        w.add_meta(e.key, MetaValue::from_value(&e.value)).unwrap();
    }
    // (The original ends right after its metadata; ours pads up to the data section.)
    let again = w.to_bytes().unwrap();
    let n = g.bytes().len();
    assert_eq!(&again[8..n], &g.bytes()[8..]);
    assert!(again[n..].iter().all(|&b| b == 0));
}
