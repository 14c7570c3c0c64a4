//! Reading a commit with the `git` command: its id, author and time, and the spec files of one
//! folder, without a working tree (`ls-tree`, `cat-file`), so a local repository's checkout is
//! never touched. URLs are fetched into a bare cache clone, with the user's own credentials
//! (credential helpers, ssh agent) and never a prompt.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ccd_store::MAX_SPEC_BYTES;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::SyncError;
use crate::repo::{self, Repo};

/// Local reads take milliseconds; this only bounds a stuck process.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);
/// A fetch over a slow network.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Where a URL's fetched commit is kept in its cache clone (so `git gc` keeps it).
const FETCHED: &str = "refs/ccd/sync";

/// A commit as the marker names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    /// Commit time, RFC 3339.
    pub time: String,
}

/// One spec file of the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecBlob {
    /// The app it defines: its name without `.yaml`/`.yml`.
    pub app: String,
    /// Its path in the repository.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// What a commit holds under the spec folder.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub commit: Commit,
    /// The spec files to upload, sorted by app.
    pub files: Vec<SpecBlob>,
    /// Apps the commit has a file for that cannot be uploaded (too large, or a `.yaml` and a
    /// `.yml` for one app): their spec in the store is left as it is, never deleted.
    pub held: BTreeSet<String>,
    /// What the user should know about the files passed over, one line each.
    pub warnings: Vec<String>,
}

/// A repository opened at a commit: where git reads it, and a lock on a cache clone.
#[derive(Debug)]
pub struct Opened {
    dir: PathBuf,
    commit: String,
    /// Held while the cache clone is fetched and read: two syncs share it safely.
    _lock: Option<std::fs::File>,
}

/// Opens `repo` at `reference` (default: `HEAD`, the checkout of a local repository or the
/// default branch of a URL); a URL is fetched into its cache clone under `cache_root`.
pub async fn open(
    repo: &Repo,
    reference: Option<&str>,
    cache_root: Option<&Path>,
) -> Result<Opened, SyncError> {
    let reference = reference.unwrap_or("HEAD");
    check_ref(reference)?;
    match repo {
        Repo::Local(path) => {
            if !path.is_dir() {
                return Err(SyncError::BadRepo {
                    repo: path.display().to_string(),
                    reason: "there is no such folder; give a path to a git repository or its URL"
                        .to_owned(),
                });
            }
            let doing = format!("opening {}", path.display());
            run(
                path,
                &["rev-parse", "--git-dir"],
                None,
                &doing,
                LOCAL_TIMEOUT,
            )
            .await?;
            let commit = resolve(path, reference, repo).await?;
            Ok(Opened {
                dir: path.clone(),
                commit,
                _lock: None,
            })
        }
        Repo::Remote(url) => {
            let root = match cache_root {
                Some(root) => root.to_owned(),
                None => repo::default_cache_root()?,
            };
            // Absolute: git runs in one folder and is given the other.
            let root = std::path::absolute(&root).map_err(|e| SyncError::Cache {
                dir: root.display().to_string(),
                reason: e.to_string(),
            })?;
            let dir = repo::cache_dir(&root, url);
            let lock = lock_cache(&root, &dir).await?;
            if !dir.join("HEAD").is_file() {
                let doing = format!("creating the cache clone {}", dir.display());
                let args = [
                    OsStr::new("init"),
                    OsStr::new("--bare"),
                    OsStr::new("--quiet"),
                    dir.as_os_str(),
                ];
                run(&root, &args, None, &doing, LOCAL_TIMEOUT).await?;
            }
            let doing = format!("fetching {reference} from {repo}");
            let refspec = format!("+{reference}:{FETCHED}");
            let args = [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                url.as_str(),
                refspec.as_str(),
            ];
            run(&dir, &args, None, &doing, FETCH_TIMEOUT).await?;
            let commit = resolve(&dir, FETCHED, repo).await?;
            Ok(Opened {
                dir,
                commit,
                _lock: Some(lock),
            })
        }
    }
}

