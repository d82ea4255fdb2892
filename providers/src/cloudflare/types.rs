//! The parts of Cloudflare's API v4 JSON that rotor reads and writes.

use serde::{Deserialize, Serialize};

/// Every response: `{"success", "errors", "messages", "result", "result_info"}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    /// Whether the call succeeded.
    #[serde(default)]
    pub success: bool,
    /// What went wrong.
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    /// The payload.
    pub result: Option<T>,
    /// Paging of list results.
    pub result_info: Option<ResultInfo>,
}

/// One entry of `errors` (or `messages`).
#[derive(Clone, Debug, Deserialize)]
pub struct ApiMessage {
    /// Cloudflare's error code.
    #[serde(default)]
    pub code: u32,
    /// Its message.
    #[serde(default)]
    pub message: String,
}

/// Paging of a list.
#[derive(Debug, Deserialize)]
pub struct ResultInfo {
    /// This page (from 1).
    #[serde(default)]
    pub page: u32,
    /// How many pages there are.
    #[serde(default)]
    pub total_pages: u32,
}

/// A zone.
#[derive(Debug, Deserialize)]
pub struct ZoneInfo {
    /// Its identifier.
    pub id: String,
    /// Its apex name.
    pub name: String,
}

/// A DNS record as the API returns it.
#[derive(Clone, Debug, Deserialize)]
pub struct Record {
    /// Its identifier.
    pub id: String,
    /// Fully qualified name.
    pub name: String,
    /// Its content: for TXT, one or more quoted strings, or one plain string.
    pub content: String,
    /// Its comment, where rotor puts its ownership marker.
    pub comment: Option<String>,
}

/// A TXT record to create.
#[derive(Clone, Debug, Serialize)]
pub struct NewRecord {
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Fully qualified name.
    pub name: String,
    /// Quoted strings of at most 255 bytes, separated by spaces.
    pub content: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Rotor's ownership marker.
    pub comment: String,
}

/// A record to delete in a batch.
#[derive(Debug, Serialize)]
pub struct RecordId {
    /// Its identifier.
    pub id: String,
}

/// The body of `POST /zones/{id}/dns_records/batch`.
#[derive(Debug, Default, Serialize)]
pub struct Batch {
    /// Records to delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deletes: Vec<RecordId>,
    /// Records to create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub posts: Vec<NewRecord>,
}

/// The token check's result.
#[derive(Debug, Deserialize)]
pub struct TokenStatus {
    /// `active` for a usable token.
    pub status: String,
}
