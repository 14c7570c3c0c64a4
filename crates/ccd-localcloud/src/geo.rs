//! Regions and zones. The local cloud has every region Compute has, for
//! practical purposes: any well-formed region name exists, with zones -a to
//! -d; listing shows a fixed handful of the common ones.

use serde_json::{Value, json};

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;

const LISTED_REGIONS: [&str; 6] = [
    "asia-east1",
    "europe-west1",
    "europe-west4",
    "us-central1",
    "us-east1",
    "us-west1",
];
const ZONE_LETTERS: [&str; 4] = ["a", "b", "c", "d"];

fn region_ok(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 2
        && parts[0].len() >= 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1].ends_with(|c: char| c.is_ascii_digit())
        && parts[1]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn region_of_zone(zone: &str) -> Option<&str> {
    let (region, letter) = zone.rsplit_once('-')?;
    (letter.len() == 1 && letter.chars().all(|c| c.is_ascii_lowercase()) && region_ok(region))
        .then_some(region)
}

fn zone(cloud: &Cloud, project: &str, name: &str, region: &str) -> Value {
    json!({
        "kind": "compute#zone", "id": "1", "name": name, "status": "UP", "description": name,
        "creationTimestamp": "2024-01-01T00:00:00.000-00:00",
        "region": cloud.link(&format!("projects/{project}/regions/{region}")),
        "selfLink": cloud.link(&format!("projects/{project}/zones/{name}")),
        "availableCpuPlatforms": ["Intel Broadwell"],
    })
}

fn region(cloud: &Cloud, project: &str, name: &str) -> Value {
    let zones: Vec<String> = ZONE_LETTERS
        .iter()
        .map(|l| cloud.link(&format!("projects/{project}/zones/{name}-{l}")))
        .collect();
    json!({
        "kind": "compute#region", "id": "1", "name": name, "status": "UP", "description": name,
        "creationTimestamp": "2024-01-01T00:00:00.000-00:00",
        "zones": zones,
        "selfLink": cloud.link(&format!("projects/{project}/regions/{name}")),
    })
}

pub fn answer(cloud: &Cloud, call: &Call) -> Result<Value, ApiError> {
    let project = call.project.as_str();
    let name = call.target.key.as_deref().map(crate::paths::name_of);
    match (
        call.method.resource.as_str(),
        call.method.name.as_str(),
        name,
    ) {
        ("zones", "get", Some(z)) => match region_of_zone(z) {
            Some(r) => Ok(zone(cloud, project, z, r)),
            None => Err(ApiError::not_found(&format!(
                "projects/{project}/zones/{z}"
            ))),
        },
        ("regions", "get", Some(r)) if region_ok(r) => Ok(region(cloud, project, r)),
        ("regions", "get", Some(r)) => Err(ApiError::not_found(&format!(
            "projects/{project}/regions/{r}"
        ))),
        ("zones", "list", _) => {
            let items: Vec<Value> = LISTED_REGIONS
                .iter()
                .flat_map(|r| ZONE_LETTERS.iter().map(move |l| (r, l)))
                .map(|(r, l)| zone(cloud, project, &format!("{r}-{l}"), r))
                .collect();
            Ok(
                json!({"kind": "compute#zoneList", "id": format!("projects/{project}/zones"), "items": items, "selfLink": cloud.link(&format!("projects/{project}/zones"))}),
            )
        }
        ("regions", "list", _) => {
            let items: Vec<Value> = LISTED_REGIONS
                .iter()
                .map(|r| region(cloud, project, r))
                .collect();
            Ok(
                json!({"kind": "compute#regionList", "id": format!("projects/{project}/regions"), "items": items, "selfLink": cloud.link(&format!("projects/{project}/regions"))}),
            )
        }
        (resource, method, _) => Err(crate::handlers::not_implemented(resource, method)),
    }
}