impl Opened {
    /// The commit id.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// The commit's author and time, and the spec files directly in `folder` (`*.yaml`,
    /// `*.yml`; not nested folders, dotfiles, links or submodules).
    pub async fn read(&self, folder: &str, repo: &Repo) -> Result<Snapshot, SyncError> {
        let commit = self.describe(repo).await?;
        let tree = if folder.is_empty() {
            format!("{}^{{tree}}", self.commit)
        } else {
            format!("{}:{folder}", self.commit)
        };
        let doing = format!("looking for {folder:?} in commit {}", self.commit);
        // `cat-file -t` fails for a path the commit lacks and says `blob` for a file.
        let kind = output(
            &self.dir,
            &["cat-file", "-t", tree.as_str()],
            None,
            &doing,
            LOCAL_TIMEOUT,
        )
        .await?;
        if !kind.status.success() || kind.stdout.trim_ascii() != b"tree" {
            return Err(SyncError::NoFolder {
                repo: repo.to_string(),
                commit: self.commit.clone(),
                path: folder.to_owned(),
            });
        }
        let doing = format!("listing {folder:?} in commit {}", self.commit);
        let list = ["ls-tree", "-z", "-l", tree.as_str()];
        let listing = run(&self.dir, &list, None, &doing, LOCAL_TIMEOUT).await?;
        let entries =
            parse_ls_tree(&listing).map_err(|reason| SyncError::GitOutput { doing, reason })?;
        let mut snapshot = Snapshot {
            commit,
            files: Vec::new(),
            held: BTreeSet::new(),
            warnings: Vec::new(),
        };
        let short = short(&self.commit);
        let mut by_app: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for entry in entries {
            let path = join(folder, &entry.name);
            let Some(stem) = spec_stem(&entry.name) else {
                continue;
            };
            if !entry.regular {
                snapshot.warnings.push(format!(
                    "{path} at commit {short} is a link, a folder or a submodule, not a file: skipped"
                ));
                continue;
            }
            if let Err(e) = ccd_store::check_app_name(stem) {
                snapshot.warnings.push(format!(
                    "{path} at commit {short}: skipped: {e}; rename the file"
                ));
                continue;
            }
            by_app.entry(stem.to_owned()).or_default().push(entry);
        }
        let mut wanted = Vec::new();
        for (app, mut entries) in by_app {
            if entries.len() > 1 {
                let names: Vec<String> = entries.iter().map(|e| join(folder, &e.name)).collect();
                snapshot.warnings.push(format!(
                    "{} at commit {short} both define app {app:?}: neither is synced and its spec in the store is left as it is; remove one",
                    names.join(" and ")
                ));
                snapshot.held.insert(app);
                continue;
            }
            let entry = entries.remove(0);
            let path = join(folder, &entry.name);
            if entry.size > MAX_SPEC_BYTES {
                snapshot.warnings.push(format!(
                    "{path} at commit {short} is {} bytes, over the {MAX_SPEC_BYTES}-byte limit: not synced, and its spec in the store is left as it is; trim it",
                    entry.size
                ));
                snapshot.held.insert(app);
                continue;
            }
            wanted.push((app, path, entry.oid));
        }
        let oids: Vec<&str> = wanted.iter().map(|(_, _, oid)| oid.as_str()).collect();
        let doing = format!("reading the spec files of commit {}", self.commit);
        let mut blobs = self.blobs(&oids, &doing).await?;
        for ((app, path, _), bytes) in wanted.into_iter().zip(blobs.drain(..)) {
            snapshot.files.push(SpecBlob { app, path, bytes });
        }
        Ok(snapshot)
    }

