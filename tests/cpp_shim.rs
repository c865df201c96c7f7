//! The C++ shim: programs in `tests/cpp/` built with `c++ -std=c++11 -Wall -Wextra
//! -Wpedantic -Werror` (C++11 is the shim's floor) from the shim's sources, the committed header and the static library,
//! run against a private MariaDB (under valgrind when installed); and the shim's own builds
//! (Makefile, CMake, pkg-config after `make install`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{native, MariaDb};

const CXX_FLAGS: &[&str] = &[
    "-std=c++11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-g",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the given `tests/cpp` sources plus the shim into `dir/name`.
fn build(name: &str, tests: &[&str], dir: &Path) -> PathBuf {
    let mut sources: Vec<PathBuf> = tests
        .iter()
        .map(|t| root().join("tests/cpp").join(t))
        .collect();
    for entry in std::fs::read_dir(root().join("cpp-shim/src")).unwrap() {
        sources.push(entry.unwrap().path());
    }
    let program = dir.join(name);
    native::compile("c++", CXX_FLAGS, &sources, &program);
    program
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn down_config(dir: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write(
        dir,
        "down.xml",
        &format!(
            "<VSConf><DatabaseHost>127.0.0.1</DatabaseHost><DatabasePort>{port}</DatabasePort></VSConf>"
        ),
    )
}

/// Builds `tests/cpp/<name>.cpp`, runs it against a fresh database whose config has `extra`
/// keys, and checks it printed `done` (its last line).
fn run_against_database(name: &str, extra: &str, done: &str) {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "vs_conf.xml", &db.conf_xml(extra));
    let program = build(name, &[&format!("{name}.cpp")], dir.path());
    let output = native::run(&program, &[&config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(done), "{name}: {stdout}");
}

#[test]
fn cpp_shim_headers_are_safe_to_include_twice_in_two_units() {
    let dir = tempfile::tempdir().unwrap();
    let program = build("include", &["include_a.cpp", "include_b.cpp"], dir.path());
    native::run(&program, &[]);
}

#[test]
fn cpp_shim_round_trip() {
    run_against_database("roundtrip", "", "cpp roundtrip ok");
}

#[test]
fn cpp_shim_runs_legacy_catalog_code() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "vs_conf.xml",
        &db.conf_xml("<DatabaseMaxPoolSize>1</DatabaseMaxPoolSize>"),
    );
    let program = build("legacy_catalog", &["legacy_catalog.cpp"], dir.path());
    native::run(&program, &[&config, db.database()]);
}

#[test]
fn cpp_shim_throws_on_bad_config_and_unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.xml",
        "<VSConf>\n<DatabasePort>port</DatabasePort>\n</VSConf>\n",
    );
    let down = down_config(dir.path());
    let program = build("errors", &["errors.cpp"], dir.path());
    native::run(&program, &[&bad, &down]);
}

#[test]
fn cpp_shim_autocommit_off_is_server_side_and_restored_on_release() {
    run_against_database(
        "autocommit",
        "<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize>",
        "cpp autocommit ok",
    );
}

#[test]
fn cpp_shim_legacy_constructor_honours_max_size_and_never_throws() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "vs_conf.xml",
        &db.conf_xml("<DatabaseMaxPoolSize>3</DatabaseMaxPoolSize>"),
    );
    let program = build("legacy_pool", &["legacy_pool.cpp"], dir.path());
    let output = native::run_with_env(&program, &[&config], &[("VS_CONF", &config)]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("cpp legacy pool ok"));
}

/// Runs `command`, panicking with its output unless it succeeds; returns its stdout.
fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every file under `dir`, sorted (to prove a build wrote nothing into the source tree).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn static_library() -> PathBuf {
    native::library_dir().join("libvaluestor.a")
}

#[test]
fn cpp_shim_builds_out_of_tree_with_its_makefile() {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("make-build");
    let before = files_under(&root().join("cpp-shim"));
    run_ok(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(root().join("cpp-shim"))
            .arg(format!("BUILD={}", build.display())),
    );
    assert_eq!(
        files_under(&root().join("cpp-shim")),
        before,
        "make wrote into the source tree"
    );
    let program = dir.path().join("linked");
    run_ok(
        Command::new("c++")
            .args(CXX_FLAGS)
            .arg(format!("-I{}", root().join("include").display()))
            .arg(format!("-I{}", root().join("cpp-shim/include").display()))
            .arg(root().join("tests/cpp/linked.cpp"))
            .arg(build.join("libvsshim.a"))
            .arg(static_library())
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&program),
    );
    let output = native::run(&program, &[]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("linked ok"));
}

