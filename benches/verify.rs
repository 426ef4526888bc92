//! Verifying a full chain (root → timestamp → snapshot → targets, first contact with TOFU, and with
//! a pinned state) for repositories with 1 … 10,000 targets. Numbers go in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use trustgate::trust::testkit::{verify, TestRepo};

const GUN: &str = "docker.io/library/bench";

fn repo(n: usize) -> TestRepo {
    let mut r = TestRepo::new(GUN);
    r.target_files = (0..n)
        .map(|i| (format!("tag-{i}"), format!("manifest {i}").into_bytes()))
        .collect();
    r
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify_chain");
    for n in [1usize, 100, 1_000, 10_000] {
        let src = repo(n).build();
        let state = verify(&src, GUN, None).expect("verifies").new_state;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("tofu", n), &n, |b, _| {
            b.iter(|| verify(&src, GUN, None).expect("verifies"));
        });
        g.bench_with_input(BenchmarkId::new("pinned", n), &n, |b, _| {
            b.iter(|| {
                let v = verify(&src, GUN, Some(&state)).expect("verifies");
                v.lookup("tag-0", None).expect("signed")
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
