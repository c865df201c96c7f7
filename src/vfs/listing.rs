//! Directory listings of open directory handles: entries are fetched from the catalog in
//! batches and served from the handle, so a kernel `readdir` request (one page, a few dozen
//! entries) costs a database round trip only once per batch.
//!
//! Positions are entry cookies (stable, increasing, never reused), so a listing stays exact
//! under concurrent inserts and deletes: an entry that exists throughout is returned exactly
//! once; one added or removed meanwhile may or may not be (as POSIX allows).

use std::collections::VecDeque;

use crate::meta::{Attr, DirEntry};

/// Entries fetched by the first round trip of a listing; small directories stay cheap.
pub const FIRST_BATCH: usize = 64;
/// Most entries fetched (and held per open directory handle) at once.
pub const MAX_BATCH: usize = 512;

/// What an open directory handle has fetched but not yet handed to the kernel.
#[derive(Debug, Default)]
pub struct Listing {
    /// Everything up to this cookie was handed out or skipped.
    after: u64,
    /// Entries following `after`, in cookie order.
    entries: VecDeque<(DirEntry, Attr)>,
    /// The catalog had nothing after the last entry fetched.
    exhausted: bool,
    /// Size of the next fetch.
    batch: usize,
}

/// Whether the reply buffer is full (the entry offered was not taken).
pub type Full = bool;

impl Listing {
    /// Hands out the entries after cookie `after` to `add` until it reports the reply full or
    /// the directory ends, fetching more with `fetch(after, limit)` when the buffer runs dry.
    pub fn serve<E>(
        &mut self,
        after: u64,
        mut fetch: impl FnMut(u64, usize) -> Result<Vec<(DirEntry, Attr)>, E>,
        mut add: impl FnMut(&DirEntry, &Attr) -> Full,
    ) -> Result<(), E> {
        if after < self.after || self.batch == 0 {
            // A new listing, or a seek backwards (rewinddir): start over from `after`.
            *self = Listing {
                after,
                batch: FIRST_BATCH,
                ..Listing::default()
            };
        }
        while self.entries.front().is_some_and(|(e, _)| e.cookie <= after) {
            self.entries.pop_front();
        }
        self.after = self.after.max(after);
        loop {
            while let Some((entry, attr)) = self.entries.front() {
                if add(entry, attr) {
                    return Ok(());
                }
                self.after = entry.cookie;
                self.entries.pop_front();
            }
            if self.exhausted {
                return Ok(());
            }
            let fetched = fetch(self.after, self.batch)?;
            self.exhausted = fetched.len() < self.batch;
            self.batch = (self.batch * 2).min(MAX_BATCH);
            self.entries.extend(fetched);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Kind;

    fn entry(cookie: u64) -> (DirEntry, Attr) {
        let attr = Attr {
            ino: cookie + 100,
            kind: Kind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 1,
            rdev: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            crtime: 0,
            blocks: None,
            data_state: crate::meta::DataState::Empty,
        };
        let entry = DirEntry {
            cookie,
            name: format!("e{cookie}").into_bytes(),
            ino: attr.ino,
            kind: Kind::File,
        };
        (entry, attr)
    }

    /// A directory with entries at `cookies`, counting fetches.
    struct Catalog {
        cookies: Vec<u64>,
        fetches: usize,
    }

    impl Catalog {
        fn fetch(&mut self, after: u64, limit: usize) -> Result<Vec<(DirEntry, Attr)>, ()> {
            self.fetches += 1;
            Ok(self
                .cookies
                .iter()
                .filter(|&&c| c > after)
                .take(limit)
                .map(|&c| entry(c))
                .collect())
        }
    }

    /// Lists like the kernel: pages of `page` entries, each request at the last offset.
    fn list(listing: &mut Listing, catalog: &mut Catalog, page: usize) -> Vec<u64> {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let mut taken = Vec::new();
            listing
                .serve(
                    after,
                    |a, l| catalog.fetch(a, l),
                    |e, _| {
                        if taken.len() == page {
                            return true;
                        }
                        taken.push(e.cookie);
                        false
                    },
                )
                .unwrap();
            let Some(&last) = taken.last() else {
                return seen;
            };
            after = last;
            seen.extend(taken);
        }
    }

    #[test]
    fn a_listing_fetches_once_per_batch_not_once_per_page() {
        let mut catalog = Catalog {
            cookies: (1..=10_000).collect(),
            fetches: 0,
        };
        let seen = list(&mut Listing::default(), &mut catalog, 25);
        assert_eq!(seen, (1..=10_000).collect::<Vec<_>>());
        // 64 + 128 + 256 + 19 x 512 = 10,176 entries: 22 fetches (+1 to find the end is not
        // needed: the last batch comes back short).
        assert_eq!(catalog.fetches, 22, "one fetch per batch");
    }

    #[test]
    fn a_backward_seek_starts_over_and_entries_added_later_are_found() {
        let mut catalog = Catalog {
            cookies: vec![3, 5, 9],
            fetches: 0,
        };
        let mut listing = Listing::default();
        assert_eq!(list(&mut listing, &mut catalog, 2), [3, 5, 9]);
        catalog.cookies.push(12);
        // rewinddir: offset 0 again.
        assert_eq!(list(&mut listing, &mut catalog, 2), [3, 5, 9, 12]);
    }

    #[test]
    fn a_full_reply_keeps_the_entry_for_the_next_request() {
        let mut catalog = Catalog {
            cookies: vec![1, 2, 3],
            fetches: 0,
        };
        let mut listing = Listing::default();
        let mut first = Vec::new();
        listing
            .serve(
                0,
                |a, l| catalog.fetch(a, l),
                |e, _| {
                    if first.len() == 1 {
                        return true;
                    }
                    first.push(e.cookie);
                    false
                },
            )
            .unwrap();
        assert_eq!(first, [1]);
        let mut rest = Vec::new();
        listing
            .serve(
                1,
                |a, l| catalog.fetch(a, l),
                |e, _| {
                    rest.push(e.cookie);
                    false
                },
            )
            .unwrap();
        assert_eq!(rest, [2, 3]);
        assert_eq!(catalog.fetches, 1);
    }
}
