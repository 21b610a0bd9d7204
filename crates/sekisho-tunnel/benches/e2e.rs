//! End-to-end sealing between two agents: what a new stream's first record costs (its keys are
//! derived then: two HKDF-Expand and an AES-256 key schedule per direction) against a record on a stream
//! that already has its keys, and a full 64 KiB record sealed in place.

#![expect(clippy::unwrap_used, reason = "a benchmark has nowhere to report a setup failure but a panic")]

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sekisho_tunnel::e2e::{self, MAX_PLAIN, PairSession, RECORD_OVERHEAD};

fn pair() -> (Arc<PairSession>, Arc<PairSession>) {
    let (a_sec, a_pub) = e2e::generate_static().unwrap();
    let (b_sec, b_pub) = e2e::generate_static().unwrap();
    let (init, m1) = e2e::initiate(&a_sec, &b_pub).unwrap();
    let (resp, m2) = e2e::respond(&b_sec, &a_pub, &m1).unwrap();
    (Arc::new(init.finish(&m2).unwrap()), Arc::new(resp))
}

fn e2e(c: &mut Criterion) {
    let (a, b) = pair();
    let request = b"GET / HTTP/1.1\r\nHost: wiki\r\n\r\n";
    let mut wire = BytesMut::with_capacity(1024);

    let mut index = 0u32;
    c.bench_function("e2e/new_stream_first_record", |bench| {
        bench.iter(|| {
            index += 1;
            let (mut seal, _) = a.stream(index, "").unwrap();
            let (_, mut open) = b.stream(index, "").unwrap();
            wire.clear();
            seal.seal(black_box(request), &mut wire).unwrap();
            open.push(&wire);
            open.next_record().unwrap().unwrap()
        })
    });

    let (mut seal, _) = a.stream(u32::MAX - 1, "").unwrap();
    let (_, mut open) = b.stream(u32::MAX - 1, "").unwrap();
    c.bench_function("e2e/keyed_stream_record", |bench| {
        bench.iter(|| {
            wire.clear();
            seal.seal(black_box(request), &mut wire).unwrap();
            open.push(&wire);
            open.next_record().unwrap().unwrap()
        })
    });

    let (mut seal, _) = a.stream(u32::MAX - 2, "").unwrap();
    let mut record = vec![0u8; MAX_PLAIN + RECORD_OVERHEAD];
    let mut group = c.benchmark_group("e2e");
    group.throughput(Throughput::Bytes(MAX_PLAIN as u64));
    group.bench_function("seal_64k_record", |bench| {
        bench.iter(|| seal.seal_in_place(black_box(&mut record), MAX_PLAIN).unwrap())
    });
    group.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
