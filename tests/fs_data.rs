//! Data and metadata at scale and under concurrency: large files, big directories,
//! concurrent writers, rename races, open-unlinked files, persistence, a full cache.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::hash::Hasher;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::sync::Arc;

use support::mount::MountedFs;

/// FNV-1a over a byte stream, chunk by chunk.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
}

fn pattern_chunk(index: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (index as usize * 31 + i * 7) as u8)
        .collect()
}

#[test]
fn file_of_256_mib_reads_back_with_the_same_checksum() {
    let fs = MountedFs::start();
    let path = fs.path("big.bin");
    const CHUNK: usize = 1 << 20;
    let mut written = Fnv(0xcbf29ce484222325);
    let mut file = fs::File::create(&path).unwrap();
    for i in 0..256u64 {
        let chunk = pattern_chunk(i, CHUNK);
        written.write(&chunk);
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    assert_eq!(fs::metadata(&path).unwrap().len(), 256 << 20);
    let mut read = Fnv(0xcbf29ce484222325);
    let mut file = fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        read.write(&buf[..n]);
        total += n;
    }
    assert_eq!(total, 256 << 20);
    assert_eq!(read.finish(), written.finish());
}

#[test]
fn directory_of_10000_entries_lists_each_exactly_once() {
    let fs = MountedFs::start();
    fs::create_dir(fs.path("many")).unwrap();
    for i in 0..10_000 {
        fs::File::create(fs.path(format!("many/entry-{i:05}"))).unwrap();
    }
    let mut seen = HashSet::new();
    for entry in fs::read_dir(fs.path("many")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(seen.insert(name.clone()), "{name} listed twice");
    }
    assert_eq!(seen.len(), 10_000);
    assert!((0..10_000).all(|i| seen.contains(&format!("entry-{i:05}"))));
}

