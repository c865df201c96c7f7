//! Generates `include/valuestor.h` from `src/ffi` with cbindgen (settings in `cbindgen.toml`).
//!
//! The header is committed; CI fails when the generated one differs. The file is rewritten
//! only when its content changes, so its timestamp does not churn.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // Only the C ABI module (cbindgen follows its `mod` lines): constants elsewhere in the
    // crate (NAME_MAX and the like) are Rust internals and would clash with system headers.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    let bindings = builder
        .generate()
        .expect("cbindgen can generate the header from src/ffi");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("include").join("valuestor.h");
    if std::fs::read(&path).ok().as_deref() != Some(&generated[..]) {
        std::fs::create_dir_all(crate_dir.join("include")).expect("create include/");
        std::fs::write(&path, generated).expect("write include/valuestor.h");
    }
}