    async fn describe(&self, repo: &Repo) -> Result<Commit, SyncError> {
        let doing = format!("reading commit {} of {repo}", self.commit);
        let out = run(
            &self.dir,
            &[
                "log",
                "-1",
                "--no-show-signature",
                "--format=%H%x00%an <%ae>%x00%cI",
                self.commit.as_str(),
            ],
            None,
            &doing,
            LOCAL_TIMEOUT,
        )
        .await?;
        let text = String::from_utf8_lossy(&out);
        let mut parts = text.trim_end().splitn(3, '\0');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(author), Some(time)) if !id.is_empty() => Ok(Commit {
                id: id.to_owned(),
                author: author.to_owned(),
                time: time.to_owned(),
            }),
            _ => Err(SyncError::GitOutput {
                doing,
                reason: format!("unexpected {text:?}"),
            }),
        }
    }

    /// The blobs' bytes, in order, from one `git cat-file --batch`.
    async fn blobs(&self, oids: &[&str], doing: &str) -> Result<Vec<Vec<u8>>, SyncError> {
        if oids.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = oids.join("\n").into_bytes();
        input.push(b'\n');
        let out = run(
            &self.dir,
            &["cat-file", "--batch"],
            Some(input),
            doing,
            LOCAL_TIMEOUT,
        )
        .await?;
        parse_batch(&out, oids.len()).map_err(|reason| SyncError::GitOutput {
            doing: doing.to_owned(),
            reason,
        })
    }
}

/// The first 12 characters of a commit id, for messages.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// The stem of a spec file's name (`web` for `web.yaml`), as the store names specs: lowercase
/// extensions, no dotfiles.
fn spec_stem(name: &str) -> Option<&str> {
    if name.starts_with('.') {
        return None;
    }
    name.strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
}

fn check_ref(reference: &str) -> Result<(), SyncError> {
    let bad = |reason: &str| SyncError::BadRef {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    if reference.is_empty() {
        return Err(bad("it is empty; give a branch, a tag or a commit id"));
    }
    if reference.starts_with('-') {
        return Err(bad("it starts with '-'"));
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(bad(
            "it holds a space, a control character or ':'; give a branch, a tag or a commit id",
        ));
    }
    Ok(())
}

/// The commit `reference` names in the repository at `dir`.
async fn resolve(dir: &Path, reference: &str, repo: &Repo) -> Result<String, SyncError> {
    let doing = format!("resolving {reference} in {repo}");
    let spec = format!("{reference}^{{commit}}");
    let args = ["rev-parse", "--verify", "--quiet", spec.as_str()];
    let out = run(dir, &args, None, &doing, LOCAL_TIMEOUT)
        .await
        .map_err(|e| match e {
            SyncError::Git { doing, message } if message.is_empty() => SyncError::Git {
                doing,
                message: format!("no commit is named {reference:?} (is the repository empty, or the branch misspelt?)"),
            },
            e => e,
        })?;
    let id = String::from_utf8_lossy(&out).trim().to_owned();
    if id.len() < 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SyncError::GitOutput {
            doing,
            reason: format!("{id:?} is not a commit id"),
        });
    }
    Ok(id)
}

/// An exclusive lock on `<dir>.lock` beside the cache clone (created with `root`), so that
/// two syncs of one URL fetch and read it one after the other.
async fn lock_cache(root: &Path, dir: &Path) -> Result<std::fs::File, SyncError> {
    let root = root.to_owned();
    let lock_path = dir.with_extension("lock");
    let shown = dir.display().to_string();
    let locked = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&root)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(e)) => Err(SyncError::Cache {
            dir: shown,
            reason: e.to_string(),
        }),
        Err(e) => Err(SyncError::Cache {
            dir: shown,
            reason: format!("locking it was interrupted: {e}"),
        }),
    }
}

/// `git -C dir ARGS`, failing with git's own message; `input` goes to its stdin.
async fn run<S: AsRef<OsStr>>(
    dir: &Path,
    args: &[S],
    input: Option<Vec<u8>>,
    doing: &str,
    limit: Duration,
) -> Result<Vec<u8>, SyncError> {
    let output = output(dir, args, input, doing, limit).await?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(SyncError::Git {
        doing: doing.to_owned(),
        message: scrub(String::from_utf8_lossy(&output.stderr).trim()),
    })
}

async fn output<S: AsRef<OsStr>>(
    dir: &Path,
    args: &[S],
    input: Option<Vec<u8>>,
    doing: &str,
    limit: Duration,
) -> Result<std::process::Output, SyncError> {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        // Never wait for a password nobody will type: fail, and say how to set credentials up.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| SyncError::NoGit {
        reason: e.to_string(),
    })?;
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => Some(tokio::spawn(async move {
            // git reads while it writes: feeding it from its own task never deadlocks.
            let _ = stdin.write_all(&input).await;
        })),
        _ => None,
    };
    let result = tokio::time::timeout(limit, child.wait_with_output()).await;
    if let Some(writer) = writer {
        writer.abort();
    }
    match result {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(SyncError::Git {
            doing: doing.to_owned(),
            message: e.to_string(),
        }),
        Err(_) => Err(SyncError::GitTimeout {
            doing: doing.to_owned(),
            seconds: limit.as_secs(),
        }),
    }
}

