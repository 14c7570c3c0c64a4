//! Status writes racing another writer, made deterministic: a store wrapper lets "another
//! writer" change the object between our read and our conditional write. fake-gcs-server
//! cannot interleave like this, so the retry logic is checked here on object_store's
//! in-memory store, which implements the same conditional put modes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::StoreError;
use crate::objects::{Lister, Objects, Record, UpdateCheck};

/// Before each of the next `meddles` puts, another writer rewrites the target.
#[derive(Debug)]
struct Meddler {
    inner: InMemory,
    meddles: AtomicU32,
    puts: AtomicU32,
}

impl fmt::Display for Meddler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Meddler")
    }
}

#[async_trait]
impl ObjectStore for Meddler {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        let meddle = self
            .meddles
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| m.checked_sub(1))
            .is_ok();
        if meddle {
            let theirs = format!("other writer {n}\n");
            self.inner.put(location, theirs.into_bytes().into()).await?;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn objects(meddles: u32) -> (Arc<Meddler>, Objects) {
    let store = Arc::new(Meddler {
        inner: InMemory::new(),
        meddles: AtomicU32::new(meddles),
        puts: AtomicU32::new(0),
    });
    let objects = Objects::new(
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        Path::default(),
        "mem://test".into(),
        Lister::Objects,
        UpdateCheck::ETag,
    );
    (store, objects)
}

#[tokio::test]
async fn a_create_race_is_retried_against_the_winner() {
    let (store, objects) = objects(1);
    assert!(
        objects
            .write_record(Record::Status, "app", b"ours\n")
            .await
            .unwrap()
    );
    assert_eq!(store.puts.load(Ordering::SeqCst), 2);
    let status = objects
        .read_record(Record::Status, "app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.as_ref(), b"ours\n");
}

#[tokio::test]
async fn an_update_race_is_retried_and_never_overwrites_blindly() {
    let (store, objects) = objects(0);
    assert!(
        objects
            .write_record(Record::Status, "app", b"v1\n")
            .await
            .unwrap()
    );
    // Another writer strikes before our next put.
    store.meddles.store(1, Ordering::SeqCst);
    store.puts.store(0, Ordering::SeqCst);
    assert!(
        objects
            .write_record(Record::Status, "app", b"v2\n")
            .await
            .unwrap()
    );
    // First put: conditional on v1's etag, refused because the other writer got in; second:
    // conditional on the other writer's etag, accepted.
    assert_eq!(store.puts.load(Ordering::SeqCst), 2);
    assert_eq!(
        objects
            .read_record(Record::Status, "app")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        b"v2\n"
    );
}

#[tokio::test]
async fn a_writer_that_always_loses_reports_a_conflict() {
    let (store, objects) = objects(u32::MAX);
    let err = objects
        .write_record(Record::Status, "app", b"ours\n")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { attempts: 3, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("mem://test/status/app.yaml"),
        "{err}"
    );
    assert_eq!(store.puts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_other_writers_identical_status_is_left_alone() {
    let (store, objects) = objects(0);
    store
        .inner
        .put(&Path::from("status/app.yaml"), b"same\n".to_vec().into())
        .await
        .unwrap();
    assert!(
        !objects
            .write_record(Record::Status, "app", b"same\n")
            .await
            .unwrap()
    );
    assert_eq!(store.puts.load(Ordering::SeqCst), 0);
}
