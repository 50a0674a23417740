//! Criterion benches of the same variants and inputs `harness bench` times (one thread, hot
//! weights, a representative TinyLlama shape per family), for those who live in `cargo bench`:
//! `cargo bench -p harness --bench kernels -- matmul_q4k` filters as usual.
//! `harness bench` remains the tool for the full shape grid, threads, cold weights and roofs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use harness::bench::variants::{kind, variants_of, FamilyKind, Kernel};
use harness::bench::workloads::{parse_shapes, unsupported, GroupInputs, Workload};
use std::time::Duration;

/// Per family, the shapes worth a criterion group: decode and a prefill chunk of the square
/// attention projection, decode attention at 512 positions, the ops on the hidden size.
fn workloads_for(family: Kernel) -> Vec<Workload> {
    let all = parse_shapes(&["tinyllama".into()], &[1, 40]).expect("built-in shapes");
    all.into_iter()
        .filter(|w| match (kind(family), w) {
            (FamilyKind::Matmul, Workload::Matmul { shape, .. }) => shape.ends_with("attn_q"),
            (FamilyKind::Attention, Workload::Attention { kv_len, .. }) => *kv_len == 512,
            (FamilyKind::Op, Workload::Op { shape, .. }) => shape.ends_with("hidden"),
            _ => false,
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    for family in Kernel::ALL {
        let mut group = c.benchmark_group(family.name());
        group
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        for w in workloads_for(family) {
            if unsupported(family, &w).is_some() {
                continue;
            }
            let inputs = GroupInputs::new(family, &w, None, 0x5eed);
            let (rows, k, n) = w.rkn();
            for v in variants_of(family)
                .into_iter()
                .filter(|v| v.isa.is_available())
            {
                let mut call = inputs.call(v, 1, None);
                let id = BenchmarkId::new(
                    format!("{}/{}", v.design, v.isa),
                    format!("{}/{rows}x{k}x{n}", w.shape()),
                );
                group.bench_function(id, |b| b.iter(&mut call));
            }
        }
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
