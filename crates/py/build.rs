//! With the `bundle-cli` feature (which `pyproject.toml` turns on for every
//! maturin build), build the native `lastwords` command from the workspace's
//! CLI crate and put it where maturin packs it into the wheel:
//! `wheel-data/scripts/`, which pip installs into the environment's `bin/`.
//!
//! maturin builds one Cargo artifact per wheel (its issue #368), and the dump
//! command must not start Python (a Python start costs more than a whole
//! dump), so the extension's build builds the executable too: a nested
//! `cargo build` with its own target directory (sharing the outer one would
//! deadlock on Cargo's lock), for the same target and profile.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if std::env::var_os("CARGO_FEATURE_BUNDLE_CLI").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..");
    for dir in ["crates/cli", "crates/core", "crates/remote", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target_dir = workspace.join("target/bundled-cli");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args(["build", "--quiet", "--package", "lastwords-cli", "--target"])
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir);
    if release {
        build.arg("--release");
    }
    // What Cargo sets for this build script describes this package, not the
    // nested build: leave it out (the linker settings maturin passes for the
    // target, e.g. with --zig, stay).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR" | "CARGO_MANIFEST_PATH" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            build.env_remove(&*key);
        }
    }
    let status = build.status().expect("could not run cargo for the CLI");
    assert!(status.success(), "building the lastwords command failed");
    let built = target_dir
        .join(&target)
        .join(if release { "release" } else { "debug" })
        .join("lastwords");
    let scripts = workspace.join("wheel-data/scripts");
    std::fs::create_dir_all(&scripts).expect("create wheel-data/scripts");
    copy_executable(&built, &scripts.join("lastwords"));
}

/// Copy through a temporary name, so that a half-written file is never packed.
fn copy_executable(from: &Path, to: &Path) {
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).expect("copy the lastwords command");
    std::fs::rename(&partial, to).expect("install the lastwords command");
}
