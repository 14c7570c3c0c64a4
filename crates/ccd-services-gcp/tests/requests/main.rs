#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The adapters' requests, recorded: every one resolves to the method
//! expected in Google's discovery document, with only the query parameters
//! that method declares and a body its request schema accepts (`server`
//! checks each and fails the test on any other); then what a user cares
//! about, per API.

mod firestore;
mod logging;
mod server;
mod sql;

/// The app's service account, as ccd-cloud's identity names it.
const EMAIL: &str = "ccd-web@p.iam.gserviceaccount.com";
