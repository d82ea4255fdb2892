//! What each provider adapter's folder gives the registry: its settings type (serde,
//! `deny_unknown_fields`, a doc line per field), their checks, the construction of the adapter,
//! and what the adapter can and cannot do.

use crate::{DnsProvider, ProviderError};

/// What is known of a provider, for `rotor providers` and the README's provider table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProviderInfo {
    /// The `type:` (and, in a family, `provider:`) that selects it in the config.
    pub config_type: &'static str,
    /// The DNS host or protocol, as operators know it.
    pub name: &'static str,
    /// Whether it deletes one exact TXT value and leaves the others at that name.
    pub exact_delete: bool,
    /// Whether it lists every TXT value at a name (so rotor can see foreign records).
    pub lists_values: bool,
    /// Whether a batch of changes to a zone is applied as one request (else one per change).
    pub batched: bool,
    /// What proves it works: a real server or a contract double in rotor's suite, or only the
    /// library's own support.
    pub proven_by: Proof,
    /// The cargo feature it is compiled with, when it is optional.
    pub feature: Option<&'static str>,
    /// What an operator must know (limits, what rotor refuses and why).
    pub notes: &'static str,
}

/// What proves a provider adapter works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// The conformance suite and end-to-end rotations run against this real server.
    RealServer(&'static str),
    /// The conformance suite runs against a double that enforces the documented contract.
    ContractDouble(&'static str),
    /// Only the library rotor uses for it supports it; rotor's suite does not reach it.
    LibraryOnly,
}

/// The settings of one provider adapter, as its folder defines them.
pub trait ProviderSettings {
    /// What the adapter is and can do.
    fn info(&self) -> ProviderInfo;

    /// Checks what serde cannot (settings that depend on each other, what the adapter refuses);
    /// the message names the field.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Builds the adapter named `name` in the config. Secrets (tokens, passwords) are read
    /// here, not when the config is loaded, so commands that call no provider need none.
    fn build(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Box<dyn DnsProvider>, ProviderError>> + Send;
}
