//! The DNS hosts of the `dns-update` family rotor offers, and what each one's code in the
//! `dns-update` crate (0.6.1) does with a TXT value: read before exposing one.

use serde::Deserialize;

use crate::adapter::{Proof, ProviderInfo};

/// The cargo feature the family is compiled with.
pub const FEATURE: &str = "dns-update";

/// A DNS host reached through the `dns-update` crate (`provider:` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// PowerDNS Authoritative's HTTP API.
    PowerDns,
    /// Hetzner's DNS API (Hetzner Cloud, v1).
    Hetzner,
    /// deSEC.
    Desec,
    /// DigitalOcean.
    DigitalOcean,
    /// Linode (Akamai).
    Linode,
    /// Vultr.
    Vultr,
    /// Gandi LiveDNS (v5).
    Gandi,
    /// Porkbun.
    Porkbun,
    /// DNSimple.
    Dnsimple,
    /// Namecheap: refused (its API rewrites the whole zone).
    Namecheap,
    /// DuckDNS: refused (it cannot list or delete one value).
    DuckDns,
}

/// What a host needs besides its API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// The token alone.
    Token,
    /// The API's URL and, optionally, a server id (self-hosted APIs).
    Endpoint,
    /// A second secret (an API secret key).
    Secret,
    /// An account id.
    Account,
}

/// What rotor knows of one host of the family.
pub struct Profile {
    /// Its `ProviderInfo`.
    pub info: ProviderInfo,
    /// The environment variable read for its API token unless `api_token_env:` names another.
    pub token_env: &'static str,
    /// What else its settings must give.
    pub needs: Needs,
    /// Why rotor refuses it, if it does.
    pub refused: Option<&'static str>,
}

const fn info(
    config_type: &'static str,
    name: &'static str,
    ok: bool,
    proven_by: Proof,
    notes: &'static str,
) -> ProviderInfo {
    ProviderInfo {
        config_type,
        name,
        exact_delete: ok,
        lists_values: ok,
        batched: false,
        proven_by,
        feature: Some(FEATURE),
        notes,
    }
}

/// Every value an RRset rewrite carries back as it was read.
const REWRITES: &str = "adds and deletes by reading the TXT set at the name and writing it back whole (other values as read): a value someone else adds between that read and the write is lost, so rotor lists the name again just before every conditional change";

impl Host {
    /// What rotor knows of this host.
    pub const fn profile(self) -> Profile {
        let per_record =
            "deletes one record by its id after matching its exact value; one request per change";
        let library = Proof::LibraryOnly;
        let (info, token_env, needs, refused) = match self {
            Self::PowerDns => (
                info(
                    "dns-update/powerdns",
                    "PowerDNS Authoritative (HTTP API)",
                    true,
                    Proof::RealServer("pdns_server 4.7 with the sqlite3 backend"),
                    REWRITES,
                ),
                "POWERDNS_API_KEY",
                Needs::Endpoint,
                None,
            ),
            Self::Hetzner => (
                info(
                    "dns-update/hetzner",
                    "Hetzner DNS",
                    true,
                    library,
                    "adds and removes exact values (add_records, remove_records); an add sets the TTL of the whole TXT set at the name, as in DNS itself",
                ),
                "HETZNER_API_TOKEN",
                Needs::Token,
                None,
            ),
            Self::Desec => (
                info("dns-update/desec", "deSEC", true, library, REWRITES),
                "DESEC_TOKEN",
                Needs::Token,
                None,
            ),
            Self::DigitalOcean => (
                info(
                    "dns-update/digitalocean",
                    "DigitalOcean",
                    true,
                    library,
                    per_record,
                ),
                "DIGITALOCEAN_TOKEN",
                Needs::Token,
                None,
            ),
            Self::Linode => (
                info("dns-update/linode", "Linode", true, library, per_record),
                "LINODE_TOKEN",
                Needs::Token,
                None,
            ),
            Self::Vultr => (
                info("dns-update/vultr", "Vultr", true, library, per_record),
                "VULTR_API_KEY",
                Needs::Token,
                None,
            ),
            Self::Gandi => (
                info("dns-update/gandi", "Gandi LiveDNS", true, library, REWRITES),
                "GANDI_PAT",
                Needs::Token,
                None,
            ),
            Self::Porkbun => (
                info("dns-update/porkbun", "Porkbun", true, library, per_record),
                "PORKBUN_API_KEY",
                Needs::Secret,
                None,
            ),
            Self::Dnsimple => (
                info("dns-update/dnsimple", "DNSimple", true, library, per_record),
                "DNSIMPLE_TOKEN",
                Needs::Account,
                None,
            ),
            Self::Namecheap => (
                info(
                    "dns-update/namecheap",
                    "Namecheap",
                    false,
                    library,
                    "refused: its API (setHosts) replaces every record of the domain at once",
                ),
                "NAMECHEAP_API_KEY",
                Needs::Token,
                Some(
                    "Namecheap's API replaces every record of the domain at once (setHosts), so one change could erase records rotor did not create; use RFC 2136 or another host",
                ),
            ),
            Self::DuckDns => (
                info(
                    "dns-update/duckdns",
                    "DuckDNS",
                    false,
                    library,
                    "refused: it holds one TXT value per domain and can neither list nor delete one value",
                ),
                "DUCKDNS_TOKEN",
                Needs::Token,
                Some(
                    "DuckDNS holds a single TXT value per domain and cannot list or delete one exact value, so rotor could not keep an old key's record beside the new one",
                ),
            ),
        };
        Profile {
            info,
            token_env,
            needs,
            refused,
        }
    }

    /// Every host, in the catalogue's order.
    pub const ALL: [Host; 11] = [
        Self::PowerDns,
        Self::Hetzner,
        Self::Desec,
        Self::DigitalOcean,
        Self::Linode,
        Self::Vultr,
        Self::Gandi,
        Self::Porkbun,
        Self::Dnsimple,
        Self::Namecheap,
        Self::DuckDns,
    ];
}

/// What is known of every host of the family (for the registry's catalogue).
pub fn catalogue() -> Vec<ProviderInfo> {
    Host::ALL.iter().map(|host| host.profile().info).collect()
}
