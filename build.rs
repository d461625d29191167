//! Build script: links the unwinder into the `mage-secrets` binary instead of
//! loading `libgcc_s.so.1` at start.
//!
//! On linux-gnu, rustc links every program against `libgcc_s` for unwinding.
//! Loading that library runs its constructor, which asks the CPU for its
//! features with a dozen `cpuid` instructions; under a hypervisor each one
//! traps to the host. Measured on a two-core VM: 0.1 ms of every run, about
//! a twentieth of `mage-secrets get`. The same unwinder ships as a static
//! archive, `libgcc_eh.a` (what rustc itself links for `crt-static`), so the
//! binary's link finds, ahead of the system's, a `libgcc_s.so` that is a
//! linker script naming that archive. Only the binary is linked this way:
//! the library, its tests and the Python extension keep the default. Where
//! the linker has no `libgcc_eh.a` (or cannot say), nothing changes.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || target_env != "gnu" || !has_static_unwinder() {
        return;
    }
    let dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("unwind");
    fs::create_dir_all(&dir).expect("create OUT_DIR/unwind");
    fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("write the linker script");
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
}

/// Whether the program that links the binary finds `libgcc_eh.a`: the linker
/// Cargo was told to use for this target, else `cc` (rustc's own default).
/// Asked for a file it does not have, `-print-file-name` answers with the
/// bare name; a linker that does not understand the option is not used.
fn has_static_unwinder() -> bool {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut flags = flags.split('\x1f');
    let mut from_flags = None;
    while let Some(flag) = flags.next() {
        let value = match flag {
            "-C" | "--codegen" => flags.next().unwrap_or_default(),
            _ => flag.strip_prefix("-C").unwrap_or_default(),
        };
        if let Some(linker) = value.strip_prefix("linker=") {
            from_flags = Some(linker.to_string());
        }
    }
    let linker = from_flags
        .or_else(|| env::var("RUSTC_LINKER").ok())
        .unwrap_or_else(|| "cc".into());
    Command::new(linker)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .is_some_and(|path| path != "libgcc_eh.a" && PathBuf::from(path).is_file())
}
