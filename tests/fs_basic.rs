//! The mounted file system through ordinary system calls: files, directories, links.

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use support::mount::MountedFs;

#[test]
fn files_are_created_written_and_read_back() {
    let fs = MountedFs::start();
    let path = fs.path("hello.txt");
    fs::write(&path, b"hello, world").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"hello, world");
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 12);
    assert!(meta.is_file());
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.seek(SeekFrom::Start(7)).unwrap();
    file.write_all(b"there").unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello, there");
}

#[test]
fn directories_list_and_remove() {
    let fs = MountedFs::start();
    fs::create_dir(fs.path("d")).unwrap();
    fs::write(fs.path("d/a"), b"a").unwrap();
    fs::create_dir(fs.path("d/sub")).unwrap();
    let mut names: Vec<_> = fs::read_dir(fs.path("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "sub"]);
    assert_eq!(fs::metadata(fs.path("d")).unwrap().nlink(), 3);
    let err = fs::remove_dir(fs.path("d")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    fs::remove_file(fs.path("d/a")).unwrap();
    fs::remove_dir(fs.path("d/sub")).unwrap();
    fs::remove_dir(fs.path("d")).unwrap();
    assert!(!fs.path("d").exists());
}

#[test]
fn data_and_metadata_survive_a_remount() {
    let mut fs = MountedFs::start();
    fs::create_dir(fs.path("keep")).unwrap();
    fs::write(fs.path("keep/data.bin"), vec![7u8; 100_000]).unwrap();
    fs::set_permissions(fs.path("keep/data.bin"), fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::metadata(fs.path("keep/data.bin")).unwrap();
    fs.remount();
    let after = fs::metadata(fs.path("keep/data.bin")).unwrap();
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.len(), 100_000);
    assert_eq!(after.mode() & 0o7777, 0o640);
    assert_eq!(after.mtime_nsec(), before.mtime_nsec());
    assert_eq!(
        fs::read(fs.path("keep/data.bin")).unwrap(),
        vec![7u8; 100_000]
    );
}
