//! The AES-GCM implementations in the binary, on this machine's CPU: aws-lc-rs and ring, AES-128 and
//! AES-256, sealing 64 KiB in place (a full end-to-end record, half a link record). Which one is
//! faster depends on the CPU: aws-lc has a VAES path for AVX-512 only, ring one for AVX2.

#![expect(clippy::unwrap_used, reason = "a benchmark has nowhere to report a setup failure but a panic")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LEN: usize = 64 << 10;

fn cipher(c: &mut Criterion) {
    let mut group = c.benchmark_group("cipher");
    group.throughput(Throughput::Bytes(LEN as u64));
    let mut buf = vec![0u8; LEN];
    for (name, alg, key_len) in [
        ("aws-lc/aes-128-gcm", &aws_lc_rs::aead::AES_128_GCM, 16),
        ("aws-lc/aes-256-gcm", &aws_lc_rs::aead::AES_256_GCM, 32),
    ] {
        let key =
            aws_lc_rs::aead::LessSafeKey::new(aws_lc_rs::aead::UnboundKey::new(alg, &[7u8; 32][..key_len]).unwrap());
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&seq.to_be_bytes());
                let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce);
                key.seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::empty(), black_box(&mut buf)).unwrap()
            })
        });
    }
    for (name, alg, key_len) in
        [("ring/aes-128-gcm", &ring::aead::AES_128_GCM, 16), ("ring/aes-256-gcm", &ring::aead::AES_256_GCM, 32)]
    {
        let key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(alg, &[7u8; 32][..key_len]).unwrap());
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&seq.to_be_bytes());
                let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
                key.seal_in_place_separate_tag(nonce, ring::aead::Aad::empty(), black_box(&mut buf)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cipher);
criterion_main!(benches);
