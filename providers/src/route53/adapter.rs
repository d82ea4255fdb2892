//! The Route53 adapter itself (compiled with the cargo feature `route53`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::retry::RetryConfig;
use aws_sdk_route53::config::timeout::TimeoutConfig;
use aws_sdk_route53::config::{Builder as SdkBuilder, ProvideCredentials, Region};
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{
    self as r53, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_types::service_config::ServiceConfigKey;
use tokio::time::Instant;

use crate::{Change, DnsProvider, ProviderError, TxtValue, Zone, async_trait, dns};

use super::plan::{self, Edit, Entry, TxtSet};
use super::value;

/// The region requests are signed for when neither the config nor the environment names one
/// (Route53 is a global service, but the SDK needs a region).
pub const DEFAULT_REGION: &str = "us-east-1";

/// How long `apply` waits for Route53 to report a change `INSYNC`, unless configured.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Attempts per API call (Route53 allows five requests per second per account; throttling,
/// `PriorRequestNotComplete`, 5xx answers and network failures are retried with exponential
/// backoff and jitter).
const MAX_ATTEMPTS: u32 = 4;

/// The first wait between two `GetChange` calls; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_secs(1);

/// The longest wait between two `GetChange` calls.
const MAX_POLL: Duration = Duration::from_secs(15);

/// How long to wait for a connection to the API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one attempt of one API call may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Up to this many names, `apply` reads each name's TXT set; beyond it lists the zone once.
const PER_NAME_READS: usize = 10;

/// Record sets asked for per page when reading one name (more than one TXT set at a name is
/// rare: weighted or other routing policies).
const PAGE_AT_NAME: i32 = 10;

/// The comment on every change batch.
const COMMENT: &str = "rotor DKIM key rotation";

/// AWS error codes that mean the credentials were refused.
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

/// AWS error codes that may pass by themselves.
const TEMPORARY_CODES: &[&str] = &[
    "InternalFailure",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
];

/// Which account, and which zones, the adapter works with.
#[derive(Clone, Debug)]
pub struct Route53Config {
    /// The provider's name in rotor's config, for messages.
    pub name: String,
    /// The profile of `~/.aws/config` to take credentials and settings from (none: `AWS_PROFILE`
    /// or `default`, after the environment's credentials).
    pub profile: Option<String>,
    /// The region requests are signed for (none: the environment's or the profile's, else
    /// [`DEFAULT_REGION`]).
    pub region: Option<String>,
    /// The hosted zone to use, with or without its `/hostedzone/` prefix (none: found by name).
    pub zone_id: Option<String>,
    /// Whether zone discovery may pick a private hosted zone.
    pub private_zones: bool,
    /// How long `apply` waits for Route53 to report its changes `INSYNC`.
    pub sync_timeout: Duration,
}

impl Route53Config {
    /// A config named `name` with every other setting at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            profile: None,
            region: None,
            zone_id: None,
            private_zones: false,
            sync_timeout: DEFAULT_SYNC_TIMEOUT,
        }
    }
}

/// The Route53 adapter.
#[derive(Debug)]
pub struct Route53 {
    config: Route53Config,
    client: Client,
}

/// A TXT record set as listed, with the reason rotor must not change it, if any.
struct Listed {
    /// Its name, lowercase, without the trailing dot.
    name: String,
    /// Why it is not a plain record set (a routing policy, an alias).
    special: Option<String>,
    /// Its TTL and values.
    set: TxtSet,
}

