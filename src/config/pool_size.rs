//! Capping the pool size a configuration asks for: a caller that knows it needs fewer
//! connections (a C++ program porting the legacy `ConnectionPool(int maxSize)`) lowers
//! DatabaseMaxPoolSize, never raises it.

use super::{Config, ConfigError};

impl Config {
    /// A copy whose pool opens at most `max_size` connections: DatabaseMaxPoolSize becomes
    /// the smaller of the two and DatabaseInitialPoolSize is lowered to fit under it. `self`
    /// is not changed.
    ///
    /// The copy is validated: a `max_size` of 0 is refused with the message of
    /// [`Config::validate`] (DatabaseMaxPoolSize must be at least 1).
    pub fn with_max_pool_size(&self, max_size: usize) -> Result<Config, ConfigError> {
        let mut copy = self.clone();
        let db = &mut copy.database;
        db.max_pool_size = db.max_pool_size.min(max_size);
        db.initial_pool_size = db.initial_pool_size.min(db.max_pool_size);
        copy.validate()?;
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (maximum, initial) after capping a config of `max` and `initial` at `cap`.
    fn sizes(max: usize, initial: usize, cap: usize) -> (usize, usize) {
        let mut config = Config::default();
        config.database.max_pool_size = max;
        config.database.initial_pool_size = initial;
        let capped = config.with_max_pool_size(cap).unwrap();
        (
            capped.database.max_pool_size,
            capped.database.initial_pool_size,
        )
    }

    #[test]
    fn the_cap_lowers_but_never_raises_the_maximum() {
        assert_eq!(sizes(4, 1, 40), (4, 1));
        assert_eq!(sizes(4, 1, 2), (2, 1));
        assert_eq!(sizes(4, 1, 4), (4, 1));
    }

    #[test]
    fn the_initial_size_follows_a_lower_maximum() {
        assert_eq!(sizes(8, 6, 3), (3, 3));
        assert_eq!(sizes(8, 0, 1), (1, 0));
    }

    #[test]
    fn the_original_is_not_changed() {
        let mut config = Config::default();
        config.database.max_pool_size = 8;
        config.database.initial_pool_size = 6;
        let _ = config.with_max_pool_size(2).unwrap();
        assert_eq!(
            (
                config.database.max_pool_size,
                config.database.initial_pool_size
            ),
            (8, 6)
        );
    }

    #[test]
    fn a_cap_of_zero_is_refused_naming_the_key() {
        let err = Config::default()
            .with_max_pool_size(0)
            .expect_err("a pool of no connections");
        assert!(err.to_string().contains("DatabaseMaxPoolSize"), "{err}");
    }
}
