//! The AES-GCM implementations in the binary, on this machine's CPU, through `sekisho_tunnel::aead`:
//! aws-lc and ring, AES-128 and AES-256, sealing 64 KiB in place (a full end-to-end record, half a
//! link record). Which one is faster depends on the CPU: aws-lc's vector AES needs AVX-512, ring's
//! runs on AVX2; the data path picks by CPU (`Backend::current`).

#![expect(clippy::unwrap_used, reason = "a benchmark has nowhere to report a setup failure but a panic")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sekisho_tunnel::aead::{Backend, Key, NONCE_LEN};

const LEN: usize = 64 << 10;

fn cipher(c: &mut Criterion) {
    let mut group = c.benchmark_group("cipher");
    group.throughput(Throughput::Bytes(LEN as u64));
    let mut buf = vec![0u8; LEN];
    for backend in [Backend::AwsLc, Backend::Ring] {
        for bits in [128, 256] {
            let key = Key::with_backend(backend, &[7u8; 32][..bits / 8]).unwrap();
            let mut seq = 0u64;
            group.bench_function(format!("{}/aes-{bits}-gcm", backend.name()), |b| {
                b.iter(|| {
                    seq += 1;
                    let mut nonce = [0u8; NONCE_LEN];
                    nonce[4..].copy_from_slice(&seq.to_be_bytes());
                    key.seal(nonce, &[], black_box(&mut buf)).unwrap()
                })
            });
        }
    }
    group.finish();
    println!("this process's data path uses: {}", Backend::current().name());
}

criterion_group!(benches, cipher);
criterion_main!(benches);
