//! `vs_conf.xml`: the legacy file, the seed sample, the shipped sample, every error class,
//! and the limits: file kind and size, parse time, duration maxima, separate folders, keys
//! recognised but not used.

use std::time::Duration;

use valuestor::config::{known_keys, Config, ConfigError};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn parse(body: &str) -> Result<Config, ConfigError> {
    Config::from_xml(&format!("<VSConf>\n{body}\n</VSConf>\n"))
}

fn value_error(body: &str) -> (String, String, usize, String) {
    match parse(body) {
        Err(err @ ConfigError::Value { .. }) => {
            let text = err.to_string();
            let ConfigError::Value {
                key, value, line, ..
            } = err
            else {
                unreachable!()
            };
            (key, value, line, text)
        }
        other => panic!("expected a value error for {body:?}, got {other:?}"),
    }
}

#[test]
fn legacy_file_loads_with_shipped_values() {
    let config = Config::load("tests/fixtures/legacy_vs_conf.xml").expect("legacy file loads");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.cache.free_min_size, 15 * GIB);
    assert_eq!(config.cache.free_max_size, 25 * GIB);
    assert_eq!(config.cache.free_min_percent, 20);
    assert_eq!(config.cache.free_max_percent, 30);
    assert_eq!(config.cache.file_size_read, 4 * GIB);
    assert_eq!(config.cache.file_size_block, 128 * MIB);
    assert_eq!(config.file_max_size, 0);
    assert_eq!(config.archive.tape_idle_time, Duration::from_secs(10));
    assert_eq!(config.archive.file_idle_time, Duration::from_secs(3));
    assert!(config.digest.md5);
    assert!(!config.digest.sha1);
    assert_eq!(config.meta_file_size, MIB);
    assert!(config.filters.file_pattern.is_none());
    let tape = config.archive.write_file_pattern.as_ref().expect("pattern");
    assert!(tape.is_match("/objects/1/2/3/x.data"));
    assert!(!tape.is_match("/objects/1/2/x.data"));
    assert_eq!(config.archive.tape_reserved_min_free_size, 50 * GIB);
    assert_eq!(config.archive.delete_tape_file_trigger_num, 1000);
    assert_eq!(
        config.archive.delete_tape_file_time_diff,
        Duration::from_secs(86400)
    );
    assert_eq!(config.cache.ignore_write_by_read_percent, 80);
    // Keys absent from the legacy file keep their defaults.
    assert_eq!(config.database.max_pool_size, 4);
    assert_eq!(config.mount_point.to_str(), Some("/opt/VS/vsMounts"));
}

#[test]
fn seed_sample_loads() {
    let config = parse(
        "<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize>\n<DatabaseTimeout>60</DatabaseTimeout>\n\
         <DatabaseInitialPoolSize>1</DatabaseInitialPoolSize>\n\
         <CacheFileSizeRead>128M</CacheFileSizeRead>\n<CacheFreeMinSize>1G</CacheFreeMinSize>",
    )
    .expect("seed sample loads");
    assert_eq!(config.database.max_pool_size, 2);
    assert_eq!(config.database.initial_pool_size, 1);
    assert_eq!(config.database.timeout, Duration::from_secs(60));
    assert_eq!(config.cache.file_size_read, 128 * MIB);
    assert_eq!(config.cache.free_min_size, GIB);
}

#[test]
fn shipped_sample_has_every_key_and_no_warnings() {
    let text = std::fs::read_to_string("packaging/vs_conf.xml").unwrap();
    let config = Config::from_xml(&text).expect("sample loads");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    for key in known_keys() {
        assert!(
            text.contains(&format!("<{key}>")),
            "packaging/vs_conf.xml lacks {key}"
        );
    }
    assert_eq!(config.database.max_pool_size, 2);
    assert_eq!(config.database.name, "CatalogDb");
}

