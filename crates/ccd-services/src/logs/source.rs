//! Reading what is new in one instance's stream (`stdout.log` or
//! `stderr.log`) since the shipper last stopped, across the supervisor's
//! rotations (the file renamed to `<file>.1`, a new one started at 0).

use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{MAX_LINE, Stream, files};
use crate::ServiceError;

/// The most read from one file in one call, so that a large backlog is
/// shipped over several calls rather than held in memory at once.
const READ_CAP: u64 = 8 * 1024 * 1024;

/// Where the shipper stands in one stream: which file (by inode, which a
/// rename keeps) and how far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Mark {
    pub inode: u64,
    /// When the file was created (ns since the epoch), where the file system
    /// says: two rotations free the first file's inode, and the third file
    /// often gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<u64>,
    pub offset: u64,
    /// Inside a line already shipped cut: its rest, to its newline, is dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipping: bool,
}

impl Mark {
    /// The start of the file `meta` describes.
    fn start(meta: &fs::Metadata) -> Mark {
        Mark {
            inode: meta.ino(),
            born: born(meta),
            ..Mark::default()
        }
    }

    /// Whether `meta` describes the file this mark is in.
    fn is(&self, meta: &fs::Metadata) -> bool {
        self.inode == meta.ino() && (self.born.is_none() || self.born == born(meta))
    }
}

fn born(meta: &fs::Metadata) -> Option<u64> {
    let since = meta
        .created()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    u64::try_from(since.as_nanos()).ok()
}

/// What is new in a stream.
#[derive(Debug)]
pub(super) struct New {
    /// The complete lines, each at most `MAX_LINE + 1` bytes, without its newline.
    pub lines: Vec<Vec<u8>>,
    /// Where to go on from once they are shipped.
    pub mark: Mark,
}

/// What is new in `dir`'s `stream` after `mark`; `None` when the stream has
/// no file yet.
pub(super) fn read_new(
    dir: &Path,
    stream: Stream,
    mark: Option<&Mark>,
) -> Result<Option<New>, ServiceError> {
    let live = dir.join(stream.file());
    let meta = match fs::metadata(&live) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(files::io_error(&live)(e)),
    };
    let mut lines = Vec::new();
    let mut mark = mark.cloned().unwrap_or_else(|| Mark::start(&meta));
    if !mark.is(&meta) {
        // Rotated: the file read so far is `<file>.1` now, and nothing more
        // is written to it. Its rest goes first.
        let rotated = dir.join(format!("{}.1", stream.file()));
        match fs::metadata(&rotated) {
            Ok(old) => {
                if !mark.is(&old) {
                    tracing::warn!(
                        file = %rotated.display(),
                        "rotated more than once since the last ship: the output before this file is lost"
                    );
                    mark = Mark::start(&old);
                }
                if !read_lines(&rotated, &mut mark, old.len(), true, &mut lines)? {
                    return Ok(Some(New { lines, mark })); // more of it next call
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => tracing::warn!(
                file = %live.display(),
                "the file read so far is gone: what it held past the last ship is lost"
            ),
            Err(e) => return Err(files::io_error(&rotated)(e)),
        }
        mark = Mark::start(&meta);
    } else if meta.len() < mark.offset {
        tracing::warn!(file = %live.display(), "cut shorter in place: reading it from its start");
        mark = Mark::start(&meta);
    }
    read_lines(&live, &mut mark, meta.len(), false, &mut lines)?;
    Ok(Some(New { lines, mark }))
}

/// Adds the complete lines of `path` between `mark` and `len` (at most
/// `READ_CAP` bytes) to `lines` and moves `mark` past them. A partial last
/// line waits, unless the file is `finished` (rotated: it will not grow), or
/// already too long to keep whole. Whether the mark reached `len`.
fn read_lines(
    path: &Path,
    mark: &mut Mark,
    len: u64,
    finished: bool,
    lines: &mut Vec<Vec<u8>>,
) -> Result<bool, ServiceError> {
    let end = len.min(mark.offset.saturating_add(READ_CAP));
    if end <= mark.offset {
        return Ok(true);
    }
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut file| {
            file.seek(SeekFrom::Start(mark.offset))?;
            file.take(end - mark.offset).read_to_end(&mut buf)
        })
        .map_err(files::io_error(path))?;
    let mut taken = 0;
    let mut push = |line: &[u8], skipping: &mut bool| {
        if !std::mem::take(skipping) {
            lines.push(line[..line.len().min(MAX_LINE + 1)].to_vec());
        }
    };
    while let Some(newline) = buf[taken..].iter().position(|&b| b == b'\n') {
        push(&buf[taken..taken + newline], &mut mark.skipping);
        taken += newline + 1;
    }
    let rest = &buf[taken..];
    let at_end = mark.offset + buf.len() as u64 >= len;
    if !rest.is_empty() {
        if finished && at_end {
            push(rest, &mut mark.skipping);
            taken = buf.len();
        } else if rest.len() > MAX_LINE || mark.skipping {
            // Cut now rather than hold an endless line (or drop more of one
            // already cut): the rest, to its newline, is dropped.
            push(rest, &mut mark.skipping);
            mark.skipping = true;
            taken = buf.len();
        }
    }
    mark.offset += taken as u64;
    Ok(at_end && taken == buf.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn read(dir: &Path, mark: Option<&Mark>) -> (Vec<String>, Mark) {
        let New { lines, mark } = read_new(dir, Stream::Stdout, mark).unwrap().unwrap();
        let lines = lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        (lines, mark)
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stdout.log");
        fs::write(&file, "one\ntw").unwrap();
        let (lines, mark) = read(dir.path(), None);
        assert_eq!((lines, mark.offset), (vec!["one".to_owned()], 4));
        fs::write(&file, "one\ntwo\n").unwrap();
        let (lines, mark) = read(dir.path(), Some(&mark));
        assert_eq!((lines, mark.offset), (vec!["two".to_owned()], 8));
    }

    #[test]
    fn an_endless_line_is_cut_and_its_rest_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stdout.log");
        let long = "x".repeat(MAX_LINE + 5);
        fs::write(&file, &long).unwrap();
        let (lines, mark) = read(dir.path(), None);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE + 1, "cut when shipped");
        assert!(mark.skipping);
        fs::write(&file, format!("{long}yyy\nnext\n")).unwrap();
        let (lines, mark) = read(dir.path(), Some(&mark));
        assert_eq!(lines, ["next"]);
        assert!(!mark.skipping);
    }

    #[test]
    fn the_cap_spreads_a_backlog_over_calls() {
        let dir = tempfile::tempdir().unwrap();
        let line = "z".repeat(1023);
        let count = (READ_CAP / 1024 + 3) as usize;
        fs::write(
            dir.path().join("stdout.log"),
            format!("{line}\n").repeat(count),
        )
        .unwrap();
        let (first, mark) = read(dir.path(), None);
        let (second, _) = read(dir.path(), Some(&mark));
        assert_eq!(first.len(), (READ_CAP / 1024) as usize);
        assert_eq!(first.len() + second.len(), count);
    }
}
