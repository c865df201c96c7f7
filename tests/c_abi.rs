//! The C ABI from C: programs in `tests/c/` built with `cc -std=c11 -Wall -Wextra
//! -Wpedantic -Werror` against `include/valuestor.h` and the static library, run against a
//! private MariaDB (under valgrind when installed).

mod support;

use std::path::{Path, PathBuf};

use support::{native, MariaDb};

const C_FLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-g",
];

/// Builds `tests/c/<name>.c` into `dir`.
fn build(name: &str, dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let program = dir.join(name);
    native::compile("cc", C_FLAGS, &[source], &program);
    program
}

/// Writes a config for `db` (plus `extra` keys) and returns its path.
fn write_config(dir: &Path, name: &str, db: &MariaDb, extra: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, db.conf_xml(extra)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn c_header_compiles_alone_and_twice() {
    let dir = tempfile::tempdir().unwrap();
    let program = build("header_alone", dir.path());
    native::run(&program, &[]);
}

#[test]
fn c_round_trip_of_every_type() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vs_conf.xml", &db, "");
    let program = build("roundtrip", dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("roundtrip ok"));
}

#[test]
fn c_null_pointers_are_rejected_not_crashes() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vs_conf.xml", &db, "");
    let program = build("null_args", dir.path());
    native::run(&program, &[&config]);
}

#[test]
fn c_error_paths_report_status_code_and_sqlstate() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let small = write_config(
        dir.path(),
        "small.xml",
        &db,
        "<DatabaseMaxPoolSize>1</DatabaseMaxPoolSize>\
         <DatabaseMaxResultSize>64K</DatabaseMaxResultSize>",
    );
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = dir.path().join("down.xml");
    std::fs::write(
        &down,
        format!(
            "<VSConf><DatabaseHost>127.0.0.1</DatabaseHost><DatabasePort>{port}</DatabasePort>\
             <DatabaseConnectTimeout>2</DatabaseConnectTimeout></VSConf>"
        ),
    )
    .unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<VSConf>\n<DatabaseTimeout>6O</DatabaseTimeout>\n</VSConf>\n",
    )
    .unwrap();
    let program = build("errors", dir.path());
    native::run(
        &program,
        &[&small, down.to_str().unwrap(), bad.to_str().unwrap()],
    );
}

#[test]
fn c_threads_share_one_pool() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "vs_conf.xml",
        &db,
        "<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize>",
    );
    let program = build("threads", dir.path());
    native::run(&program, &[&config]);
}

#[test]
fn c_errors_in_later_statements_are_reported() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vs_conf.xml", &db, "");
    let program = build("multi_statement", dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("multi_statement ok"));
}

#[test]
fn c_dates_read_the_same_through_prepared_statements_and_queries() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vs_conf.xml", &db, "");
    let program = build("temporal", dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("temporal ok"));
}

#[test]
fn c_default_config_comes_from_vs_conf_and_its_pool_size_can_be_capped() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "vs_conf.xml",
        &db,
        "<DatabaseMaxPoolSize>3</DatabaseMaxPoolSize>",
    );
    let program = build("config_default", dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("config_default ok"));
}

#[test]
fn c_buffer_edges_keep_exact_bytes() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vs_conf.xml", &db, "");
    let program = build("buffers", dir.path());
    let output = native::run(&program, &[&config]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("buffers ok"));
}