#[test]
fn every_known_key_is_understood() {
    for key in known_keys() {
        let value = match *key {
            "DatabaseHost" | "DatabaseUser" | "DatabaseName" => "x",
            "DatabaseSocket" | "MountPoint" | "ArchiveFolder" => "/var/run/x",
            "CacheFolder" => "/var/cache/x",
            "DatabasePasswordFile" => "",
            "DigestMD5Enable" | "DigestSHA1Enable" | "MountAllowSuidDev" => "true",
            k if k.ends_with("Pattern") => "^a$",
            "DatabasePort" => "3307",
            "DatabaseInitialPoolSize" => "1",
            "CacheFreeMinPercent" => "5",
            k if k.contains("Percent") => "20",
            "DatabaseMaxAllowedPacket" | "DatabaseMaxResultSize" => "16M",
            "CacheFreeMaxSize" => "30G",
            _ => "20",
        };
        let config = parse(&format!("<{key}>{value}</{key}>"))
            .unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        assert!(config.warnings.is_empty(), "{key}: {:?}", config.warnings);
    }
}

#[test]
fn database_keys_reach_pool_options() {
    let config = parse(
        "<DatabaseHost>db.example</DatabaseHost><DatabasePort>3307</DatabasePort>\
         <DatabaseUser>vs</DatabaseUser><DatabasePassword>s3cret</DatabasePassword>\
         <DatabaseName>Cat_1</DatabaseName><DatabaseMaxPoolSize>8</DatabaseMaxPoolSize>\
         <DatabaseInitialPoolSize>3</DatabaseInitialPoolSize><DatabaseTimeout>7</DatabaseTimeout>",
    )
    .unwrap();
    let options = valuestor::PoolOptions::from_config(&config.database);
    assert_eq!(options.host, "db.example");
    assert_eq!(options.port, 3307);
    assert_eq!(options.user, "vs");
    assert_eq!(options.password, "s3cret");
    assert_eq!(options.database.as_deref(), Some("Cat_1"));
    assert_eq!((options.max_size, options.initial_size), (8, 3));
    assert_eq!(options.acquire_timeout, Duration::from_secs(7));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Config::load("/nonexistent/vs_conf.xml").unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/vs_conf.xml"),
        "{err}"
    );
}

