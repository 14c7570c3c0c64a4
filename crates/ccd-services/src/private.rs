//! Files only their owner reads (also the API's token hashes and `ccd up`'s
//! admin token): what the services keep (secrets, the
//! servers' settings, backups, shipped logs) can carry an app's secrets.

use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

/// `dir` and its missing parents, 0700.
pub fn dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Replaces `path` with `bytes` at once, 0600: a temporary file beside it,
/// synced, then renamed over it, so a reader (or ccd after a kill) finds
/// the old content or the new.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = Path::new(&temp);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    f.write_all(bytes.as_ref())?;
    f.sync_all()?;
    std::fs::rename(temp, path)
}
