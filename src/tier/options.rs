//! The tier's settings, from the configuration keys that set them.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::archive::CopyOptions;
use crate::Config;

/// Settings of the archive tier.
#[derive(Debug, Clone)]
pub struct TierOptions {
    /// One directory per volume (ArchiveFolder).
    pub archive_folder: PathBuf,
    /// A volume takes new copies while it has more than this free
    /// (TapeReservedMinFreeSize). Default 8G.
    pub volume_reserve: u64,
    /// Most volumes read or written at once (ArchiveDrives). Default 1.
    pub drives: usize,
    /// A file is copied this long after its last write (WriteToTapeWaitFile). Default 60 s.
    pub wait_file: Duration,
    /// Copies start once this many bytes wait (WriteToTapeWaitSize). Default 1G.
    pub batch_size: u64,
    /// ... or once the oldest waiting file waited this long (WriteToTapeWaitTime).
    /// Default 180 s.
    pub batch_time: Duration,
    /// Paths that are archived, fully matched (WriteToTapeFilePattern). Default `.*`.
    pub file_pattern: Option<Regex>,
    /// Parent folders whose files are archived, fully matched (WriteToTapeFolderPattern).
    /// Default none.
    pub folder_pattern: Option<Regex>,
    /// Digests computed with each copy (DigestMD5Enable, DigestSHA1Enable).
    pub copy: CopyOptions,
    /// Eviction starts below this much free cache space (CacheFreeMinSize). Default 15G.
    pub free_min_size: u64,
    /// ... or below this percentage of it free (CacheFreeMinPercent). Default 10.
    pub free_min_percent: u8,
    /// Eviction stops above this much free space (CacheFreeMaxSize). Default 20G.
    pub free_max_size: u64,
    /// ... and above this percentage free (CacheFreeMaxPercent). Default 20.
    pub free_max_percent: u8,
    /// How often the cache space is checked (CachePurgeWaitTime). Default 5 s.
    pub purge_wait_time: Duration,
    /// Writes slow down below this much free cache space (WriteCacheFreeSize). Default 15G.
    pub write_free_size: u64,
    /// Space on the cache file system nothing takes (CacheFreeLeastSize): a recall starts
    /// only when the file fits above it. Default 2G.
    pub free_least_size: u64,
    /// A recall reads and publishes this many bytes at a time (CacheFileSizeBlock).
    /// Default 128M.
    pub recall_block: u64,
    /// After a recall, up to this many bytes of the files that follow it on the volume are
    /// recalled too, when the cache has room (CacheFileSizeRead). Default 4G.
    pub pre_read: u64,
    /// Superseded copies are deleted from the volumes once there are this many
    /// (DeleteTapeFileTriggerNum). Default 1000.
    pub delete_trigger: u64,
    /// ... and once superseded this long (DeleteTapeFileTimeDiff). Default 1 day.
    pub delete_after: Duration,
}

/// Longest pause of the migration scan between looks at the catalog.
const MAX_SCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest pause of the migration scan.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(200);

impl TierOptions {
    /// The options `config` sets; `None` without an `ArchiveFolder`.
    pub fn from_config(config: &Config) -> Option<TierOptions> {
        let folder = config.archive_folder.clone()?;
        let (cache, archive) = (&config.cache, &config.archive);
        Some(TierOptions {
            archive_folder: folder,
            volume_reserve: archive.tape_reserved_min_free_size,
            drives: archive.drives.max(1),
            wait_file: archive.write_wait_file,
            batch_size: archive.write_wait_size,
            batch_time: archive.write_wait_time,
            file_pattern: archive.write_file_pattern.as_ref().map(anchored),
            folder_pattern: archive.write_folder_pattern.as_ref().map(anchored),
            copy: CopyOptions {
                md5: config.digest.md5,
                sha1: config.digest.sha1,
                ..CopyOptions::default()
            },
            free_min_size: cache.free_min_size,
            free_min_percent: cache.free_min_percent,
            free_max_size: cache.free_max_size,
            free_max_percent: cache.free_max_percent,
            purge_wait_time: cache.purge_wait_time,
            write_free_size: cache.write_free_size,
            free_least_size: cache.free_least_size,
            recall_block: cache
                .file_size_block
                .max(crate::archive::copy::MIN_BLOCK_SIZE as u64),
            pre_read: cache.file_size_read,
            delete_trigger: archive.delete_tape_file_trigger_num,
            delete_after: archive.delete_tape_file_time_diff,
        })
    }