#[test]
fn malformed_xml_names_the_line() {
    let err = Config::from_xml("<VSConf>\n<DatabaseHost>x</DatabaseHost>\n<A>1</B>\n</VSConf>")
        .unwrap_err();
    assert!(matches!(err, ConfigError::Xml { line: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("line 3"), "{err}");
    let err = Config::from_xml("<Config><A>1</A></Config>").unwrap_err();
    assert!(err.to_string().contains("VSConf"), "{err}");
}

#[test]
fn bad_values_name_key_value_and_line() {
    let (key, value, line, text) =
        value_error("<DatabaseHost>h</DatabaseHost>\n<DatabaseTimeout>6O</DatabaseTimeout>");
    assert_eq!(
        (key.as_str(), value.as_str(), line),
        ("DatabaseTimeout", "6O", 3)
    );
    assert_eq!(
        text,
        "DatabaseTimeout: \"6O\" is not a whole number of seconds (line 3)"
    );
    for (body, key) in [
        (
            "<CacheFreeMinSize>lots</CacheFreeMinSize>",
            "CacheFreeMinSize",
        ),
        (
            "<CacheFreeMinSize>-1G</CacheFreeMinSize>",
            "CacheFreeMinSize",
        ),
        (
            "<CacheFileSizeRead>1.5G</CacheFileSizeRead>",
            "CacheFileSizeRead",
        ),
        ("<FileMaxSize>99999999999T</FileMaxSize>", "FileMaxSize"),
        (
            "<CacheFreeMinPercent>120</CacheFreeMinPercent>",
            "CacheFreeMinPercent",
        ),
        (
            "<DigestMD5Enable>maybe</DigestMD5Enable>",
            "DigestMD5Enable",
        ),
        (
            "<FilterFilePattern>(open</FilterFilePattern>",
            "FilterFilePattern",
        ),
        ("<DatabasePort>70000</DatabasePort>", "DatabasePort"),
        ("<DatabasePort>0</DatabasePort>", "DatabasePort"),
        ("<DatabaseName>a;DROP</DatabaseName>", "DatabaseName"),
        ("<MountPoint>relative/dir</MountPoint>", "MountPoint"),
        (
            "<DatabaseMaxPoolSize>two</DatabaseMaxPoolSize>",
            "DatabaseMaxPoolSize",
        ),
    ] {
        let (got_key, _, line, text) = value_error(body);
        assert_eq!(got_key, key, "{body}");
        assert_eq!(line, 2, "{body}");
        assert!(
            text.starts_with(key) && text.ends_with("(line 2)"),
            "{text}"
        );
    }
}

#[test]
fn contradictions_are_rejected_with_a_clear_message() {
    for (body, needle) in [
        (
            "<DatabaseMaxPoolSize>2</DatabaseMaxPoolSize><DatabaseInitialPoolSize>3</DatabaseInitialPoolSize>",
            "DatabaseInitialPoolSize (3) is larger than DatabaseMaxPoolSize (2)",
        ),
        ("<DatabaseMaxPoolSize>0</DatabaseMaxPoolSize>", "DatabaseMaxPoolSize is 0"),
        (
            "<CacheFreeMinSize>30G</CacheFreeMinSize><CacheFreeMaxSize>20G</CacheFreeMaxSize>",
            "CacheFreeMinSize",
        ),
        (
            "<CacheFreeMinPercent>50</CacheFreeMinPercent><CacheFreeMaxPercent>40</CacheFreeMaxPercent>",
            "CacheFreeMinPercent (50) is larger",
        ),
        ("<DatabaseTimeout>0</DatabaseTimeout>", "DatabaseTimeout"),
        ("<DatabaseMaxAllowedPacket>2G</DatabaseMaxAllowedPacket>", "DatabaseMaxAllowedPacket"),
        (
            "<MountPoint>/mnt/vs</MountPoint><CacheFolder>/mnt/vs/cache</CacheFolder>",
            "inside MountPoint",
        ),
    ] {
        let err = parse(body).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{body}: {err:?}");
        assert!(err.to_string().contains(needle), "{body}: {err}");
    }
}

#[test]
fn unknown_keys_warn_with_their_line() {
    let config = parse("<DatabaseHost>h</DatabaseHost>\n<Colour>blue</Colour>").unwrap();
    assert_eq!(
        config.warnings,
        vec!["unknown key Colour (line 3) is ignored"]
    );
}

#[test]
fn a_key_given_twice_warns_and_the_last_wins() {
    let config =
        parse("<DatabasePort>3307</DatabasePort>\n<DatabasePort>3308</DatabasePort>").unwrap();
    assert_eq!(config.database.port, 3308);
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("lines 2 and 3"),
        "{:?}",
        config.warnings
    );
}

#[test]
fn password_never_appears_in_debug_or_errors() {
    let config = parse("<DatabasePassword>hunter2-secret</DatabasePassword>").unwrap();
    assert_eq!(config.database.password.expose(), "hunter2-secret");
    let shown = format!("{config:?} {:?}", config.database);
    assert!(!shown.contains("hunter2"), "{shown}");
    let err = parse(
        "<DatabasePassword>hunter2-secret</DatabasePassword>\
         <DatabaseMaxPoolSize>0</DatabaseMaxPoolSize>",
    )
    .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

#[test]
fn password_file_supplies_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file-secret\nignored\n").unwrap();
    let config = parse(&format!(
        "<DatabasePasswordFile>{}</DatabasePasswordFile>",
        file.display()
    ))
    .unwrap();
    assert_eq!(config.database.password.expose(), "from-file-secret");

    let err = parse("<DatabasePasswordFile>/nonexistent/pw</DatabasePasswordFile>").unwrap_err();
    assert!(
        err.to_string().contains("DatabasePasswordFile")
            && err.to_string().contains("/nonexistent/pw"),
        "{err}"
    );
    let err = parse(&format!(
        "<DatabasePassword>x</DatabasePassword>\n<DatabasePasswordFile>{}</DatabasePasswordFile>",
        file.display()
    ))
    .unwrap_err();
    assert!(err.to_string().contains("both set"), "{err}");
    assert!(!format!("{err:?}").contains("from-file-secret"));
}

#[test]
fn size_edge_cases() {
    use valuestor::config::parse_size;
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size("1k"), Ok(1024));
    assert_eq!(parse_size("4G"), Ok(4 * GIB));
    assert_eq!(parse_size("16T"), Ok(16 << 40));
    assert_eq!(parse_size("128MB"), Ok(128 * MIB));
    for bad in ["99999999999T", "-1", "garbage", "", "1.5G", "5Q"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
}

/// A `<VSConf>` document with `n` elements (unknown keys, so each is also a warning).
fn many_elements(n: usize) -> String {
    let mut text = String::with_capacity(n * 12 + 32);
    text.push_str("<VSConf>\n");
    for i in 0..n {
        text.push_str(&format!("<K{i}>1</K{i}>\n"));
    }
    text.push_str("</VSConf>\n");
    text
}

#[test]
fn a_config_of_100000_elements_parses_in_linear_time() {
    // Quadratic parsing took 31.6 s for 40,000 elements (release) and minutes for 100,000
    // in a debug build; linear parsing takes well under a second. The bound is generous for
    // a loaded machine and still far below what quadratic parsing needs.
    const LIMIT: Duration = Duration::from_secs(20);
    let text = many_elements(100_000);
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let parsed = Config::from_xml(&text).map(|c| c.warnings.len());
        let _ = done.send((parsed, started.elapsed()));
    });
    match result.recv_timeout(LIMIT) {
        Ok((parsed, elapsed)) => {
            let warnings = parsed.expect("100,000 elements parse");
            assert!(warnings > 0, "unknown keys are reported");
            eprintln!("100,000 elements parsed in {elapsed:?} (limit {LIMIT:?})");
        }
        Err(_) => panic!("100,000 elements not parsed within {LIMIT:?}"),
    }
}

