//! Service accounts (IAM Admin v1), kept in the store under
//! `iam/serviceAccounts/EMAIL`, shaped as Google answers them.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{IamError, policy};
use crate::store::{Seq, Store};

const PREFIX: &str = "iam/serviceAccounts/";
/// Google answers every service account with this etag; clients only pass it back.
const ETAG: &str = "MDEwMjE5MjA=";
const MAX_DISPLAY_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 256;

fn key(email: &str) -> String {
    format!("{PREFIX}{email}")
}

/// Whether `email` is an account this local cloud made.
pub fn exists(store: &Store, email: &str) -> bool {
    store.get(&key(email)).is_some()
}

/// `projects.serviceAccounts.create`: the account, and the write to wait for.
pub fn create(store: &Store, project: &str, body: &Value) -> Result<(Value, Seq), IamError> {
    if project == "-" {
        return Err(IamError::InvalidArgument(
            "A service account is created in a project: name it instead of '-'".to_owned(),
        ));
    }
    let account_id = body["accountId"]
        .as_str()
        .ok_or_else(|| IamError::InvalidArgument("accountId is required".to_owned()))?;
    check_account_id(account_id)?;
    let given = &body["serviceAccount"];
    let display_name = text(given, "displayName", MAX_DISPLAY_NAME)?;
    let description = text(given, "description", MAX_DESCRIPTION)?;
    let email = format!("{account_id}@{project}.iam.gserviceaccount.com");
    let unique_id = unique_id(&email);
    let mut account = json!({
        "name": format!("projects/{project}/serviceAccounts/{email}"),
        "projectId": project,
        "uniqueId": unique_id,
        "email": email,
        "etag": ETAG,
        "oauth2ClientId": unique_id,
    });
    // Google leaves empty strings out.
    if !display_name.is_empty() {
        account["displayName"] = display_name.into();
    }
    if !description.is_empty() {
        account["description"] = description.into();
    }
    let seq = store.update(&key(&email), |old| match old {
        Some(_) => Err(IamError::AlreadyExists(format!(
            "Service account {account_id} already exists within project projects/{project}."
        ))),
        None => Ok(Some(account.clone())),
    })?;
    Ok((account, seq))
}

/// `projects.serviceAccounts.get`: `account` is the email or the unique id;
/// project `-` stands for any.
pub fn get(store: &Store, project: &str, account: &str) -> Result<Value, IamError> {
    let found = if account.contains('@') {
        store.get(&key(account))
    } else {
        store
            .scan(PREFIX, |_| true)
            .into_iter()
            .map(|(_, v)| v)
            .find(|v| v["uniqueId"].as_str() == Some(account))
    };
    match found {
        Some(v) if project == "-" || v["projectId"].as_str() == Some(project) => Ok((*v).clone()),
        _ => Err(IamError::NotFound(format!(
            "Service account projects/{project}/serviceAccounts/{account} does not exist."
        ))),
    }
}

/// `projects.serviceAccounts.list`.
pub fn list(store: &Store, project: &str) -> Value {
    let accounts: Vec<Value> = store
        .scan(PREFIX, |_| true)
        .into_iter()
        .filter(|(_, v)| project == "-" || v["projectId"].as_str() == Some(project))
        .map(|(_, v)| (*v).clone())
        .collect();
    if accounts.is_empty() {
        json!({})
    } else {
        json!({"accounts": accounts})
    }
}

/// `projects.serviceAccounts.delete`. As on Google, the account's bindings
/// become `deleted:` members, so a new account of the same name does not
/// inherit them. The last write to wait for.
pub fn delete(store: &Store, project: &str, account: &str) -> Result<Seq, IamError> {
    let found = get(store, project, account)?;
    let email = found["email"].as_str().unwrap_or_default();
    let uid = found["uniqueId"].as_str().unwrap_or_default();
    let seq = store.update(&key(email), |old| match old {
        Some(_) => Ok(None),
        // Deleted meanwhile by another request.
        None => Err(IamError::NotFound(format!(
            "Service account projects/{project}/serviceAccounts/{account} does not exist."
        ))),
    })?;
    Ok(policy::forget(store, email, uid).map_or(seq, |last| last.max(seq)))
}

/// Google's rule for an account id, checked before anything is written.
fn check_account_id(id: &str) -> Result<(), IamError> {
    let length_ok = (6..=30).contains(&id.len());
    let shape_ok = id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if length_ok && shape_ok {
        Ok(())
    } else {
        Err(IamError::InvalidArgument(format!(
            "accountId {id:?} is not valid: it must be 6 to 30 characters of lowercase letters, \
             digits and hyphens, start with a letter and not end with a hyphen \
             (^[a-z]([-a-z0-9]*[a-z0-9])$)"
        )))
    }
}

/// A string field of the given account, at most `max` characters; empty when absent.
fn text(given: &Value, field: &str, max: usize) -> Result<String, IamError> {
    match &given[field] {
        Value::Null => Ok(String::new()),
        Value::String(s) if s.chars().count() <= max => Ok(s.clone()),
        Value::String(_) => Err(IamError::InvalidArgument(format!(
            "serviceAccount.{field} is longer than {max} characters"
        ))),
        _ => Err(IamError::InvalidArgument(format!(
            "serviceAccount.{field} must be a string"
        ))),
    }
}

/// 21 decimal digits, as Google's; kept with the account, and new for an
/// account made again under the same email (as on Google).
fn unique_id(email: &str) -> String {
    let digest = Sha256::digest(format!("{email}\n{}", crate::clock::new_id()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!("1{:020}", u128::from_be_bytes(bytes) % 10u128.pow(20))
}