/// Removes `user:password@` from every URL in a message of git's.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        out.push_str(
            authority
                .rfind('@')
                .map_or(authority, |i| &authority[i + 1..]),
        );
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// One entry of `git ls-tree -z -l`.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    oid: String,
    size: u64,
    /// A regular file (not a link, a folder or a submodule).
    regular: bool,
}

/// `<mode> SP <type> SP <oid> SP+ <size> TAB <name> NUL`, per entry.
fn parse_ls_tree(out: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let (meta, name) = record
            .split_once('\t')
            .ok_or_else(|| format!("no tab in {record:?}"))?;
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, oid, size] = fields.as_slice() else {
            return Err(format!("unexpected entry {record:?}"));
        };
        let regular = *kind == "blob" && matches!(*mode, "100644" | "100755");
        entries.push(Entry {
            name: name.to_owned(),
            oid: (*oid).to_owned(),
            size: size.parse().unwrap_or(0),
            regular,
        });
    }
    Ok(entries)
}

/// `git cat-file --batch` output: `<oid> <type> <size>\n<bytes>\n` per object asked for.
fn parse_batch(mut out: &[u8], count: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut blobs = Vec::with_capacity(count);
    for _ in 0..count {
        let newline = out
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("the output ended early")?;
        let header = String::from_utf8_lossy(&out[..newline]).into_owned();
        let size: usize = match header.split(' ').collect::<Vec<_>>().as_slice() {
            [_, "blob", size] => size
                .parse()
                .map_err(|_| format!("bad size in {header:?}"))?,
            _ => return Err(format!("unexpected {header:?}")),
        };
        let start = newline + 1;
        let end = start + size;
        if out.len() < end + 1 {
            return Err("the output ended early".to_owned());
        }
        blobs.push(out[start..end].to_vec());
        out = &out[end + 1..];
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_ls_tree_and_cat_file_output() {
        let listing = [
            "100644 blob aaaa     12\tweb.yaml",
            "120000 blob bbbb 3\tlink.yaml",
            "040000 tree cccc       -\tnested",
            "",
        ]
        .join("\0");
        let listing = listing.as_bytes();
        let entries = parse_ls_tree(listing).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            (
                entries[0].name.as_str(),
                entries[0].size,
                entries[0].regular
            ),
            ("web.yaml", 12, true)
        );
        assert!(!entries[1].regular && !entries[2].regular);

        let batch = b"aaaa blob 3\nabc\nbbbb blob 0\n\n";
        assert_eq!(
            parse_batch(batch, 2).unwrap(),
            [b"abc".to_vec(), Vec::new()]
        );
        assert!(parse_batch(b"aaaa missing\n", 1).is_err());
        assert!(parse_batch(b"aaaa blob 9\nabc\n", 1).is_err());
    }

    #[test]
    fn messages_lose_credentials() {
        assert_eq!(
            scrub("fatal: unable to access 'https://u:tok@h.example/r.git/': 403"),
            "fatal: unable to access 'https://h.example/r.git/': 403"
        );
        assert_eq!(scrub("no url here"), "no url here");
    }

    #[test]
    fn refs_that_git_would_misread_are_refused() {
        for bad in ["", "-x", "a b", "HEAD:x", "a\nb"] {
            assert!(check_ref(bad).is_err(), "{bad:?}");
        }
        for good in ["HEAD", "main", "v1.2", "0123abcd", "HEAD~1"] {
            assert!(check_ref(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn spec_stems() {
        assert_eq!(spec_stem("web.yaml"), Some("web"));
        assert_eq!(spec_stem("web.yml"), Some("web"));
        assert_eq!(spec_stem(".web.yaml"), None);
        assert_eq!(spec_stem("web.YAML"), None);
        assert_eq!(spec_stem("README.md"), None);
    }
}
