//! DMARC aggregate reports for the tests, as receivers send them: RFC 7489 or RFC 9990 XML,
//! gzip or zip, or attached (base64) to a report message.

use std::io::Write;

use base64::Engine;

/// Which schema a report follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 7489 Appendix C (no namespace, `<pct>`).
    Rfc7489,
    /// RFC 9990 (DMARCbis: namespace, `<version>`, `<np>`, `<testing>`, no `<pct>`).
    Rfc9990,
}

/// One row of a report: `count` messages whose DKIM signature `d=domain s=selector` had
/// `result` (`pass`, `fail`, `neutral`…).
pub struct Row<'a> {
    /// The signing domain.
    pub domain: &'a str,
    /// The selector.
    pub selector: &'a str,
    /// The DKIM result.
    pub result: &'a str,
    /// How many messages.
    pub count: u32,
}

/// A report from `org` with id `id` for `domain`, covering the day that starts at `begin`.
pub fn report(
    format: Format,
    org: &str,
    id: &str,
    domain: &str,
    begin: u64,
    rows: &[Row],
) -> String {
    let end = begin + 86_399;
    let records: String = rows
        .iter()
        .map(|row| {
            format!(
                "  <record>
    <row><source_ip>192.0.2.25</source_ip><count>{count}</count>
      <policy_evaluated><disposition>none</disposition><dkim>{result}</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results>
      <dkim><domain>{d}</domain><selector>{s}</selector><result>{result}</result></dkim>
      <spf><domain>{domain}</domain><result>pass</result></spf>
    </auth_results>
  </record>
",
                count = row.count,
                result = row.result,
                d = row.domain,
                s = row.selector,
            )
        })
        .collect();
    match format {
        Format::Rfc7489 => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>
<feedback>
  <report_metadata>
    <org_name>{org}</org_name><email>noreply-dmarc@{org}</email><report_id>{id}</report_id>
    <date_range><begin>{begin}</begin><end>{end}</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
{records}</feedback>
"
        ),
        Format::Rfc9990 => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">
  <version>1.0</version>
  <report_metadata>
    <org_name>{org}</org_name><email>dmarc@{org}</email><report_id>{id}</report_id>
    <date_range><begin>{begin}</begin><end>{end}</end></date_range>
    <generator>rotor-testkit</generator>
  </report_metadata>
  <policy_published>
    <domain>{domain}</domain><p>reject</p><np>quarantine</np>
    <discovery_method>treewalk</discovery_method><testing>n</testing>
  </policy_published>
{records}</feedback>
"
        ),
    }
}

/// `bytes` gzipped.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `bytes` as the one file `name` of a zip archive.
pub fn zip(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    archive
        .start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    archive.write_all(bytes).unwrap();
    archive.finish().unwrap().into_inner()
}

/// A report message from `org` to `to` carrying `attachment` (named `name`, of MIME type
/// `content_type`, base64).
pub fn message(org: &str, to: &str, name: &str, content_type: &str, attachment: &[u8]) -> Vec<u8> {
    let body = base64::engine::general_purpose::STANDARD.encode(attachment);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(76)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "From: noreply-dmarc@{org}\r\nTo: {to}\r\nSubject: Report Domain: example.com Submitter: {org}\r\n\
         Date: Tue, 01 Dec 2026 00:00:00 +0000\r\nMessage-ID: <{name}@{org}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         This is a DMARC aggregate report.\r\n--b1\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}
