//! The archive tier's data layer: volumes in the `ArchiveFolder`, copies written to and read
//! from them, and each volume's manifest from which a lost catalog can be rebuilt.
//!
//! This is the first slice of the tier: a library with no knowledge of the catalog or the
//! file system. Migration, eviction and recall build on it.
//!
//! - [`volume`]: listing volumes, their free space and reserve, the start-up sweep.
//! - [`copy`]: writing a copy (digests, cancel, fsync before record) and reading it back.
//! - [`sums`]: per-block CRCs of a copy, in a sidecar, so recall checks each block.
//! - [`manifest`]: the append-only, self-describing record of a volume's copies.
//! - [`rebuild`]: the latest live copy of every inode, from all manifests.

pub mod copy;
pub mod error;
pub mod manifest;
pub mod rebuild;
pub mod sums;
pub mod volume;

pub use copy::{remove_copy_files, CopyOptions, CopyReader, VolumeWriter};
pub use error::ArchiveError;
pub use manifest::{CopyRecord, FileMeta, Mark, MarkKind, Record};
pub use rebuild::{rebuild, LiveCopy, Rebuild};
pub use sums::{BlockSums, SUM_BLOCK};
pub use volume::{ArchiveFolder, SweepReport, VolumeInfo};
