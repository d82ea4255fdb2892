//! Route53 on moto_server (moto's emulation of the API), started on loopback.

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use rotor_providers::DnsProvider;
use rotor_providers::route53::Route53;
use rotor_testkit::{free_port, join_quoted};

use super::Backend;
use super::route53_support::{Calls, Moto, adapter, create_zone, sdk_config};

/// moto, its zones example.com and example.org, and the adapter pointed at it.
pub struct Route53Backend {
    _moto: Moto,
    client: Client,
    adapter: Route53,
    zones: Vec<(String, String)>,
}

/// Runs `future` to completion from synchronous code inside the tests' runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

impl Route53Backend {
    /// Starts moto with hosted zones example.com and example.org.
    pub async fn start() -> Self {
        let moto = Moto::start();
        let client = moto.client();
        let mut zones = Vec::new();
        for name in ["example.com", "example.org"] {
            zones.push((
                name.to_string(),
                create_zone(&client, &format!("{name}."), false).await,
            ));
        }
        let adapter = moto.adapter(&Calls::default());
        Self {
            _moto: moto,
            client,
            adapter,
            zones,
        }
    }

    fn zone_id(&self, name: &str) -> &str {
        let (_, id) = self
            .zones
            .iter()
            .find(|(zone, _)| name.ends_with(zone.as_str()))
            .expect("a name in a test zone");
        id
    }

    /// The TXT values (Route53's text) at `name`, and their TTL.
    async fn set(&self, name: &str) -> (Vec<String>, i64) {
        let answer = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(self.zone_id(name))
            .start_record_name(name)
            .start_record_type(RrType::Txt)
            .max_items(1)
            .send()
            .await
            .unwrap();
        answer
            .resource_record_sets()
            .iter()
            .find(|set| set.name().trim_end_matches('.') == name && set.r#type() == &RrType::Txt)
            .map(|set| {
                (
                    set.resource_records()
                        .iter()
                        .map(|r| r.value().to_string())
                        .collect(),
                    set.ttl().unwrap_or(300),
                )
            })
            .unwrap_or_default()
    }
}

impl Backend for Route53Backend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        None
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        let nowhere = format!("http://127.0.0.1:{}", free_port());
        Box::new(adapter(sdk_config().endpoint_url(nowhere)))
    }

    fn plant(&self, name: &str, value: &str) {
        block_on(async {
            let (mut values, ttl) = self.set(name).await;
            let quoted = value
                .as_bytes()
                .chunks(255)
                .map(|c| {
                    format!(
                        "\"{}\"",
                        String::from_utf8_lossy(c)
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                    )
                })
                .collect::<Vec<_>>()
                .join(" ");
            values.push(quoted);
            let records = values
                .iter()
                .map(|v| ResourceRecord::builder().value(v).build().unwrap())
                .collect();
            let set = ResourceRecordSet::builder()
                .name(name)
                .r#type(RrType::Txt)
                .ttl(ttl)
                .set_resource_records(Some(records))
                .build()
                .unwrap();
            let change = Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(set)
                .build()
                .unwrap();
            self.client
                .change_resource_record_sets()
                .hosted_zone_id(self.zone_id(name))
                .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
                .send()
                .await
                .unwrap();
        });
    }

    fn stored(&self, name: &str) -> Vec<String> {
        block_on(self.set(name))
            .0
            .iter()
            .map(|v| join_quoted(v))
            .collect()
    }
}
