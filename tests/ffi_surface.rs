//! The C ABI's shape: every export guarded and documented, versions in sync, the contract's
//! names present in the committed header.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header() -> String {
    std::fs::read_to_string(root().join("include/valuestor.h")).expect("committed header")
}

/// Each exported function with its body, from the sources of `src/ffi`.
fn exported_functions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root().join("src/ffi")).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find("#[no_mangle]") {
            rest = &rest[at + 12..];
            let name_start = rest.find("fn ").expect("fn after no_mangle") + 3;
            let name_end = name_start + rest[name_start..].find('(').unwrap();
            let name = rest[name_start..name_end].to_string();
            let body_end = rest.find("\n}\n").unwrap_or(rest.len());
            found.push((name, rest[..body_end].to_string()));
        }
    }
    assert!(found.len() > 30, "found only {} exports", found.len());
    found
}

#[test]
fn every_export_runs_inside_the_panic_guard() {
    for (name, body) in exported_functions() {
        assert!(
            body.contains("ffi_guard(") || body.contains("ffi_guard_value("),
            "{name} has no panic guard"
        );
    }
}

#[test]
fn every_header_function_is_documented() {
    let header = header();
    let lines: Vec<&str> = header.lines().collect();
    for (name, _) in exported_functions() {
        let declaration = lines
            .iter()
            .position(|line| {
                !line.starts_with([' ', '/', '*', '#']) && line.contains(&format!("{name}("))
            })
            .unwrap_or_else(|| panic!("{name} missing from include/valuestor.h"));
        assert!(
            declaration > 0 && lines[declaration - 1].trim_end().ends_with("*/"),
            "{name} has no doc comment in the header"
        );
    }
}

#[test]
fn header_versions_match_cargo_toml() {
    let header = header();
    for (macro_name, value) in [
        ("VS_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("VS_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("VS_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            header.contains(&format!("#define {macro_name} {value}\n")),
            "{macro_name} is not {value}"
        );
    }
    assert!(header.contains("#define VS_ABI_VERSION 2\n"));
}

#[test]
fn header_has_the_contract_names_and_status_values() {
    let header = header();
    for (status, value) in [
        ("VS_OK", 0),
        ("VS_ERR_INVALID_ARGUMENT", 1),
        ("VS_ERR_TIMEOUT", 2),
        ("VS_ERR_UNAVAILABLE", 3),
        ("VS_ERR_SQL", 4),
        ("VS_ERR_RESULT_TOO_LARGE", 5),
        ("VS_ERR_OUT_OF_MEMORY", 6),
        ("VS_ERR_CLOSED", 7),
        ("VS_ERR_CONFIG", 8),
        ("VS_ERR_TYPE", 9),
        ("VS_ERR_INTERNAL", 10),
    ] {
        assert!(header.contains(&format!("{status} = {value},")), "{status}");
    }
    for name in [
        "vs_last_error",
        "vs_last_sql_error_code",
        "vs_last_sqlstate",
        "vs_abi_version",
        "vs_version",
        "vs_config_load",
        "vs_config_free",
        "vs_pool_open",
        "vs_pool_open_legacy",
        "vs_pool_get",
        "vs_conn_release",
        "vs_pool_stats",
        "vs_pool_close",
        "vs_pool_free",
        "vs_conn_execute",
        "vs_conn_query",
        "vs_conn_ping",
        "vs_conn_set_schema",
        "vs_conn_begin",
        "vs_conn_commit",
        "vs_conn_rollback",
        "vs_conn_prepare",
        "vs_stmt_bind_null",
        "vs_stmt_bind_i64",
        "vs_stmt_bind_u64",
        "vs_stmt_bind_f64",
        "vs_stmt_bind_text",
        "vs_stmt_bind_bytes",
        "vs_stmt_execute_update",
        "vs_stmt_execute_query",
        "vs_stmt_free",
        "vs_result_next",
        "vs_result_seek",
        "vs_result_affected_rows",
        "vs_result_column_count",
        "vs_result_column_index",
        "vs_result_is_null",
        "vs_result_get_i64",
        "vs_result_get_u64",
        "vs_result_get_f64",
        "vs_result_get_text",
        "vs_result_free",
    ] {
        assert!(header.contains(&format!("{name}(")), "{name} missing");
    }
}

#[test]
fn header_defines_only_vs_prefixed_macros() {
    // Internal Rust constants (NAME_MAX, ROOT_INO, ...) must not leak into C programs, where
    // they would clash with <limits.h> and the like.
    for line in header().lines() {
        if let Some(rest) = line.strip_prefix("#define ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                name.starts_with("VS_") || name == "VALUESTOR_H",
                "the header defines {name}, outside the VS_ namespace"
            );
        }
    }
}

#[test]
fn every_export_is_declared_exactly_once() {
    let header = header();
    for (name, _) in exported_functions() {
        let declarations = header
            .lines()
            .filter(|line| {
                !line.starts_with([' ', '/', '*', '#'])
                    && (line.contains(&format!(" {name}(")) || line.contains(&format!("*{name}(")))
            })
            .count();
        assert_eq!(declarations, 1, "{name} is declared {declarations} times");
    }
}

#[test]
fn pkg_config_versions_match_cargo_toml() {
    for file in ["packaging/valuestor.pc", "packaging/valuestor-cpp.pc"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(
            text.contains(&format!("\nVersion: {}\n", env!("CARGO_PKG_VERSION"))),
            "{file}: Version is not {}",
            env!("CARGO_PKG_VERSION")
        );
    }
    let cpp = std::fs::read_to_string(root().join("packaging/valuestor-cpp.pc")).unwrap();
    assert!(
        cpp.contains(&format!(
            "Requires: valuestor = {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "valuestor-cpp.pc must require the same valuestor version"
    );
}
