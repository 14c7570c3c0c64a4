//! The lease object's content: who holds it and under which epoch. Only the
//! generation decides the election; the content names the holder for people
//! and for the holder itself.

use serde::{Deserialize, Serialize};

/// What the lease object says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseRecord {
    /// The holder's id (host, process id and a random part).
    pub holder: String,
    /// The holder's epoch: the generation of the write that acquired it.
    /// Zero in the acquiring write itself, whose generation is not known
    /// until the store answers.
    pub epoch: u64,
    /// The holder's wall time at the write, in Unix milliseconds: for people
    /// reading the object; never compared with another machine's clock.
    pub renewed_at_unix_ms: u64,
    /// The lease the holder was configured with, in seconds: for people.
    pub lease_seconds: u64,
}

impl LeaseRecord {
    /// The object's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads the object's bytes; an error says what is wrong with them.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
