//! Change hints for a folder store from filesystem events (`notify`: inotify on Linux).
//!
//! Two non-recursive watches: `specs/` for its files, and the store root so that a `specs/`
//! folder that is removed and created again (a sync tool swapping folders) is watched again.
//! Hints are app names, or `crate::MARKER_HINT` when the sync marker changed; when events were
//! lost (a kernel queue overflow, or our buffer filling) every current spec is hinted, which is
//! what a rescan means here.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::names::{self, SPECS_DIR};

/// Raw events buffered between notify's thread and the stream's reader.
const EVENT_BUFFER: usize = 1024;
/// How long the folder must be quiet before hints go out.
const SETTLE: Duration = Duration::from_millis(20);
/// The longest hints wait for quiet, however busy the folder.
const SETTLE_AT_MOST: Duration = Duration::from_millis(200);

pub(crate) fn watch_specs(root: PathBuf) -> notify::Result<BoxStream<'static, String>> {
    let specs = root.join(SPECS_DIR);
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let lost = Arc::new(AtomicBool::new(false));
    let lost_in_handler = Arc::clone(&lost);
    // notify calls this on its own thread; `try_send` never blocks it. A full buffer marks
    // events as lost, and the reader answers that with a rescan.
    let mut watcher = notify::recommended_watcher(move |event| {
        if tx.try_send(event).is_err() {
            lost_in_handler.store(true, Ordering::Relaxed);
        }
    })?;
    watcher.watch(&root, RecursiveMode::NonRecursive)?;
    if specs.is_dir() {
        watcher.watch(&specs, RecursiveMode::NonRecursive)?;
    }
    let state = Watch {
        watcher,
        events: rx,
        lost,
        specs,
        pending: VecDeque::new(),
    };
    Ok(stream::unfold(state, Watch::next_hint).boxed())
}

struct Watch {
    /// Kept alive for as long as the stream: dropping it ends the watches.
    watcher: RecommendedWatcher,
    events: mpsc::Receiver<notify::Result<Event>>,
    lost: Arc<AtomicBool>,
    specs: PathBuf,
    pending: VecDeque<String>,
}

impl Watch {
    async fn next_hint(mut self) -> Option<(String, Self)> {
        loop {
            if let Some(app) = self.pending.pop_front() {
                return Some((app, self));
            }
            // `None` only once the watcher is gone, which ends the stream.
            let event = self.events.recv().await?;
            self.take(event).await;
            // One save is several events (create or truncate, writes, close): wait for a
            // quiet moment, so that a half-written file is not read as the new spec.
            let deadline = Instant::now() + SETTLE_AT_MOST;
            loop {
                let quiet = SETTLE.min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(quiet, self.events.recv()).await {
                    Ok(Some(event)) => self.take(event).await,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    async fn take(&mut self, event: notify::Result<Event>) {
        if self.lost.swap(false, Ordering::Relaxed) {
            debug!("filesystem events were dropped; hinting every spec");
            self.rescan().await;
        }
        match event {
            Ok(event) => self.handle(event).await,
            Err(e) => warn!(error = %e, "spec folder watch reported an error"),
        }
    }

    async fn handle(&mut self, event: Event) {
        if event.need_rescan() {
            self.rescan().await;
            return;
        }
        // Reads (ours included: every listing opens each spec) are not changes; a close after
        // writing is, since some writers only then have the full content in place.
        if let EventKind::Access(access) = event.kind
            && access != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        for path in &event.paths {
            if *path == self.specs {
                if matches!(
                    event.kind,
                    EventKind::Create(CreateKind::Any | CreateKind::Folder)
                        | EventKind::Modify(ModifyKind::Name(_))
                ) && self.specs.is_dir()
                {
                    self.rewatch_specs().await;
                }
                continue;
            }
            if path.parent() != Some(self.specs.as_path()) {
                continue;
            }
            if let Some(app) = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(names::hint_of)
            {
                self.push(app);
            }
        }
    }

    /// `specs/` appeared (again): watch it and hint whatever it already holds.
    async fn rewatch_specs(&mut self) {
        match self.watcher.watch(&self.specs, RecursiveMode::NonRecursive) {
            Ok(()) => debug!(folder = %self.specs.display(), "watching the spec folder again"),
            Err(e) => warn!(folder = %self.specs.display(), error = %e,
                "cannot watch the recreated spec folder; changes are seen on relists only"),
        }
        self.rescan().await;
    }

    async fn rescan(&mut self) {
        let specs = self.specs.clone();
        match tokio::task::spawn_blocking(move || app_names_in(&specs)).await {
            Ok(apps) => apps.into_iter().for_each(|app| self.push(app)),
            Err(e) => warn!(error = %e, "spec folder rescan failed"),
        }
    }

    fn push(&mut self, app: String) {
        // Editors save with several events per file; one pending hint per app is enough.
        if !self.pending.contains(&app) {
            self.pending.push_back(app);
        }
    }
}

/// The apps whose spec files are in `dir` now (an unreadable folder holds none).
fn app_names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(names::hint_of))
        .collect()
}