#[test]
fn cpp_shim_builds_with_cmake_add_subdirectory() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("consumer");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.13)\n\
             project(consumer CXX)\n\
             add_subdirectory({shim} vsshim)\n\
             add_executable(linked {program})\n\
             target_compile_options(linked PRIVATE -Wall -Wextra -Wpedantic -Werror)\n\
             target_link_libraries(linked PRIVATE vs::shim)\n",
            shim = root().join("cpp-shim").display(),
            program = root().join("tests/cpp/linked.cpp").display()
        ),
    )
    .unwrap();
    let build = dir.path().join("cmake-build");
    let before = files_under(&root().join("cpp-shim"));
    run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(&project)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DVALUESTOR_LIB={}", static_library().display())),
    );
    run_ok(Command::new("cmake").arg("--build").arg(&build));
    assert_eq!(
        files_under(&root().join("cpp-shim")),
        before,
        "cmake wrote into the source tree"
    );
    let output = native::run(&build.join("linked"), &[]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("linked ok"));
}

#[test]
fn cmake_says_how_to_get_the_rust_library_when_it_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("cmake")
        .arg("-S")
        .arg(root().join("cpp-shim"))
        .arg("-B")
        .arg(dir.path())
        .arg("-DVALUESTOR_LIB=/nonexistent/libvaluestor.a")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "configuring without the library must fail"
    );
    // CMake wraps messages: compare with whitespace collapsed.
    let stderr = String::from_utf8_lossy(&output.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        stderr.contains("/nonexistent/libvaluestor.a") && stderr.contains("cargo build --release"),
        "{stderr}"
    );
}

#[test]
fn pkg_config_files_build_c_and_cpp_programs_after_make_install() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    run_ok(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(root().join("cpp-shim"))
            .arg("install")
            .arg(format!("BUILD={}", dir.path().join("build").display()))
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("VALUESTOR_LIB={}", static_library().display())),
    );
    let pkg_config = |package: &str| -> Vec<String> {
        let flags = run_ok(
            Command::new("pkg-config")
                .args(["--cflags", "--libs", package])
                .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
        );
        flags.split_whitespace().map(String::from).collect()
    };
    let cpp_flags = pkg_config("valuestor-cpp");
    assert!(
        cpp_flags.contains(&format!("-I{}", prefix.join("include").display()))
            && cpp_flags.contains(&"-lvsshim".to_string())
            && cpp_flags.contains(&"-lvaluestor".to_string()),
        "{cpp_flags:?}"
    );

    // C: the header and the library found through valuestor.pc alone.
    let c_program = dir.path().join("c_program");
    run_ok(
        Command::new("cc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
            .arg(root().join("tests/c/header_alone.c"))
            .args(pkg_config("valuestor"))
            .arg("-o")
            .arg(&c_program),
    );
    native::run(&c_program, &[]);

    // C++: the shim through valuestor-cpp.pc (which requires valuestor.pc).
    let cpp_program = dir.path().join("cpp_program");
    run_ok(
        Command::new("c++")
            .args(CXX_FLAGS)
            .arg(root().join("tests/cpp/linked.cpp"))
            .args(&cpp_flags)
            .arg("-o")
            .arg(&cpp_program),
    );
    let output = native::run(&cpp_program, &[]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("linked ok"));
}

#[test]
fn make_install_refuses_without_the_rust_library() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root().join("cpp-shim"))
        .arg("install")
        .arg(format!("BUILD={}", dir.path().join("build").display()))
        .arg(format!("PREFIX={}", dir.path().join("prefix").display()))
        .arg("VALUESTOR_LIB=/nonexistent/libvaluestor.a")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cargo build --release"), "{stderr}");
    assert!(!dir.path().join("prefix/lib").exists());
}

#[test]
fn cpp_shim_pool_is_shared_by_threads() {
    run_against_database(
        "threads",
        "<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize>",
        "cpp threads ok",
    );
}