#[test]
fn listing_offsets_stay_valid_while_entries_come_and_go() {
    let fs = MountedFs::start();
    fs::create_dir(fs.path("d")).unwrap();
    for i in 0..3000 {
        fs::File::create(fs.path(format!("d/keep-{i:04}"))).unwrap();
    }
    for i in 0..1000 {
        fs::File::create(fs.path(format!("d/gone-{i:04}"))).unwrap();
    }
    let mut seen = Vec::new();
    let mut mutated = false;
    for entry in fs::read_dir(fs.path("d")).unwrap() {
        seen.push(entry.unwrap().file_name().into_string().unwrap());
        if seen.len() == 100 && !mutated {
            // Mid-listing: add new entries and delete some not yet seen.
            for i in 0..500 {
                fs::File::create(fs.path(format!("d/new-{i:04}"))).unwrap();
            }
            for i in 0..1000 {
                fs::remove_file(fs.path(format!("d/gone-{i:04}"))).unwrap();
            }
            mutated = true;
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no entry listed twice");
    for i in 0..3000 {
        assert!(
            unique.contains(&format!("keep-{i:04}")),
            "keep-{i:04} missed"
        );
    }
}

#[test]
fn concurrent_writers_on_different_files_and_one_file() {
    let fs = Arc::new(MountedFs::start());
    let shared = fs::File::create(fs.path("shared")).unwrap();
    shared.set_len(8 * 64 * 1024).unwrap();
    drop(shared);
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let fs = Arc::clone(&fs);
            std::thread::spawn(move || {
                let own = fs.path(format!("own-{t}"));
                let data = vec![t; 64 * 1024];
                for _ in 0..8 {
                    fs::write(&own, &data).unwrap();
                }
                let shared = fs::OpenOptions::new()
                    .write(true)
                    .open(fs.path("shared"))
                    .unwrap();
                for block in 0..16 {
                    shared
                        .write_all_at(&data[..4096], u64::from(t) * 65536 + block * 4096)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for t in 0..8u8 {
        assert_eq!(
            fs::read(fs.path(format!("own-{t}"))).unwrap(),
            vec![t; 64 * 1024]
        );
    }
    let shared = fs::read(fs.path("shared")).unwrap();
    assert_eq!(shared.len(), 8 * 64 * 1024);
    for t in 0..8usize {
        assert!(shared[t * 65536..t * 65536 + 65536]
            .iter()
            .all(|&b| b == t as u8));
    }
}

#[test]
fn rename_races_leave_every_file_exactly_once() {
    let fs = Arc::new(MountedFs::start());
    fs::create_dir(fs.path("a")).unwrap();
    fs::create_dir(fs.path("b")).unwrap();
    for i in 0..40 {
        fs::write(fs.path(format!("a/f{i}")), format!("{i}")).unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let fs = Arc::clone(&fs);
            std::thread::spawn(move || {
                for round in 0..60 {
                    let i = (t * 7 + round * 3) % 40;
                    let (from, to) = if round % 2 == 0 {
                        ("a", "b")
                    } else {
                        ("b", "a")
                    };
                    // Losing a race is fine (ENOENT); anything else is a bug.
                    if let Err(e) = fs::rename(
                        fs.path(format!("{from}/f{i}")),
                        fs.path(format!("{to}/f{i}")),
                    ) {
                        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for i in 0..40 {
        let in_a = fs.path(format!("a/f{i}")).exists();
        let in_b = fs.path(format!("b/f{i}")).exists();
        assert!(in_a ^ in_b, "f{i} must be in exactly one directory");
        let dir = if in_a { "a" } else { "b" };
        assert_eq!(
            fs::read_to_string(fs.path(format!("{dir}/f{i}"))).unwrap(),
            format!("{i}")
        );
    }
}

#[test]
fn unlinked_open_file_keeps_its_data_until_closed() {
    let fs = MountedFs::start();
    let path = fs.path("tmpfile");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.write_all(b"still here").unwrap();
    fs::remove_file(&path).unwrap();
    assert!(!path.exists());
    let mut buf = [0u8; 10];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"still here");
    file.write_all_at(b"STILL", 0).unwrap();
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"STILL here");
    let cache_files = || {
        fs::read_dir(fs.cache_dir().join("data"))
            .unwrap()
            .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum::<usize>()
    };
    assert_eq!(cache_files(), 1);
    drop(file);
    support::await_condition(std::time::Duration::from_secs(5), "space reclaimed", || {
        cache_files() == 0
    });
}

#[test]
fn everything_persists_across_unmount_and_remount() {
    let mut fs = MountedFs::start();
    fs::create_dir(fs.path("dir")).unwrap();
    fs::write(fs.path("dir/file"), b"contents").unwrap();
    fs::set_permissions(fs.path("dir/file"), fs::Permissions::from_mode(0o604)).unwrap();
    std::os::unix::fs::chown(fs.path("dir/file"), Some(4321), Some(8765)).unwrap();
    fs::hard_link(fs.path("dir/file"), fs.path("hard")).unwrap();
    symlink("dir/file", fs.path("soft")).unwrap();
    let p = std::ffi::CString::new(fs.path("dir/file").as_os_str().as_bytes()).unwrap();
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"user.tag".as_ptr(),
            b"v1".as_ptr().cast(),
            2,
            0,
        )
    };
    assert_eq!(rc, 0);
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(fs.path("dir/file"))
        .unwrap();
    file.write_all(b" and more").unwrap();
    drop(file);
    let before = fs::metadata(fs.path("dir/file")).unwrap();

    fs.remount();

    let after = fs::metadata(fs.path("dir/file")).unwrap();
    assert_eq!(fs::read(fs.path("dir/file")).unwrap(), b"contents and more");
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.mode(), before.mode());
    assert_eq!((after.uid(), after.gid()), (4321, 8765));
    assert_eq!(after.nlink(), 2);
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert_eq!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );
    assert_eq!(fs::read(fs.path("hard")).unwrap(), b"contents and more");
    assert_eq!(
        fs::read_link(fs.path("soft")).unwrap(),
        std::path::Path::new("dir/file")
    );
    let mut value = [0u8; 8];
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"user.tag".as_ptr(),
            value.as_mut_ptr().cast(),
            8,
        )
    };
    assert_eq!(&value[..n as usize], b"v1");
}

#[test]
fn full_cache_gives_enospc_and_keeps_existing_data() {
    if unsafe { libc::geteuid() } != 0 {
        return; // mounting the small tmpfs needs root
    }
    let fs = MountedFs::start_with_small_cache(4 << 20);
    fs::write(fs.path("first"), vec![1u8; 1 << 20]).unwrap();
    let mut file = fs::File::create(fs.path("second")).unwrap();
    let chunk = vec![2u8; 1 << 20];
    let mut failure = None;
    for _ in 0..8 {
        if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("writing 8 MiB into a 4 MiB cache fails");
    assert_eq!(failure.raw_os_error(), Some(libc::ENOSPC), "{failure}");
    drop(file);
    assert_eq!(fs::read(fs.path("first")).unwrap(), vec![1u8; 1 << 20]);
    fs::remove_file(fs.path("second")).unwrap();
    fs::write(fs.path("third"), b"fits again").unwrap();
    assert_eq!(fs::read(fs.path("third")).unwrap(), b"fits again");
}
