//! `rotor check` of a monitored domain's DMARC record: does its `rua=` reach a mailbox rotor
//! reads, is an address in another domain authorized to receive its reports (RFC 7489 §7.1,
//! `<domain>._report._dmarc.<host>`), and does DKIM alignment (`adkim=`) hold for the `d=`
//! rotor signs with.

/// What a DMARC record says that matters here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dmarc {
    /// The `rua=` addresses (`mailto:` URIs, without the scheme and any `!size` suffix).
    pub rua: Vec<String>,
    /// `adkim=`: strict (`s`) or relaxed (`r`, the default).
    pub strict_dkim: bool,
}

/// Reads a DMARC record (`v=DMARC1; p=…; rua=mailto:…`); `None` if it is not one.
pub fn parse(record: &str) -> Option<Dmarc> {
    let mut tags = record
        .split(';')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .filter_map(|tag| tag.split_once('='))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()));
    let (name, version) = tags.next()?;
    if name != "v" || !version.eq_ignore_ascii_case("DMARC1") {
        return None;
    }
    let mut dmarc = Dmarc {
        rua: Vec::new(),
        strict_dkim: false,
    };
    for (name, value) in tags {
        match name.as_str() {
            "rua" => {
                dmarc.rua = value
                    .split(',')
                    .filter_map(|uri| {
                        let uri = uri.trim();
                        let address = uri
                            .strip_prefix("mailto:")
                            .or_else(|| uri.strip_prefix("MAILTO:"))?;
                        let address = address.split('!').next().unwrap_or_default();
                        Some(address.trim().to_ascii_lowercase())
                    })
                    .filter(|address| address.contains('@'))
                    .collect();
            }
            "adkim" => dmarc.strict_dkim = value.eq_ignore_ascii_case("s"),
            _ => {}
        }
    }
    Some(dmarc)
}

/// The domain of an address.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, domain)| domain)
}

/// Whether reports for `domain` sent to `address` need an authorization record at the
/// address's domain: the address is not in `domain` or below it.
pub fn needs_authorization(domain: &str, address: &str) -> bool {
    let host = domain_of(address)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    !(host == domain || host.ends_with(&format!(".{domain}")))
}

/// The name of the record that authorizes `host` to receive `domain`'s reports.
pub fn authorization_name(domain: &str, address: &str) -> String {
    format!(
        "{}._report._dmarc.{}",
        domain.trim_end_matches('.'),
        domain_of(address)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rua_addresses_and_alignment_are_read() {
        let record = "v=DMARC1; p=reject; rua=mailto:DMARC@example.com!10m, mailto:r@reports.example.net, https://x; adkim=s";
        assert_eq!(
            parse(record),
            Some(Dmarc {
                rua: vec!["dmarc@example.com".into(), "r@reports.example.net".into()],
                strict_dkim: true,
            })
        );
        assert_eq!(parse("v=DMARC1; p=none").unwrap().rua, Vec::<String>::new());
        assert!(!parse("v=DMARC1;p=none").unwrap().strict_dkim);
        assert_eq!(parse("v=spf1 -all"), None);
        assert_eq!(parse("p=none; v=DMARC1"), None, "v= must come first");
    }

    #[test]
    fn only_addresses_outside_the_domain_need_authorization() {
        assert!(!needs_authorization("example.com", "dmarc@example.com"));
        assert!(!needs_authorization("example.com", "d@mail.example.com"));
        assert!(needs_authorization("example.com", "r@reports.example.net"));
        assert!(needs_authorization("example.com", "r@badexample.com"));
        assert_eq!(
            authorization_name("example.com", "r@reports.example.net"),
            "example.com._report._dmarc.reports.example.net"
        );
    }
}
