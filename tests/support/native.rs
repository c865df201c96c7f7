//! Building and running C and C++ test programs against the committed header and the
//! static library cargo just built, under valgrind when it is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The directory holding `libvaluestor.a` for this build (`target/<profile>`).
///
/// `cargo test` builds the library only as an `rlib`, so the first call in each test process
/// runs `cargo build --lib` to produce a static library that matches the sources under test.
pub fn library_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_static_library).clone()
}

fn build_static_library() -> PathBuf {
    let dir = super::cargo_build(&["--lib"]);
    assert!(
        dir.join("libvaluestor.a").exists(),
        "cargo build --lib left no libvaluestor.a in {}",
        dir.display()
    );
    dir
}

/// Compiles `sources` into `output` with `compiler` and `flags`, linking the static library.
pub fn compile(compiler: &str, flags: &[&str], sources: &[PathBuf], output: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir().join("libvaluestor.a");
    let result = Command::new(compiler)
        .args(flags)
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-I{}", root.join("tests/c").display()))
        .arg(format!("-I{}", root.join("cpp-shim/include").display()))
        .args(sources)
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(output)
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e} (install g++, see .ci/install)"));
    assert!(
        result.status.success(),
        "{compiler} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Whether valgrind is available (and not disabled with `VS_NO_VALGRIND=1`).
pub fn valgrind_available() -> bool {
    std::env::var_os("VS_NO_VALGRIND").is_none()
        && Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Runs `program` with `args`, under valgrind when available (invalid accesses and
/// definite or possible leaks fail, except the known non-leaks listed with their reasons
/// in `tests/support/valgrind.supp`); panics with the output unless it exits 0.
pub fn run(program: &Path, args: &[&str]) -> Output {
    run_with_env(program, args, &[])
}

/// Like [`run`], with extra environment variables for the program.
pub fn run_with_env(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = if valgrind_available() {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,possible",
            "--show-leak-kinds=definite,possible",
            "--num-callers=50",
        ])
        .arg(format!(
            "--suppressions={}",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/support/valgrind.supp")
                .display()
        ))
        .arg(program);
        c
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run test program");
    assert!(
        output.status.success(),
        "{} {:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        program.display(),
        args,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