impl Route53 {
    /// An adapter with credentials and settings from the standard AWS chain (environment,
    /// `profile` or `AWS_PROFILE`, SSO, `credential_process`, container or instance role).
    /// Resolves the credentials once, so that missing or unusable ones are reported here.
    pub async fn new(config: Route53Config) -> Result<Self, ProviderError> {
        // An `AWS_*` variable set to nothing (as a systemd `EnvironmentFile` may leave it) counts
        // as unset: the SDK would take it as a value (an empty endpoint makes it panic, an empty
        // region signs for no region). The profile and the region are therefore resolved here
        // and handed to the SDK explicitly, and the instance metadata service is never asked
        // for a region (it is not there off EC2, and asking logs warnings on every run).
        let profile = config
            .profile
            .clone()
            .or_else(|| set_var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_string());
        let region = match &config.region {
            Some(region) => Region::new(region.clone()),
            None => Self::default_region(&profile).await,
        };
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .profile_name(&profile)
            .region(region)
            .load()
            .await;
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| ProviderError::Auth {
                provider: config.name.clone(),
                detail: "no AWS credentials provider is configured".to_string(),
            })?;
        if let Err(err) = credentials.provide_credentials().await {
            return Err(ProviderError::Auth {
                provider: config.name.clone(),
                detail: format!(
                    "no usable AWS credentials ({}): set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, name a profile (`profile`, AWS_PROFILE), log in with \
                     `aws sso login`, or run with an instance or container role",
                    DisplayErrorContext(&err)
                ),
            });
        }
        let mut builder = SdkBuilder::from(&sdk);
        // The SDK takes Route53's endpoint from `AWS_ENDPOINT_URL_ROUTE_53`, `AWS_ENDPOINT_URL`
        // or the profile, the service's own setting first: an empty one falls back to the
        // general setting (already checked by the loader), else to Route53's own endpoint.
        let service_endpoint = sdk.service_config().and_then(|settings| {
            let key = ServiceConfigKey::builder()
                .service_id("Route 53")
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()?;
            settings.load_config(key)
        });
        if service_endpoint.is_some_and(|url| url.trim().is_empty()) {
            builder.set_endpoint_url(sdk.endpoint_url().map(str::to_string));
        }
        Ok(Self::from_sdk_config(config, builder))
    }

    /// The region from `AWS_REGION`, `AWS_DEFAULT_REGION` or `profile`, else [`DEFAULT_REGION`].
    async fn default_region(profile: &str) -> Region {
        if let Some(region) = set_var("AWS_REGION").or_else(|| set_var("AWS_DEFAULT_REGION")) {
            return Region::new(region);
        }
        let from_profile = ProfileFileRegionProvider::builder()
            .profile_name(profile)
            .build()
            .region()
            .await;
        from_profile
            .filter(|region| !region.as_ref().trim().is_empty())
            .unwrap_or_else(|| Region::from_static(DEFAULT_REGION))
    }

    /// An adapter around a client configured by the caller (an explicit endpoint, credentials or
    /// HTTP client, as tests need); `profile` and `region` of `config` are not used. Rotor's
    /// retry and timeout settings are applied on top of `sdk`.
    pub fn from_sdk_config(config: Route53Config, sdk: SdkBuilder) -> Self {
        let sdk = sdk
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .build();
        Self {
            config,
            client: Client::from_conf(sdk),
        }
    }

    fn protocol(&self, detail: String) -> ProviderError {
        ProviderError::Protocol {
            provider: self.config.name.clone(),
            detail,
        }
    }

    fn zone_not_found(&self, name: &str, detail: String) -> ProviderError {
        ProviderError::ZoneNotFound {
            provider: self.config.name.clone(),
            name: name.to_string(),
            detail,
        }
    }

    /// Maps an SDK error of `operation` (on `target`: a zone or a name) to a provider error.
    fn error<E>(&self, operation: &str, target: &str, err: SdkError<E>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.error_with(operation, target, err, |_| Vec::new())
    }

    /// As [`Self::error`], with `details_of` drawing details from the operation's own error (the
    /// messages of an `InvalidChangeBatch`).
    fn error_with<E>(
        &self,
        operation: &str,
        target: &str,
        err: SdkError<E>,
        details_of: impl FnOnce(&E) -> Vec<String>,
    ) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let provider = self.config.name.clone();
        let context = DisplayErrorContext(&err).to_string();
        match &err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let cause = service.err();
                let code = cause.code().unwrap_or_default();
                let mut detail = format!(
                    "{operation} on {target}: {} (HTTP {status})",
                    cause.code().unwrap_or("an unknown error")
                );
                let mut details: Vec<String> =
                    cause.message().map(str::to_string).into_iter().collect();
                details.extend(details_of(cause));
                if cause.code().is_none() {
                    // An answer the SDK could not parse: show what it said.
                    let body = service.raw().body().bytes().unwrap_or_default();
                    details.push(String::from_utf8_lossy(body).chars().take(1_000).collect());
                }
                for part in details {
                    detail.push_str(": ");
                    detail.push_str(&part);
                }
                if code == "NoSuchHostedZone" {
                    self.zone_not_found(target, detail)
                } else if AUTH_CODES.contains(&code) || status == 401 || status == 403 {
                    ProviderError::Auth { provider, detail }
                } else if TEMPORARY_CODES.contains(&code) || status >= 500 {
                    ProviderError::Temporary {
                        provider,
                        detail: format!("{detail} (after {MAX_ATTEMPTS} attempts)"),
                        retry_after: None,
                    }
                } else {
                    self.protocol(detail)
                }
            }
            SdkError::DispatchFailure(_) if credentials_failure(&err) => ProviderError::Auth {
                provider,
                detail: format!("{operation}: no usable AWS credentials: {context}"),
            },
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                ProviderError::Unreachable {
                    provider,
                    server: "the Route53 API".to_string(),
                    detail: format!("{operation}, {MAX_ATTEMPTS} attempts: {context}"),
                }
            }
            SdkError::ResponseError(response) if response.raw().status().is_server_error() => {
                ProviderError::Temporary {
                    provider,
                    detail: format!("{operation} on {target}: {context}"),
                    retry_after: None,
                }
            }
            _ => self.protocol(format!("{operation} on {target}: {context}")),
        }
    }

    /// The hosted zone with id `id`.
    async fn hosted_zone(&self, id: &str) -> Result<Zone, ProviderError> {
        let answer = self
            .client
            .get_hosted_zone()
            .id(id)
            .send()
            .await
            .map_err(|err| self.error("GetHostedZone", id, err))?;
        let zone = answer
            .hosted_zone()
            .ok_or_else(|| self.protocol(format!("GetHostedZone {id}: no HostedZone in answer")))?;
        Ok(zone_of(zone))
    }

    /// The hosted zones named exactly `name` that discovery may use, and the ids of private ones
    /// it skipped.
    async fn zones_named(&self, name: &str) -> Result<(Vec<Zone>, Vec<String>), ProviderError> {
        let (mut usable, mut skipped) = (Vec::new(), Vec::new());
        let mut after: Option<String> = None;
        loop {
            let page = self
                .client
                .list_hosted_zones_by_name()
                .dns_name(format!("{name}."))
                .set_hosted_zone_id(after.take())
                .send()
                .await
                .map_err(|err| self.error("ListHostedZonesByName", name, err))?;
            for found in page.hosted_zones() {
                if plan::key(found.name()) != name {
                    return Ok((usable, skipped));
                }
                let zone = zone_of(found);
                let private = found.config().is_some_and(|config| config.private_zone());
                match zone.id {
                    Some(id) if private && !self.config.private_zones => skipped.push(id),
                    _ => usable.push(zone),
                }
            }
            let next_is_same = page
                .next_dns_name()
                .is_some_and(|next| plan::key(next) == name);
            if !page.is_truncated() || !next_is_same {
                return Ok((usable, skipped));
            }
            after = page.next_hosted_zone_id().map(str::to_string);
        }
    }

    /// The one usable zone of `zones` (all named `name`), if there is exactly one.
    fn single(&self, name: &str, mut zones: Vec<Zone>) -> Result<Option<Zone>, ProviderError> {
        match zones.len() {
            0 | 1 => Ok(zones.pop()),
            _ => Err(self.protocol(format!(
                "several hosted zones are named {name} ({}): set zone_id",
                zones
                    .iter()
                    .filter_map(|zone| zone.id.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The hosted zone id of `zone`: its own, the configured one, or found by its name.
    async fn zone_id(&self, zone: &Zone) -> Result<String, ProviderError> {
        if let Some(id) = zone.id.as_ref().or(self.config.zone_id.as_ref()) {
            return Ok(bare_id(id).to_string());
        }
        let name = plan::key(&zone.name);
        let (zones, skipped) = self.zones_named(&name).await?;
        self.single(&name, zones)?
            .and_then(|zone| zone.id)
            .ok_or_else(|| self.zone_not_found(&name, not_found_detail(&skipped)))
    }

    /// The TXT sets at `name` (keyed as [`plan::key`] does), or every TXT set of the zone.
    async fn txt_sets(
        &self,
        zone_id: &str,
        name: Option<&str>,
    ) -> Result<Vec<Listed>, ProviderError> {
        let mut listed = Vec::new();
        let mut start = name.map(|name| (name.to_string(), RrType::Txt, None));
        loop {
            let mut request = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id);
            if let Some((record, kind, identifier)) = start.take() {
                request = request
                    .start_record_name(record)
                    .start_record_type(kind)
                    .set_start_record_identifier(identifier);
            }
            if name.is_some() {
                request = request.max_items(PAGE_AT_NAME);
            }
            let page = request
                .send()
                .await
                .map_err(|err| self.error("ListResourceRecordSets", zone_id, err))?;
            for set in page.resource_record_sets() {
                let is_txt = set.r#type() == &RrType::Txt;
                if let Some(name) = name
                    && (!is_txt || plan::key(set.name()) != name)
                {
                    return Ok(listed);
                }
                if is_txt {
                    listed.push(self.listed(set)?);
                }
            }
            start = match (page.is_truncated(), page.next_record_name()) {
                (true, Some(next)) => Some((
                    next.to_string(),
                    page.next_record_type().cloned().unwrap_or(RrType::Txt),
                    page.next_record_identifier().map(str::to_string),
                )),
                _ => return Ok(listed),
            };
        }
    }

    fn listed(&self, set: &ResourceRecordSet) -> Result<Listed, ProviderError> {
        let entries = set
            .resource_records()
            .iter()
            .map(|record| {
                value::decode(record.value()).map(|value| Entry {
                    text: record.value().to_string(),
                    value,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|detail| self.protocol(format!("at {}: {detail}", set.name())))?;
        let special = match (set.set_identifier(), set.alias_target(), set.ttl()) {
            (Some(identifier), _, _) => Some(format!("a routing policy (set {identifier})")),
            (None, None, Some(_)) => None,
            _ => Some("an alias or a traffic policy".to_string()),
        };
        Ok(Listed {
            name: plan::key(set.name()),
            special,
            set: TxtSet {
                ttl: set.ttl().unwrap_or_default(),
                entries,
            },
        })
    }

    /// The current TXT set at each of `names` (absent where there is none).
    async fn current_sets(
        &self,
        zone: &Zone,
        zone_id: &str,
        names: &[String],
    ) -> Result<HashMap<String, TxtSet>, ProviderError> {
        let mut listed = Vec::new();
        if names.len() <= PER_NAME_READS {
            for name in names {
                listed.extend(self.txt_sets(zone_id, Some(name)).await?);
            }
        } else {
            listed = self.txt_sets(zone_id, None).await?;
        }
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut current = HashMap::new();
        for found in listed
            .into_iter()
            .filter(|found| wanted.contains(found.name.as_str()))
        {
            if let Some(special) = found.special {
                return Err(ProviderError::Refused {
                    provider: self.config.name.clone(),
                    operation: format!("changing the TXT records at {}", found.name),
                    zone: zone.name.clone(),
                    detail: format!("they use {special}; rotor changes only plain record sets"),
                });
            }
            if current.insert(found.name.clone(), found.set).is_some() {
                return Err(self.protocol(format!(
                    "two plain TXT record sets listed at {}",
                    found.name
                )));
            }
        }
        Ok(current)
    }

    /// Sends one batch of edits; returns the change's id and status.
    async fn submit(
        &self,
        zone_id: &str,
        edits: &[Edit],
    ) -> Result<(String, ChangeStatus), ProviderError> {
        let mut changes = Vec::new();
        for edit in edits {
            let halves = [
                (ChangeAction::Delete, &edit.delete),
                (ChangeAction::Create, &edit.create),
            ];
            for (action, set) in halves {
                if let Some(set) = set {
                    changes.push(self.change(action, &edit.name, set)?);
                }
            }
        }
        let batch = ChangeBatch::builder()
            .comment(COMMENT)
            .set_changes(Some(changes))
            .build()
            .map_err(|err| self.protocol(format!("building a change batch: {err}")))?;
        let answer = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|err| {
                self.error_with(
                    "ChangeResourceRecordSets",
                    zone_id,
                    err,
                    |cause| match cause {
                        ChangeResourceRecordSetsError::InvalidChangeBatch(invalid) => {
                            invalid.messages().to_vec()
                        }
                        _ => Vec::new(),
                    },
                )
            })?;
        let info = answer.change_info().ok_or_else(|| {
            self.protocol("ChangeResourceRecordSets: no ChangeInfo in answer".to_string())
        })?;
        tracing::debug!(
            "{}: Route53 change {} for {} name(s) in zone {zone_id}: {}",
            self.config.name,
            info.id(),
            edits.len(),
            info.status()
        );
        Ok((info.id().to_string(), info.status().clone()))
    }

    fn change(
        &self,
        action: ChangeAction,
        name: &str,
        set: &TxtSet,
    ) -> Result<r53::Change, ProviderError> {
        let built = |err: aws_sdk_route53::error::BuildError| {
            self.protocol(format!("building a change for {name}: {err}"))
        };
        let records = set
            .entries
            .iter()
            .map(|entry| ResourceRecord::builder().value(&entry.text).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(built)?;
        let set = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::Txt)
            .ttl(set.ttl)
            .set_resource_records(Some(records))
            .build()
            .map_err(built)?;
        r53::Change::builder()
            .action(action)
            .resource_record_set(set)
            .build()
            .map_err(built)
    }

    /// Polls `GetChange` for each change until it is `INSYNC`, within the configured time.
    async fn wait_in_sync(
        &self,
        changes: Vec<(String, ChangeStatus)>,
    ) -> Result<(), ProviderError> {
        let deadline = Instant::now() + self.config.sync_timeout;
        for (id, mut status) in changes {
            let mut delay = FIRST_POLL;
            while status != ChangeStatus::Insync {
                let now = Instant::now();
                if now >= deadline {
                    return Err(ProviderError::Temporary {
                        provider: self.config.name.clone(),
                        detail: format!(
                            "Route53 change {id} is still {status} after {}s",
                            self.config.sync_timeout.as_secs()
                        ),
                        retry_after: None,
                    });
                }
                tokio::time::sleep(delay.min(deadline - now)).await;
                delay = (delay * 2).min(MAX_POLL);
                let answer = self
                    .client
                    .get_change()
                    .id(&id)
                    .send()
                    .await
                    .map_err(|err| self.error("GetChange", &id, err))?;
                status = answer
                    .change_info()
                    .ok_or_else(|| {
                        self.protocol(format!("GetChange {id}: no ChangeInfo in answer"))
                    })?
                    .status()
                    .clone();
                tracing::debug!("{}: Route53 change {id}: {status}", self.config.name);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DnsProvider for Route53 {
    /// The configured zone (`zone_id`), or the hosted zone whose name is the longest suffix of
    /// `fqdn`; private zones only with `private_zones`.
    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError> {
        let fqdn = plan::key(fqdn);
        if let Some(id) = &self.config.zone_id {
            let zone = self.hosted_zone(bare_id(id)).await?;
            if !dns::within(&fqdn, &zone.name) {
                return Err(self.zone_not_found(
                    &fqdn,
                    format!("the configured zone_id {id} is the zone {}", zone.name),
                ));
            }
            return Ok(zone);
        }
        let mut all_skipped = Vec::new();
        let mut candidate = fqdn.as_str();
        // Longest suffix first; a single label (a TLD) is never a hosted zone.
        while let Some((_, parent)) = candidate.split_once('.') {
            let (zones, skipped) = self.zones_named(candidate).await?;
            all_skipped.extend(skipped);
            if let Some(zone) = self.single(candidate, zones)? {
                return Ok(zone);
            }
            candidate = parent;
        }
        Err(self.zone_not_found(&fqdn, not_found_detail(&all_skipped)))
    }

    /// The values of the TXT set(s) at exactly `fqdn`, decoded string by string.
    async fn list_txt(&self, zone: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError> {
        let zone_id = self.zone_id(zone).await?;
        let listed = self.txt_sets(&zone_id, Some(&plan::key(fqdn))).await?;
        Ok(listed
            .into_iter()
            .flat_map(|found| found.set.entries)
            .map(|entry| entry.value)
            .collect())
    }

    /// Reads the current set at each name, then sends for each changed name a DELETE of the exact
    /// old set and a CREATE of the new one in the same batch (several batches only beyond
    /// Route53's limits), and waits until Route53 reports them `INSYNC`. Should a later batch
    /// fail, the earlier ones stay applied; applying the same changes again completes them (as it
    /// does when an answer was lost and the retried batch was refused because the first one had
    /// applied).
    async fn apply(&self, zone: &Zone, changes: &[Change]) -> Result<(), ProviderError> {
        if changes.is_empty() {
            return Ok(());
        }
        let zone_id = self.zone_id(zone).await?;
        let names = plan::names(changes);
        let current = self.current_sets(zone, &zone_id, &names).await?;
        let edits: Vec<Edit> = names
            .iter()
            .filter_map(|name| plan::edit(name, current.get(name), changes))
            .collect();
        let mut submitted = Vec::new();
        for batch in plan::batches(edits, plan::ROUTE53) {
            submitted.push(self.submit(&zone_id, &batch).await?);
        }
        self.wait_in_sync(submitted).await
    }

    /// Reads the hosted zone (GetHostedZone): the credentials work and may read it.
    async fn check(&self, zone: &Zone) -> Result<(), ProviderError> {
        let zone_id = self.zone_id(zone).await?;
        let found = self.hosted_zone(&zone_id).await?;
        let name = plan::key(&zone.name);
        if found.name != name {
            return Err(self.zone_not_found(
                &name,
                format!("hosted zone {zone_id} is the zone {}", found.name),
            ));
        }
        Ok(())
    }
}

/// A hosted zone as a [`Zone`]: its name keyed, its id without the `/hostedzone/` prefix.
/// The value of the environment variable `name`, unless it is unset or blank.
fn set_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

fn zone_of(zone: &r53::HostedZone) -> Zone {
    Zone {
        name: plan::key(zone.name()),
        id: Some(bare_id(zone.id()).to_string()),
    }
}

/// A hosted zone id without its `/hostedzone/` prefix.
fn bare_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

fn not_found_detail(skipped: &[String]) -> String {
    if skipped.is_empty() {
        "no hosted zone of the account holds it".to_string()
    } else {
        format!(
            "only private hosted zones hold it ({}); set private_zones to use them",
            skipped.join(", ")
        )
    }
}

/// Whether a missing or refused credential is among the causes of `err`.
fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<CredentialsError>() {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_lose_their_prefix() {
        assert_eq!(bare_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_id("Z123"), "Z123");
    }
}