/// `Config::load(path)` run on another thread: a load that blocks fails the test instead of
/// hanging it.
fn load_within(path: &std::path::Path, limit: Duration) -> Result<Config, ConfigError> {
    let (done, result) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = done.send(Config::load(&path));
    });
    result
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("loading the config did not return within {limit:?}"))
}

fn make_fifo(path: &std::path::Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn assert_refused(path: &std::path::Path, needle: &str) {
    let err = load_within(path, Duration::from_secs(10)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Refused { .. }), "{err:?}");
    assert!(
        text.contains(&path.display().to_string()) && text.contains(needle),
        "expected the path {} and {needle:?} in: {text}",
        path.display()
    );
}

#[test]
fn a_fifo_as_config_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("vs_conf.xml");
    make_fifo(&fifo);
    assert_refused(&fifo, "named pipe (FIFO), not a regular file");
}

#[test]
fn a_device_as_config_is_refused_without_reading_it() {
    assert_refused(std::path::Path::new("/dev/zero"), "character device");
}

#[test]
fn a_directory_as_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(dir.path(), "is a directory");
}

#[test]
fn a_config_larger_than_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vs_conf.xml");
    let limit = valuestor::config::MAX_CONFIG_BYTES;
    let mut text = many_elements(200_000);
    assert!(text.len() as u64 > limit, "the test file exceeds the limit");
    std::fs::write(&path, &text).unwrap();
    assert_refused(&path, &format!("larger than {limit} bytes"));
    // Just below the limit is fine.
    text = many_elements(10);
    text.insert_str(
        text.len() - "</VSConf>\n".len(),
        &" ".repeat(limit as usize - text.len()),
    );
    std::fs::write(&path, &text).unwrap();
    load_within(&path, Duration::from_secs(10)).expect("a file at the limit loads");
}

