//! Cloud Storage's control API stands here as an in-memory fake behind the
//! SDK's own stub trait, since that client speaks gRPC (no discovery
//! document applies): it keeps managed folders, objects and IAM policies,
//! records every call by the resource it names, refuses a resource name the
//! API would not accept, and refuses a policy write whose etag is not the
//! one last read (as Google does), so a test sees a lost etag as an error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use google_cloud_gax::error::Error;
use google_cloud_gax::error::rpc::{Code, Status};
use google_cloud_gax::options::RequestOptions;
use google_cloud_gax::response::Response;
use google_cloud_iam_v1::model::{GetIamPolicyRequest, Policy, SetIamPolicyRequest};
use google_cloud_storage::model::{
    CreateManagedFolderRequest, DeleteManagedFolderRequest, DeleteObjectRequest,
    GetManagedFolderRequest, ListObjectsRequest, ListObjectsResponse, ManagedFolder, Object,
};

type Result<T> = google_cloud_gax::Result<Response<T>>;

#[derive(Debug, Default)]
pub struct State {
    pub folders: BTreeSet<String>,
    /// Object names, by bucket resource.
    pub objects: BTreeMap<String, BTreeSet<String>>,
    pub policies: BTreeMap<String, Policy>,
    /// `method resource`, in order.
    pub calls: Vec<String>,
    pub problems: Vec<String>,
    generation: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Folders(pub Arc<Mutex<State>>);

fn fail(code: Code, message: &str) -> Error {
    Error::service(Status::default().set_code(code).set_message(message))
}

/// A managed folder's or a bucket's name as the control API takes it.
fn valid(resource: &str) -> bool {
    let Some(rest) = resource.strip_prefix("projects/_/buckets/") else {
        return false;
    };
    match rest.split_once("/managedFolders/") {
        None => !rest.is_empty() && !rest.contains('/'),
        Some((bucket, folder)) => !bucket.is_empty() && folder.ends_with('/'),
    }
}

impl Folders {
    pub fn control(&self) -> google_cloud_storage::client::StorageControl {
        google_cloud_storage::client::StorageControl::from_stub(self.clone())
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// The calls so far, after asserting each named a valid resource.
    pub fn calls(&self) -> Vec<String> {
        let s = self.state();
        assert!(s.problems.is_empty(), "{:#?}", s.problems);
        s.calls.clone()
    }

    fn record(&self, method: &str, resource: &str) {
        let mut s = self.state();
        if !valid(resource) {
            s.problems
                .push(format!("{method}: {resource:?} is not a resource name"));
        }
        s.calls.push(format!("{method} {resource}"));
    }
}

impl google_cloud_storage::stub::StorageControl for Folders {
    async fn get_managed_folder(
        &self,
        req: GetManagedFolderRequest,
        _: RequestOptions,
    ) -> Result<ManagedFolder> {
        self.record("get_managed_folder", &req.name);
        match self.state().folders.contains(&req.name) {
            true => Ok(Response::from(ManagedFolder::new().set_name(req.name))),
            false => Err(fail(Code::NotFound, "no such managed folder")),
        }
    }

    async fn create_managed_folder(
        &self,
        req: CreateManagedFolderRequest,
        _: RequestOptions,
    ) -> Result<ManagedFolder> {
        let name = format!("{}/managedFolders/{}", req.parent, req.managed_folder_id);
        self.record("create_managed_folder", &name);
        match self.state().folders.insert(name.clone()) {
            true => Ok(Response::from(ManagedFolder::new().set_name(name))),
            false => Err(fail(Code::AlreadyExists, "exists")),
        }
    }

    async fn delete_managed_folder(
        &self,
        req: DeleteManagedFolderRequest,
        _: RequestOptions,
    ) -> Result<()> {
        self.record("delete_managed_folder", &req.name);
        let mut s = self.state();
        s.policies.remove(&req.name);
        match s.folders.remove(&req.name) {
            true => Ok(Response::from(())),
            false => Err(fail(Code::NotFound, "no such managed folder")),
        }
    }

    async fn list_objects(
        &self,
        req: ListObjectsRequest,
        _: RequestOptions,
    ) -> Result<ListObjectsResponse> {
        self.record("list_objects", &req.parent);
        let s = self.state();
        let names = s.objects.get(&req.parent).cloned().unwrap_or_default();
        let objects = names
            .into_iter()
            .filter(|n| n.starts_with(&req.prefix))
            .map(|n| Object::new().set_name(n));
        Ok(Response::from(
            ListObjectsResponse::new().set_objects(objects),
        ))
    }

    async fn delete_object(&self, req: DeleteObjectRequest, _: RequestOptions) -> Result<()> {
        self.record("delete_object", &req.bucket);
        let mut s = self.state();
        let gone = s
            .objects
            .get_mut(&req.bucket)
            .is_some_and(|o| o.remove(&req.object));
        match gone {
            true => Ok(Response::from(())),
            false => Err(fail(Code::NotFound, "no such object")),
        }
    }

    async fn get_iam_policy(&self, req: GetIamPolicyRequest, _: RequestOptions) -> Result<Policy> {
        self.record("get_iam_policy", &req.resource);
        let mut s = self.state();
        s.generation += 1;
        let etag = format!("etag-{}", s.generation);
        let policy = s.policies.entry(req.resource).or_default();
        if policy.etag.is_empty() {
            policy.etag = etag.into();
        }
        Ok(Response::from(policy.clone()))
    }

    async fn set_iam_policy(&self, req: SetIamPolicyRequest, _: RequestOptions) -> Result<Policy> {
        self.record("set_iam_policy", &req.resource);
        let mut s = self.state();
        s.generation += 1;
        let etag = format!("etag-{}", s.generation);
        let Some(policy) = req.policy else {
            return Err(fail(Code::InvalidArgument, "no policy"));
        };
        let current = s.policies.entry(req.resource).or_default();
        if policy.etag != current.etag {
            return Err(fail(Code::Aborted, "the etag is not the policy's"));
        }
        *current = policy.set_etag(etag.into_bytes());
        Ok(Response::from(current.clone()))
    }
}
