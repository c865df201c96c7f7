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

/// Builds `tests/c/<name>.c`, runs it against a fresh database whose config has `extra`
/// keys, and checks it got to its last line (`<name> ok`).
fn run_against_database(name: &str, extra: &str) {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "vs_conf.xml", &db, extra);
    let program = build(name, dir.path());
    let output = native::run(&program, &[&config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("{name} ok")), "{name}: {stdout}");
}

#[test]
fn c_header_compiles_alone_and_twice() {
    let dir = tempfile::tempdir().unwrap();
    let program = build("header_alone", dir.path());
    native::run(&program, &[]);
}

#[test]
fn c_round_trip_of_every_type() {
    run_against_database("roundtrip", "");
}

#[test]
fn c_null_pointers_are_rejected_not_crashes() {
    run_against_database("null_args", "");
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
    run_against_database("threads", "<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize>");
}

#[test]
fn c_errors_in_later_statements_are_reported() {
    run_against_database("multi_statement", "");
}

#[test]
fn c_dates_read_the_same_through_prepared_statements_and_queries() {
    run_against_database("temporal", "");
}

#[test]
fn c_default_config_comes_from_vs_conf_and_its_pool_size_can_be_capped() {
    run_against_database(
        "config_default",
        "<DatabaseMaxPoolSize>3</DatabaseMaxPoolSize>",
    );
}

#[test]
fn c_buffer_edges_keep_exact_bytes() {
    run_against_database("buffers", "");
}

/// Runs `tests/c/log_level.c` with `RUST_LOG` set to `level` (empty reads as unset) and
/// returns its stderr. No database is needed: the pool's server is a closed loopback port.
fn log_level_stderr(level: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pool = dir.path().join("pool.xml");
    std::fs::write(
        &pool,
        format!(
            "<VSConf><DatabaseHost>127.0.0.1</DatabaseHost><DatabasePort>{port}</DatabasePort>\
             </VSConf>"
        ),
    )
    .unwrap();
    let unknown = dir.path().join("unknown.xml");
    std::fs::write(
        &unknown,
        "<VSConf>\n<NoSuchKeyAnywhere>1</NoSuchKeyAnywhere>\n</VSConf>\n",
    )
    .unwrap();
    let program = build("log_level", dir.path());
    let args = [pool.to_str().unwrap(), unknown.to_str().unwrap()];
    let output = native::run_with_env(&program, &args, &[("RUST_LOG", level)]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("log_level ok"), "{stdout}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The lines of `stderr` that mention `needle`.
fn lines_with<'a>(stderr: &'a str, needle: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn c_programs_get_the_library_warnings_on_stderr_by_default() {
    let stderr = log_level_stderr("");
    let lines = lines_with(&stderr, "NoSuchKeyAnywhere");
    assert_eq!(lines.len(), 1, "one warning for the unknown key:\n{stderr}");
    let line = regex::Regex::new(
        r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARN  valuestor::ffi::config\] .*unknown key NoSuchKeyAnywhere \(line 2\)",
    )
    .unwrap();
    assert!(line.is_match(lines[0]), "line format: {}", lines[0]);
    assert!(
        lines_with(&stderr, "C ABI logging to stderr").is_empty(),
        "debug lines at the default level:\n{stderr}"
    );
}

#[test]
fn rust_log_sets_the_level_of_the_c_abi_log() {
    let quiet = log_level_stderr("error");
    assert!(
        lines_with(&quiet, "NoSuchKeyAnywhere").is_empty(),
        "a warning with RUST_LOG=error:\n{quiet}"
    );
    let verbose = log_level_stderr("debug");
    assert_eq!(
        lines_with(&verbose, "C ABI logging to stderr").len(),
        1,
        "RUST_LOG=debug:\n{verbose}"
    );
    let by_target = log_level_stderr("error,valuestor::ffi=warn");
    assert_eq!(
        lines_with(&by_target, "NoSuchKeyAnywhere").len(),
        1,
        "RUST_LOG=error,valuestor::ffi=warn:\n{by_target}"
    );
}
