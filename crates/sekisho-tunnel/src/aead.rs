//! AES-GCM for the data path (sealed links and end-to-end records), from whichever of the two
//! implementations in the binary is faster on this CPU.
//!
//! aws-lc's fastest AES-GCM needs AVX-512 (with VAES and VPCLMULQDQ); on a CPU with VAES but only
//! AVX2 it falls back to the older AES-NI code, and ring's VAES/AVX2 code is about 1.8× faster there
//! (`cargo bench -p sekisho-tunnel --bench cipher`). Where AVX-512 is present, aws-lc's is 1.7×
//! faster than ring's. Both are the same algorithm, so the two ends of a link or of a stream may use
//! different implementations. `SEKISHO_AEAD=aws-lc` or `=ring` overrides the choice (for
//! comparisons); the choice is made once per process. [`expand`] (HKDF-Expand) derives the keys of
//! both.
//!
//! The rule holds for aws-lc-sys 0.47 (aws-lc-rs 1.19) and ring 0.17.14. BoringSSL has a VAES/AVX2
//! AES-GCM that aws-lc may take over; after an upgrade, run the `cipher` bench again.

use std::sync::OnceLock;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// The implementation behind every [`Key`] of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    AwsLc,
    Ring,
}

impl Backend {
    /// The one this process uses: `SEKISHO_AEAD` if set to a known name, else by CPU features.
    pub fn current() -> Backend {
        static CHOSEN: OnceLock<Backend> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let var = std::env::var("SEKISHO_AEAD").ok();
            Backend::parse(var.as_deref()).unwrap_or_else(|unknown| {
                tracing::warn!(SEKISHO_AEAD = unknown, "unknown AES-GCM backend (aws-lc or ring); choosing by CPU");
                Backend::for_cpu()
            })
        })
    }

    /// The backend `SEKISHO_AEAD` names, by CPU when it is unset or empty; `Err` with the value when unknown.
    fn parse(var: Option<&str>) -> Result<Backend, &str> {
        match var.map(str::trim) {
            None | Some("") => Ok(Backend::for_cpu()),
            Some(v) if v.eq_ignore_ascii_case("aws-lc") => Ok(Backend::AwsLc),
            Some(v) if v.eq_ignore_ascii_case("ring") => Ok(Backend::Ring),
            Some(v) => Err(v),
        }
    }

    fn for_cpu() -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            // aws-lc's AVX-512 AES-GCM wants all of these (its `CPU_CAP_AVX512_BITFLAGS`).
            let avx512 = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl");
            let vector_aes =
                std::arch::is_x86_feature_detected!("vaes") && std::arch::is_x86_feature_detected!("vpclmulqdq");
            if vector_aes && !avx512 {
                return Backend::Ring;
            }
        }
        Backend::AwsLc
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::AwsLc => "aws-lc",
            Backend::Ring => "ring",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("AES-GCM: {0}")]
pub struct AeadError(&'static str);

struct HkdfLen(usize);

impl aws_lc_rs::hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// `HKDF-Expand(secret, info, N)` with SHA-256, the 32-byte secret taken as the PRK: how the sealed
/// link and the end-to-end records derive keys, IVs and the next epoch's secret.
pub(crate) fn expand<const N: usize>(secret: &[u8; 32], info: &[&[u8]]) -> Result<[u8; N], AeadError> {
    use aws_lc_rs::hkdf;
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
    let mut out = [0u8; N];
    prk.expand(info, HkdfLen(N)).and_then(|okm| okm.fill(&mut out)).map_err(|_| AeadError("key derivation failed"))?;
    Ok(out)
}

/// An AES-GCM key (128 or 256 bits, by the length given).
#[expect(
    clippy::large_enum_variant,
    reason = "a key lives once per link direction or inside a stream's boxed key, never in bulk; a box \
              around ring's key schedule would add a pointer chase to every record"
)]
pub enum Key {
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    Ring(ring::aead::LessSafeKey),
}

impl Key {
    /// A key of `bytes.len()` bytes (16 or 32) on this process's backend.
    pub fn new(bytes: &[u8]) -> Result<Key, AeadError> {
        Key::with_backend(Backend::current(), bytes)
    }

