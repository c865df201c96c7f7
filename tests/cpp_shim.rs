//! The C++ shim: programs in `tests/cpp/` built with `c++ -std=c++17 -Wall -Wextra -Werror`
//! from the shim's sources, the committed header and the static library, run against a
//! private MariaDB (under valgrind when installed).

mod support;

use std::path::{Path, PathBuf};

use support::{native, MariaDb};

const CXX_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-g"];

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

#[test]
fn cpp_shim_headers_are_safe_to_include_twice_in_two_units() {
    let dir = tempfile::tempdir().unwrap();
    let program = build("include", &["include_a.cpp", "include_b.cpp"], dir.path());
    native::run(&program, &[]);
}

#[test]
fn cpp_shim_round_trip() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "vs_conf.xml", &db.conf_xml(""));
    let program = build("roundtrip", &["roundtrip.cpp"], dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("cpp roundtrip ok"));
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
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "vs_conf.xml",
        &db.conf_xml("<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize>"),
    );
    let program = build("autocommit", &["autocommit.cpp"], dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("cpp autocommit ok"));
}

#[test]
fn cpp_shim_legacy_constructor_reads_vs_conf_and_caps_the_pool() {
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
