//! The ValueStor file system server: `vfsserver --config /etc/vs/vs_conf.xml`.
//!
//! Logs to stderr (`RUST_LOG` sets the level, default `info`). See `valuestor::server`.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    valuestor::server::run(std::env::args_os().skip(1))
}