#[test]
fn a_password_file_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pw");
    make_fifo(&fifo);
    for (path, needle) in [
        (fifo.as_path(), "named pipe"),
        (std::path::Path::new("/dev/zero"), "character device"),
        (dir.path(), "directory"),
    ] {
        let config = dir.path().join("vs_conf.xml");
        std::fs::write(
            &config,
            format!(
                "<VSConf>\n<DatabasePasswordFile>{}</DatabasePasswordFile>\n</VSConf>\n",
                path.display()
            ),
        )
        .unwrap();
        let err = load_within(&config, Duration::from_secs(10)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("DatabasePasswordFile")
                && text.contains(&path.display().to_string())
                && text.contains(needle)
                && text.ends_with("(line 2)"),
            "{path:?}: {text}"
        );
    }
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 5000]).unwrap();
    let err = parse(&format!(
        "<DatabasePasswordFile>{}</DatabasePasswordFile>",
        big.display()
    ))
    .unwrap_err();
    assert!(err.to_string().contains("larger than 4096 bytes"), "{err}");
}

#[test]
fn durations_beyond_their_maximum_are_refused_naming_key_value_line_and_maximum() {
    for (key, maximum) in [
        ("DatabaseTimeout", "3600 s (1 hour)"),
        ("DatabaseIdleTimeout", "2592000 s (30 days)"),
        ("DatabaseMaxLifetime", "2592000 s (30 days)"),
    ] {
        let body = format!(
            "<DatabaseHost>h</DatabaseHost>\n<{key}>{}</{key}>",
            u64::MAX
        );
        let (got_key, value, line, text) = value_error(&body);
        assert_eq!(
            (got_key.as_str(), value, line),
            (key, u64::MAX.to_string(), 3),
            "{text}"
        );
        assert_eq!(
            text,
            format!(
                "{key}: \"{}\" is longer than the maximum of {maximum} (line 3)",
                u64::MAX
            )
        );
    }
}

#[test]
fn every_duration_key_has_a_maximum() {
    use valuestor::config::DURATION_LIMITS;
    let mut listed: Vec<&str> = DURATION_LIMITS.iter().map(|(key, _)| *key).collect();
    let mut fields: Vec<&str> = Config::default()
        .durations()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    listed.sort_unstable();
    fields.sort_unstable();
    assert_eq!(
        listed, fields,
        "DURATION_LIMITS against Config::durations()"
    );
    for key in listed {
        assert!(known_keys().contains(&key), "{key} is not a known key");
    }
}

#[test]
fn mount_cache_and_archive_folders_must_be_separate_trees() {
    for (body, message) in [
        (
            "<MountPoint>/srv/vs/cache/mnt/</MountPoint><CacheFolder>/srv/vs/cache</CacheFolder>",
            "MountPoint (/srv/vs/cache/mnt) is inside CacheFolder (/srv/vs/cache)",
        ),
        (
            "<MountPoint>/srv/vs</MountPoint><CacheFolder>/srv/./vs/</CacheFolder>",
            "MountPoint and CacheFolder are the same directory (/srv/vs)",
        ),
        (
            "<MountPoint>/srv/vs</MountPoint><CacheFolder>/srv/x/../vs/cache</CacheFolder>",
            "CacheFolder (/srv/vs/cache) is inside MountPoint (/srv/vs)",
        ),
        (
            "<MountPoint>/srv/mnt</MountPoint><CacheFolder>/srv/cache</CacheFolder>\
             <ArchiveFolder>/srv/cache/archive</ArchiveFolder>",
            "ArchiveFolder (/srv/cache/archive) is inside CacheFolder (/srv/cache)",
        ),
        (
            "<MountPoint>/srv/mnt/</MountPoint><CacheFolder>/srv/cache</CacheFolder>\
             <ArchiveFolder>/srv/mnt</ArchiveFolder>",
            "MountPoint and ArchiveFolder are the same directory (/srv/mnt)",
        ),
    ] {
        let err = parse(body).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { .. }),
            "{body}: {err:?}"
        );
        assert_eq!(err.to_string(), format!("invalid configuration: {message}"));
    }
    parse(
        "<MountPoint>/srv/vs/cachex</MountPoint><CacheFolder>/srv/vs/cache</CacheFolder>\
         <ArchiveFolder>/srv/vs/archive</ArchiveFolder>",
    )
    .expect("siblings sharing a name prefix are separate trees");
}

