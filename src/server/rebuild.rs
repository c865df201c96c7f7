//! `vfsserver --rebuild-catalog`: rebuilds a lost catalog from the archive volumes into the
//! configured database (migrated, empty, under the owner lease taken by the caller), binds
//! an empty CacheFolder to it, and prints what it did. The work is
//! [`crate::tier::rebuild`]'s.

use crate::archive::ArchiveFolder;
use crate::config::Config;
use crate::meta::MetaEngine;
use crate::tier::rebuild::{bind_cache_folder, rebuild_catalog, CacheBinding};

/// Rebuilds `catalog` from the volumes of the config's ArchiveFolder; prints the summary.
pub fn run(config: &Config, catalog: &dyn MetaEngine) -> Result<(), String> {
    let Some(folder) = &config.archive_folder else {
        return Err(
            "--rebuild-catalog: ArchiveFolder is not set: there are no volumes to \
                    rebuild from"
                .into(),
        );
    };
    let location = catalog.location();
    println!(
        "rebuilding catalog {} at {} from the volumes in {}",
        location.database,
        location.server,
        folder.display()
    );
    let archive = ArchiveFolder::new(folder.clone(), config.archive.tape_reserved_min_free_size);
    let report =
        rebuild_catalog(catalog, &archive).map_err(|e| format!("--rebuild-catalog: {e}"))?;
    println!("{report}");
    match bind_cache_folder(catalog, &config.cache_folder)? {
        CacheBinding::Bound => println!(
            "cache folder {} (empty) now belongs to the rebuilt catalog",
            config.cache_folder.display()
        ),
        CacheBinding::Already => {}
        CacheBinding::LeftAlone(what) => println!("note: {what}"),
    }
    Ok(())
}
