//! With the `bundle-cli` feature (which `pyproject.toml` turns on for every
//! maturin build), build the native `lastwords` command from the workspace's
//! CLI crate and put it where maturin packs it into the wheel:
//! `wheel-data/scripts/`, which pip installs into the environment's `bin/`.
//!
//! maturin builds one Cargo artifact per wheel (its issue #368), and the dump
//! command must not start Python (a Python start costs more than a whole
//! dump), so the extension's build builds the executable too: a nested
//! `cargo build` with its own target directory (sharing the outer one would
//! deadlock on Cargo's lock), for the same target and profile. It is linked
//! statically (see `main`), so that it runs wherever the extension loads;
//! where that link cannot be made, with the linker maturin sets for the
//! extension (with `--zig`, zig's wrappers for glibc 2.17 in
//! `CARGO_TARGET_<TRIPLE>_LINKER` and `CC_<triple>`), which is passed on.
//!
//! Before anything else, a target other than Linux with glibc stops the
//! build with an error naming the supported platforms.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if !supported_platform() || std::env::var_os("CARGO_FEATURE_BUNDLE_CLI").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..");
    // What the command is built from. A watched path that does not exist
    // makes every build run this script (and compile this crate) again:
    // crates/remote is watched once it exists (Cargo.lock changes when the
    // command starts to use it).
    for path in [
        "crates/cli",
        "crates/core",
        "crates/remote",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        let path = workspace.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target_dir = workspace.join("target/bundled-cli");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Static first: a static-pie command needs no loader, no libc.so and no
    // symbol binding at start, which is ~0.5 ms of every `lastwords dump`
    // (about a sixth of it), and it runs on any glibc or none. That link is
    // the host's (`cc` with glibc's libc.a: zig has no static glibc), so
    // maturin's zig linker is left out of it. Where libc.a is missing the
    // command is linked dynamically, the way maturin asked (zig's glibc
    // 2.17 stubs for the manylinux2014 wheel).
    let static_build = nested_build(&cargo, &workspace, &target, &target_dir, release, true);
    if !static_build {
        println!(
            "cargo::warning=the lastwords command could not be linked statically \
             (is glibc's libc.a installed?): linking it dynamically"
        );
        let dynamic = nested_build(&cargo, &workspace, &target, &target_dir, release, false);
        assert!(dynamic, "building the lastwords command failed");
    }
    let built = target_dir
        .join(&target)
        .join(if release { "release" } else { "debug" })
        .join("lastwords");
    let scripts = workspace.join("wheel-data/scripts");
    std::fs::create_dir_all(&scripts).expect("create wheel-data/scripts");
    let installed = scripts.join("lastwords");
    // Every build (host, or maturin --zig for manylinux2014) writes this one
    // file, and each has its own fingerprint: run again whenever another
    // build has replaced it, or a wheel could pack the other build's command
    // (linked against another glibc). Rewritten only when it differs, so
    // that an unchanged build settles.
    println!("cargo:rerun-if-changed={}", installed.display());
    if std::fs::read(&built).ok() != std::fs::read(&installed).ok() {
        copy_executable(&built, &installed);
    }
}

/// Build the command with a nested `cargo build`; true when it succeeded.
fn nested_build(
    cargo: &std::ffi::OsStr,
    workspace: &Path,
    target: &str,
    target_dir: &Path,
    release: bool,
    static_link: bool,
) -> bool {
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--quiet", "--package", "lastwords-cli", "--target"])
        .arg(target)
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        build.arg("--release");
    }
    // What Cargo sets for this build script describes this package, not the
    // nested build: leave it out (the linker settings maturin passes for the
    // target, e.g. with --zig, stay for a dynamic link).
    let linker_key = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR" | "CARGO_MANIFEST_PATH" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
            || (static_link && *key == linker_key)
        {
            build.env_remove(&*key);
        }
    }
    if static_link {
        // CARGO_ENCODED_RUSTFLAGS (which Cargo gives this script) takes
        // precedence over every other source of flags: add to it. With
        // `--target`, the flags reach neither build scripts nor proc macros.
        let mut flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
        if !flags.is_empty() {
            flags.push('\x1f');
        }
        flags.push_str("-Ctarget-feature=+crt-static");
        build.env("CARGO_ENCODED_RUSTFLAGS", flags);
    }
    build.status().is_ok_and(|status| status.success())
}

/// lastwords reads its own process the Linux way (process_vm_readv, timerfd,
/// /proc, glibc's dladdr1): built for another target, lastwords-core would
/// fail with errors about missing `libc` items. Say so plainly instead (pip
/// shows this when it falls back to the sdist on macOS, Windows or musl).
fn supported_platform() -> bool {
    let var = |name| std::env::var(name).unwrap_or_default();
    let (os, env) = (var("CARGO_CFG_TARGET_OS"), var("CARGO_CFG_TARGET_ENV"));
    if os == "linux" && env == "gnu" {
        return true;
    }
    println!(
        "cargo::error=lastwords runs on Linux with glibc only (its wheels: x86_64, manylinux2014, \
         glibc 2.17 or newer), not on {} ({os}{}{env}). Where lastwords cannot be installed, \
         use the standard library's faulthandler: lastwords is a drop-in for it.",
        var("TARGET"),
        if env.is_empty() { "" } else { ", " },
    );
    false
}

/// Copy through a temporary name, so that a half-written file is never packed.
fn copy_executable(from: &Path, to: &Path) {
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).expect("copy the lastwords command");
    std::fs::rename(&partial, to).expect("install the lastwords command");
}