#[test]
fn a_mount_point_reached_through_a_symlink_into_the_cache_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(real.join("cache")).unwrap();
    std::os::unix::fs::symlink(real.join("cache"), real.join("link")).unwrap();
    let path = real.join("vs_conf.xml");
    std::fs::write(
        &path,
        format!(
            "<VSConf><MountPoint>{0}/link/mnt</MountPoint><CacheFolder>{0}/cache</CacheFolder></VSConf>",
            real.display()
        ),
    )
    .unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid configuration: MountPoint ({0}/cache/mnt) is inside CacheFolder \
             ({0}/cache), with symlinks resolved",
            real.display()
        )
    );
}

#[test]
fn every_known_key_set_is_either_used_or_reported_as_unused() {
    use valuestor::config::USED_KEYS;
    for key in USED_KEYS {
        assert!(known_keys().contains(key), "USED_KEYS lists unknown {key}");
    }
    let config = parse("<TapeIdleTime>100</TapeIdleTime>\n<FileMaxSize>1G</FileMaxSize>\n<TapeIdleTime>90</TapeIdleTime>\n<Colour>blue</Colour>").unwrap();
    assert_eq!(config.unused_keys, vec!["TapeIdleTime (line 2)"]);
    assert_eq!(
        config.unused_report().as_deref(),
        Some("recognised but not used yet (no effect): TapeIdleTime (line 2)")
    );
    let config =
        parse("<FileMaxSize>1G</FileMaxSize><CacheFreeLeastSize>1G</CacheFreeLeastSize>").unwrap();
    assert_eq!(config.unused_report(), None, "{:?}", config.unused_keys);
}

#[test]
fn warnings_are_bounded() {
    use valuestor::config::MAX_WARNINGS;
    let config = Config::from_xml(&many_elements(1000)).unwrap();
    assert_eq!(
        config.warnings.len(),
        MAX_WARNINGS + 1,
        "{:?}",
        config.warnings.last()
    );
    assert_eq!(
        config.warnings.last().map(String::as_str),
        Some(format!("... and {} more warnings", 1000 - MAX_WARNINGS).as_str())
    );
}

#[test]
fn database_host_lists_several_nodes_for_the_pool() {
    let config = parse(
        "<DatabaseHost>db1, db2:3307 ,[::1]</DatabaseHost><DatabasePort>3310</DatabasePort>\
         <DatabaseHealthInterval>3</DatabaseHealthInterval>\
         <DatabaseHealthTimeout>4</DatabaseHealthTimeout>\
         <DatabaseFailbackDelay>0</DatabaseFailbackDelay>",
    )
    .unwrap();
    let nodes: Vec<String> = config
        .database
        .nodes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nodes, ["db1:3310", "db2:3307", "[::1]:3310"]);
    let options = valuestor::PoolOptions::from_config(&config.database);
    assert_eq!((options.host.as_str(), options.port), ("db1", 3310));
    assert_eq!(options.more_nodes.len(), 2);
    assert_eq!(options.health_interval, Duration::from_secs(3));
    assert_eq!(options.health_timeout, Duration::from_secs(4));
    assert_eq!(options.failback_delay, Duration::ZERO);
}

#[test]
fn health_and_failback_keys_default_to_1_2_and_30_seconds() {
    let db = parse("").unwrap().database;
    assert_eq!(
        (db.health_interval, db.health_timeout, db.failback_delay),
        (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(30)
        )
    );
}

#[test]
fn a_bad_host_list_entry_names_the_key_the_value_and_the_cause() {
    let (key, value, line, text) = value_error("<DatabaseHost>db1,db2:99999</DatabaseHost>");
    assert_eq!(
        (key.as_str(), value.as_str(), line),
        ("DatabaseHost", "db1,db2:99999", 2)
    );
    assert!(
        text.contains("entry 2") && text.contains("not a TCP port"),
        "{text}"
    );
    let (_, _, _, text) = value_error("<DatabaseHost>::1</DatabaseHost>");
    assert!(text.contains("[addr]:port"), "{text}");
}

#[test]
fn a_socket_with_several_hosts_is_refused() {
    let err = parse(
        "<DatabaseHost>db1,db2</DatabaseHost><DatabaseSocket>/run/mysqld.sock</DatabaseSocket>",
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("DatabaseSocket"), "{err}");
}
