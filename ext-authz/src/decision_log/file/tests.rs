use shared::testing::TestClock;

use super::*;

/// A clock the test moves by hand, and the service's view of it.
fn hand_clock() -> (TestClock, Clock) {
    let now = TestClock::at(1_000);
    let clock = now.as_clock();
    (now, clock)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn write(file: &mut LogFile, line: &str) {
    file.append(line).unwrap();
    file.flush().unwrap();
}

#[test]
fn a_renamed_file_is_let_go_of_at_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let (path, renamed) = (dir.path().join("d.log"), dir.path().join("d.log.1"));
    let (now, clock) = hand_clock();
    let mut file = LogFile::open(path.clone(), None, clock).unwrap();
    write(&mut file, "before");
    std::fs::rename(&path, &renamed).unwrap();
    // Within the same second the path is not looked at: the line follows the open file.
    file.check(false).unwrap();
    write(&mut file, "late");
    now.advance(1);
    file.check(false).unwrap();
    write(&mut file, "after");
    assert_eq!(lines(&renamed), ["before", "late"]);
    assert_eq!(lines(&path), ["after"]);
}

#[test]
fn a_deleted_file_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.log");
    let (now, clock) = hand_clock();
    let mut file = LogFile::open(path.clone(), None, clock).unwrap();
    write(&mut file, "before");
    std::fs::remove_file(&path).unwrap();
    now.advance(1);
    file.check(false).unwrap();
    write(&mut file, "after");
    assert_eq!(lines(&path), ["after"]);
}

/// SIGHUP: reopened at once, whatever the clock says.
#[test]
fn a_requested_reopen_does_not_wait_for_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (path, renamed) = (dir.path().join("d.log"), dir.path().join("d.log-20261207"));
    let (_now, clock) = hand_clock();
    let mut file = LogFile::open(path.clone(), None, clock).unwrap();
    write(&mut file, "before");
    std::fs::rename(&path, &renamed).unwrap();
    file.check(true).unwrap();
    write(&mut file, "after");
    assert_eq!((lines(&renamed), lines(&path)), (vec!["before".to_string()], vec!["after".to_string()]));
}

#[test]
fn an_unchanged_file_is_kept_and_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.log");
    std::fs::write(&path, "old\n").unwrap();
    let (now, clock) = hand_clock();
    let mut file = LogFile::open(path.clone(), None, clock).unwrap();
    write(&mut file, "one");
    now.advance(1);
    file.check(false).unwrap();
    write(&mut file, "two");
    assert_eq!(lines(&path), ["old", "one", "two"]);
}

/// Every file stays within `max_size`, at most `max_files` renamed ones are kept, and together
/// they hold the newest lines in order.
#[test]
fn size_rotation_keeps_at_most_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.log");
    let (_now, clock) = hand_clock();
    let rotation = SizeRotation { max_size: 100, max_files: 3 };
    let mut file = LogFile::open(path.clone(), Some(rotation), clock).unwrap();
    let written: Vec<String> = (0..200).map(|i| format!("line-{i:04}")).collect(); // 10 bytes with the newline
    for line in &written {
        file.append(line).unwrap();
    }
    file.flush().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["d.log", "d.log.1", "d.log.2", "d.log.3"]);
    let mut kept = Vec::new();
    for n in [3, 2, 1] {
        let name = numbered(&path, n);
        assert_eq!(std::fs::metadata(&name).unwrap().len(), 100, "{} is full: 10 lines of 10 bytes", name.display());
        kept.extend(lines(&name));
    }
    kept.extend(lines(&path));
    assert_eq!(kept, written[written.len() - kept.len()..], "the newest lines, in order");
}

#[test]
fn no_rotated_file_is_kept_with_max_files_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.log");
    let (_now, clock) = hand_clock();
    let mut file = LogFile::open(path.clone(), Some(SizeRotation { max_size: 30, max_files: 0 }), clock).unwrap();
    for i in 0..10 {
        file.append(&format!("line-{i}")).unwrap();
    }
    file.flush().unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(lines(&path), ["line-8", "line-9"]);
}

/// logrotate's `copytruncate` empties the file in place: the next check sees the new size, so
/// size rotation does not fire early, and appends go to the start of the emptied file.
#[test]
fn a_truncated_file_is_measured_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.log");
    let (now, clock) = hand_clock();
    let mut file = LogFile::open(path.clone(), Some(SizeRotation { max_size: 100, max_files: 2 }), clock).unwrap();
    for i in 0..8 {
        write(&mut file, &format!("line-{i:04}"));
    }
    std::fs::copy(&path, dir.path().join("copy")).unwrap();
    std::fs::File::create(&path).unwrap(); // truncates
    now.advance(1);
    file.check(false).unwrap();
    for i in 8..12 {
        write(&mut file, &format!("line-{i:04}"));
    }
    assert!(!numbered(&path, 1).exists(), "not rotated: 40 bytes written since the truncation");
    assert_eq!(lines(&path), ["line-0008", "line-0009", "line-0010", "line-0011"]);
}
