//! Link flags for the `sekisho` binary.
//!
//! On GNU/Linux the binary is linked with packed relative relocations (`DT_RELR`, binutils ≥ 2.38
//! and glibc ≥ 2.36, both in Debian 12). The binary is position-independent, so it carries one
//! relocation for every pointer in its read-only data; as classic `RELA` entries that table is
//! 0.8 MB, which the loader reads whole at every start and which then stays resident. Packed, it
//! is a few kilobytes (bench/README.md, "Memory: packed relocations and a faster purge").

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
