//! Shared test fixtures: a private MariaDB server per test.
#![allow(dead_code)]

pub mod mariadb;

pub use mariadb::MariaDb;
