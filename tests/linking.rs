//! The static library links with the README's documented link line however it was built:
//! alone (as a user builds it) or together with the examples, tests and benches (as CI and
//! `packaging/install.sh` build it, with dev-dependencies whose features could otherwise be
//! unified into the library's), and `valuestor.pc` names the same system libraries.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The start of the README's C link command; the system libraries follow the library.
const README_LINK: &str = "cc -std=c11 -Iinclude app.c target/release/libvaluestor.a ";

/// The system libraries of the README's C link line (between the library and `-o`).
fn readme_system_libraries() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find_map(|l| l.strip_prefix(README_LINK))
        .unwrap_or_else(|| panic!("README.md has no line starting with {README_LINK:?}"));
    let libraries: Vec<String> = line
        .split_whitespace()
        .take_while(|word| *word != "-o")
        .map(String::from)
        .collect();
    assert!(!libraries.is_empty(), "no libraries in {line:?}");
    libraries
}

/// Builds with `cargo build <args>` (this test's profile: features do not depend on it),
/// copies the library it left, and links a C program that uses the pool and statements
/// with exactly the README's line; panics with the linker's output if it fails.
fn link_after_building(args: &[&str], dir: &Path) {
    let built = support::cargo_build(args).join("libvaluestor.a");
    // Copied at once: another test process may build the library again meanwhile.
    let name = args.join("").replace('-', "");
    let library = dir.join(format!("lib-{name}.a"));
    std::fs::copy(&built, &library).unwrap();
    let program: PathBuf = dir.join(format!("roundtrip-{name}"));
    let libraries = readme_system_libraries();
    let output = Command::new("cc")
        .args(["-std=c11", "-Iinclude", "-Itests/c", "tests/c/roundtrip.c"])
        .arg(&library)
        .args(&libraries)
        .arg("-o")
        .arg(&program)
        .current_dir(repo())
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "linking with the README's line `{}` failed for the library from `cargo build {}`:\n{}",
        libraries.join(" "),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(program.exists());
}

#[test]
fn readme_link_line_links_the_library_built_alone() {
    let dir = tempfile::tempdir().unwrap();
    link_after_building(&["--lib"], dir.path());
}

#[test]
fn readme_link_line_links_the_library_built_with_examples_and_dev_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    link_after_building(&["--lib", "--examples"], dir.path());
}

#[test]
fn pkg_config_file_names_the_readme_system_libraries() {
    let pc = std::fs::read_to_string(repo().join("packaging/valuestor.pc")).unwrap();
    let libs = pc
        .lines()
        .find_map(|l| l.strip_prefix("Libs:"))
        .expect("valuestor.pc has a Libs: line");
    let system: Vec<&str> = libs
        .split_whitespace()
        .skip_while(|word| *word != "-lvaluestor")
        .skip(1)
        .collect();
    assert_eq!(
        system,
        readme_system_libraries(),
        "valuestor.pc Libs ({libs:?}) against the README's link line"
    );
}
