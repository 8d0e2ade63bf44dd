//! Link settings of the release binary (docs/build.md):
//!
//! * relative relocations packed (`-z pack-relative-relocs`, `DT_RELR`): 0.1 MB instead of the
//!   7.6 MB of a plain `.rela.dyn` table; the loader needs glibc 2.36 or later;
//! * identical functions folded (`--icf=all`, 2.0 MB): generic instances that compiled to the
//!   same machine code are kept once. Rust does not promise distinct addresses to distinct
//!   functions, so nothing may rely on it; data is not folded (a `static` keeps its own
//!   address).
//!
//! Both are LLD options, and LLD is Rust's default linker on x86-64 Linux; set
//! `TWEETFLOW_PLAIN_LINK=1` to link without them (another linker, an older glibc).

fn main() {
    println!("cargo:rerun-if-env-changed=TWEETFLOW_PLAIN_LINK");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux && std::env::var_os("TWEETFLOW_PLAIN_LINK").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}
