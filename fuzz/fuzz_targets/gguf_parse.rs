//! Any bytes through the GGUF reader: it must return an error or a file whose every part can
//! be walked (arrays decoded to the end, tensor data inside the input), never panic, hang or
//! allocate without bound (libFuzzer's -malloc_limit_mb / -rss_limit_mb catch the last).
#![no_main]

use kernels::gguf::{Array, Gguf, Value};
use libfuzzer_sys::fuzz_target;

fn walk(a: &Array<'_>) -> usize {
    let mut n = 0;
    for v in a.iter_values() {
        n += 1;
        if let Value::Array(inner) = &v {
            walk(inner);
        }
    }
    assert_eq!(n, a.len(), "array `{}` decodes to fewer elements than it claims", a.key());
    n
}

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::parse(data) else { return };
    for e in g.metadata() {
        if let Value::Array(a) = &e.value {
            walk(a);
        }
        assert!(g.get(e.key).is_some());
    }
    let range = data.as_ptr_range();
    for t in g.tensors() {
        let inside = t.data.is_empty()
            || (range.contains(&t.data.as_ptr())
                && t.data.as_ptr() as usize + t.data.len() <= range.end as usize);
        assert!(inside, "tensor `{}` data outside the input", t.name);
        if let Some(n) = t.n_bytes() {
            assert_eq!(n, t.data.len() as u64);
        }
        assert!(g.tensor(t.name).is_some());
    }
});
