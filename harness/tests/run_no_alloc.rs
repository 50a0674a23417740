//! The token loop allocates nothing: a counting global allocator (this test binary's own)
//! around decode steps and sampling, and around a second prefill once the session's buffers
//! exist. Counts every thread, so the pool's workers are included.

mod common;

use kernels::attention::KvFormat;
use kernels::gguf::GgufFile;
use kernels::model::{Design, Model, Sampler, SamplerOptions, Session, SessionOptions};
use kernels::Isa;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_and_prefill_do_not_allocate() {
    // The counter sees allocations (so a zero below means something).
    let probe = ALLOCS.load(Ordering::SeqCst);
    std::hint::black_box(vec![1u8; 3]);
    assert!(ALLOCS.load(Ordering::SeqCst) > probe);
    let path = common::tiny();
    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_gguf(file.gguf()).unwrap();
    let prompt: Vec<u32> = (0..20).map(|i| (i * 11 + 3) % 320).collect();
    for design in Design::ALL {
        for kv in [KvFormat::F16, KvFormat::F32] {
            let o = SessionOptions {
                isa: Isa::best(),
                design,
                threads: 2,
                n_ctx: 128,
                n_batch: 8,
                kv,
            };
            let mut s = Session::new(&model, o).unwrap();
            let mut sampler = Sampler::new(
                SamplerOptions {
                    repeat_penalty: 1.1,
                    ..Default::default()
                },
                model.config.n_vocab,
            );
            // Warm-up: every buffer exists, the pool has run.
            let mut next = sampler.sample(s.prefill(&prompt).unwrap());
            let before = ALLOCS.load(Ordering::SeqCst);
            for _ in 0..16 {
                sampler.accept(next);
                next = sampler.sample(s.decode(next).unwrap());
            }
            s.reset();
            s.prefill(&prompt).unwrap();
            let during = ALLOCS.load(Ordering::SeqCst) - before;
            assert_eq!(
                during, 0,
                "{design:?} {kv:?}: {during} allocations in the token loop"
            );
        }
    }
}
