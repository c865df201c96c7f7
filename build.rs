//! Generates `include/valuestor.h` from the files in `src/ffi` with cbindgen (settings in `cbindgen.toml`).
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
    // Only the C ABI module is exported: constants elsewhere in the crate (NAME_MAX and the
    // like) are Rust internals and would clash with system headers.
    let mut builder = cbindgen::Builder::new().with_config(config);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(crate_dir.join("src/ffi"))
        .expect("read src/ffi")
        .map(|entry| entry.expect("list src/ffi").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    sources.sort();
    for source in sources {
        builder = builder.with_src(source);
    }
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