    /// Whether a file at `path` (bytes, from the mount's root, starting with `/`) is archived:
    /// its path fully matches the file pattern, or its parent folder the folder pattern.
    /// Files that match neither are never archived (and so never evicted).
    pub fn archives(&self, path: &[u8]) -> bool {
        let text = String::from_utf8_lossy(path);
        if self
            .file_pattern
            .as_ref()
            .is_some_and(|re| re.is_match(&text))
        {
            return true;
        }
        let parent = match text.rfind('/') {
            Some(0) => "/",
            Some(at) => &text[..at],
            None => "",
        };
        self.folder_pattern
            .as_ref()
            .is_some_and(|re| re.is_match(parent))
    }

    /// How long the migration scan pauses between looks at the catalog.
    pub fn scan_interval(&self) -> Duration {
        (self.wait_file / 4).clamp(MIN_SCAN_INTERVAL, MAX_SCAN_INTERVAL)
    }

    /// Eviction's watermarks for a cache file system of `total` bytes: (start below, stop
    /// above), each the larger of the size and the percentage.
    pub fn watermarks(&self, total: u64) -> (u64, u64) {
        let percent = |p: u8| (u128::from(total) * u128::from(p) / 100) as u64;
        let low = self.free_min_size.max(percent(self.free_min_percent));
        let high = self
            .free_max_size
            .max(percent(self.free_max_percent))
            .max(low);
        (low, high)
    }
}

/// `re` made to match whole strings only.
fn anchored(re: &Regex) -> Regex {
    Regex::new(&format!("^(?:{})$", re.as_str())).unwrap_or_else(|_| re.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(file: Option<&str>, folder: Option<&str>) -> TierOptions {
        let mut config = Config {
            archive_folder: Some("/archive".into()),
            ..Config::default()
        };
        config.archive.write_file_pattern = file.map(|p| Regex::new(p).unwrap());
        config.archive.write_folder_pattern = folder.map(|p| Regex::new(p).unwrap());
        TierOptions::from_config(&config).unwrap()
    }

    #[test]
    fn patterns_match_whole_paths_and_parent_folders() {
        let o = options(Some(r".*\.dat"), Some("/keep(/.*)?"));
        assert!(o.archives(b"/a/b.dat"));
        assert!(!o.archives(b"/a/b.dat.tmp"), "a partial match is no match");
        assert!(o.archives(b"/keep/x.tmp"), "the folder pattern");
        assert!(o.archives(b"/keep/sub/x.tmp"));
        assert!(!o.archives(b"/keeper/x.tmp"));
        let none = options(None, None);
        assert!(!none.archives(b"/a"), "no pattern: nothing is archived");
        assert!(options(Some(".*"), None).archives(b"/any/thing"));
    }

    #[test]
    fn watermarks_take_the_larger_of_size_and_percent() {
        let mut o = options(None, None);
        (o.free_min_size, o.free_min_percent) = (100, 10);
        (o.free_max_size, o.free_max_percent) = (300, 20);
        assert_eq!(o.watermarks(10_000), (1_000, 2_000));
        assert_eq!(o.watermarks(1_000), (100, 300));
    }

    #[test]
    fn no_archive_folder_no_tier() {
        assert!(TierOptions::from_config(&Config::default()).is_none());
    }
}