    pub fn with_backend(backend: Backend, bytes: &[u8]) -> Result<Key, AeadError> {
        let bad = |_| AeadError("a key is 16 or 32 bytes");
        Ok(match backend {
            Backend::AwsLc => {
                let alg = if bytes.len() == 16 { &aws_lc_rs::aead::AES_128_GCM } else { &aws_lc_rs::aead::AES_256_GCM };
                Key::AwsLc(aws_lc_rs::aead::LessSafeKey::new(
                    aws_lc_rs::aead::UnboundKey::new(alg, bytes).map_err(|_| bad(()))?,
                ))
            }
            Backend::Ring => {
                let alg = if bytes.len() == 16 { &ring::aead::AES_128_GCM } else { &ring::aead::AES_256_GCM };
                Key::Ring(ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(alg, bytes).map_err(|_| bad(()))?))
            }
        })
    }

    /// Encrypts `in_out` in place; returns the tag.
    pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> Result<[u8; TAG_LEN], AeadError> {
        let mut tag = [0u8; TAG_LEN];
        match self {
            Key::AwsLc(k) => {
                let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce);
                let t = k
                    .seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(aad), in_out)
                    .map_err(|_| AeadError("seal failed"))?;
                tag.copy_from_slice(t.as_ref());
            }
            Key::Ring(k) => {
                let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
                let t = k
                    .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), in_out)
                    .map_err(|_| AeadError("seal failed"))?;
                tag.copy_from_slice(t.as_ref());
            }
        }
        Ok(tag)
    }

    /// Decrypts `in_out` (ciphertext followed by its tag) in place; returns the plaintext's length.
    pub fn open(&self, nonce: [u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> Result<usize, AeadError> {
        let failed = |_| AeadError("record failed authentication");
        Ok(match self {
            Key::AwsLc(k) => k
                .open_in_place(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                    aws_lc_rs::aead::Aad::from(aad),
                    in_out,
                )
                .map_err(|_| failed(()))?
                .len(),
            Key::Ring(k) => k
                .open_in_place(ring::aead::Nonce::assume_unique_for_key(nonce), ring::aead::Aad::from(aad), in_out)
                .map_err(|_| failed(()))?
                .len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_backend_opens_what_the_other_sealed() {
        for len in [16, 32] {
            let bytes = [9u8; 32];
            let keys = [Backend::AwsLc, Backend::Ring].map(|b| Key::with_backend(b, &bytes[..len]).unwrap());
            assert!(matches!((&keys[0], &keys[1]), (Key::AwsLc(_), Key::Ring(_))), "each backend as asked");
            for (a, b) in [(0, 1), (1, 0)] {
                let mut msg = b"across implementations".to_vec();
                let tag = keys[a].seal([3; NONCE_LEN], b"hdr", &mut msg).unwrap();
                assert_ne!(&msg[..], b"across implementations");
                msg.extend_from_slice(&tag);
                let mut tampered = msg.clone();
                tampered[0] ^= 1;
                assert!(keys[b].open([3; NONCE_LEN], b"hdr", &mut tampered).is_err(), "a changed byte fails");
                assert!(keys[b].open([3; NONCE_LEN], b"other", &mut msg.clone()).is_err(), "other data fails");
                let n = keys[b].open([3; NONCE_LEN], b"hdr", &mut msg).unwrap();
                assert_eq!(&msg[..n], b"across implementations");
            }
        }
        assert!(Key::with_backend(Backend::Ring, &[0; 24]).is_err());
        assert!(Key::with_backend(Backend::AwsLc, &[0; 24]).is_err());
        assert!(Key::with_backend(Backend::AwsLc, &[0; 5]).is_err());
    }

    #[test]
    fn the_override_names_a_backend_or_is_refused() {
        assert_eq!(Backend::parse(Some("ring")), Ok(Backend::Ring));
        assert_eq!(Backend::parse(Some(" AWS-LC ")), Ok(Backend::AwsLc));
        assert_eq!(Backend::parse(None), Ok(Backend::for_cpu()));
        assert_eq!(Backend::parse(Some("")), Ok(Backend::for_cpu()));
        assert_eq!(Backend::parse(Some("awslc")), Err("awslc"));
    }
}
