//! Link settings of the release binary (docs/build.md): relative relocations packed
//! (`DT_RELR`), which take 0.1 MB instead of the 7.6 MB of a plain `.rela.dyn` table. Both the
//! default linker (LLD) and GNU ld 2.38+ support it; the loader needs glibc 2.36 or later.
//! Set `TWEETFLOW_PLAIN_RELOCS=1` to link without it.

fn main() {
    println!("cargo:rerun-if-env-changed=TWEETFLOW_PLAIN_RELOCS");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux && std::env::var_os("TWEETFLOW_PLAIN_RELOCS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
