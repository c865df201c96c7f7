//! The cache folder's binding to its catalog: `<CacheFolder>/identity` records the catalog's
//! identity token (see `Catalog::identity`) with the database it was found in, written
//! atomically. The file system refuses to start over a cache bound to another catalog.
//!
//! Format: one `key=value` per line (`catalog`, `database`, `host`, `bound_ns`); unknown
//! keys are ignored so later versions may add some.

use std::io;
use std::path::Path;

/// File name of the identity record inside the cache folder.
pub const IDENTITY_FILE: &str = "identity";

/// What a cache folder records about the catalog it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheIdentity {
    /// The catalog's identity token.
    pub catalog: String,
    /// The database (schema) name the catalog was found in when the cache was bound.
    pub database: String,
    /// Where that database was (`host:port` or socket path).
    pub host: String,
    /// When the cache was bound, nanoseconds since the epoch.
    pub bound_ns: i64,
}

impl CacheIdentity {
    /// Reads the identity of the cache folder `root`; `None` if it has none yet.
    pub fn read(root: &Path) -> io::Result<Option<CacheIdentity>> {
        let text = match std::fs::read_to_string(root.join(IDENTITY_FILE)) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        CacheIdentity::parse(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a cache identity record (no catalog= line)",
                    root.join(IDENTITY_FILE).display()
                ),
            )
        })
    }

    /// Records this identity in the cache folder `root` (atomically, durably).
    pub fn write(&self, root: &Path) -> io::Result<()> {
        super::write_atomically(root, IDENTITY_FILE, self.render().as_bytes())
    }

    fn render(&self) -> String {
        format!(
            "catalog={}\ndatabase={}\nhost={}\nbound_ns={}\n",
            self.catalog,
            one_line(&self.database),
            one_line(&self.host),
            self.bound_ns
        )
    }

    fn parse(text: &str) -> Option<CacheIdentity> {
        let mut identity = CacheIdentity {
            catalog: String::new(),
            database: String::new(),
            host: String::new(),
            bound_ns: 0,
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "catalog" => identity.catalog = value.to_string(),
                "database" => identity.database = value.to_string(),
                "host" => identity.host = value.to_string(),
                "bound_ns" => identity.bound_ns = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        (!identity.catalog.is_empty()).then_some(identity)
    }
}

/// `text` with line breaks replaced, so a value cannot forge another key.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_absence_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CacheIdentity::read(dir.path()).unwrap(), None);
        let identity = CacheIdentity {
            catalog: "0123456789abcdef0123456789abcdef".into(),
            database: "Catalog\nDb".into(),
            host: "127.0.0.1:3306".into(),
            bound_ns: 42,
        };
        identity.write(dir.path()).unwrap();
        let read = CacheIdentity::read(dir.path()).unwrap().unwrap();
        assert_eq!(read.catalog, identity.catalog);
        assert_eq!(read.database, "Catalog Db", "no line break survives");
        assert_eq!((read.host.as_str(), read.bound_ns), ("127.0.0.1:3306", 42));
        assert!(!dir.path().join(".identity.tmp").exists());
    }

    #[test]
    fn a_record_without_a_catalog_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IDENTITY_FILE), b"database=x\n").unwrap();
        let err = CacheIdentity::read(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}
