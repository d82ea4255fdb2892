//! What a DMARC aggregate report says of DKIM: per signing domain and selector, how many
//! messages passed, failed, or had another result. Both RFC 7489 and RFC 9990 (DMARCbis)
//! reports, read by `mail-auth`: as XML, gzip or zip files, or a message carrying one.

use std::io::{Cursor, Read};

use mail_auth::report::{DkimResult, Report};

/// One (domain, selector) of a report: how many messages had each result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectorCount {
    /// The signing domain (`d=`), lowercase.
    pub domain: String,
    /// The selector (`s=`), lowercase.
    pub selector: String,
    /// Messages whose signature passed.
    pub pass: u64,
    /// Messages whose signature failed.
    pub fail: u64,
    /// Messages with another result (none, neutral, policy, temperror, permerror).
    pub other: u64,
}

/// A report, as rotor keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The reporting organisation.
    pub org: String,
    /// Its report id (with `org`, what makes a report the same report).
    pub report_id: String,
    /// The reporting period's start (Unix seconds).
    pub begin: u64,
    /// The period's end.
    pub end: u64,
    /// The domain whose policy the report is about.
    pub policy_domain: String,
    /// DKIM results by signing domain and selector.
    pub selectors: Vec<SelectorCount>,
}

/// Reads one report from `bytes` (XML, gzip, zip, or a message), decompressing at most `max`
/// bytes; why not, otherwise.
pub fn parse(bytes: &[u8], max: usize) -> Result<Summary, String> {
    let report = if bytes.starts_with(&[0x1f, 0x8b]) {
        let xml = capped(mail_auth::flate2::read::GzDecoder::new(bytes), max)?;
        Report::parse_xml(&xml)
    } else if bytes.starts_with(b"PK\x03\x04") {
        Report::parse_xml(&unzip(bytes, max)?)
    } else if looks_like_xml(bytes) {
        Report::parse_xml(bytes)
    } else {
        Report::parse_rfc5322(bytes, max).map_err(|err| match err {
            mail_auth::report::Error::MailParseError => "not a mail message".to_string(),
            mail_auth::report::Error::ReportParseError(err) => format!("not a DMARC report: {err}"),
            mail_auth::report::Error::UncompressError(err) => {
                format!("its attachment does not decompress: {err}")
            }
            mail_auth::report::Error::ReportTooLarge => {
                format!("its report decompresses to more than {max} bytes")
            }
            mail_auth::report::Error::NoReportsFound => {
                "a message without a DMARC report attached".to_string()
            }
        })
    }
    .map_err(|err| {
        if err.starts_with("not a") || err.starts_with("its ") || err.starts_with("a message") {
            err
        } else {
            format!("not a DMARC report: {err}")
        }
    })?;
    summarize(&report)
}

fn looks_like_xml(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0xef && *b != 0xbb && *b != 0xbf)
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"<")
}

/// All of `reader`, or an error once it gives more than `max` bytes.
fn capped(reader: impl Read, max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|err| format!("does not decompress: {err}"))?;
    if out.len() > max {
        return Err(format!("decompresses to more than {max} bytes"));
    }
    Ok(out)
}

/// The one XML file of a zip archive.
fn unzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut archive = mail_auth::zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| format!("not a zip archive: {err}"))?;
    if archive.len() != 1 {
        return Err(format!(
            "a zip archive of {} files, not one report",
            archive.len()
        ));
    }
    let file = archive
        .by_index(0)
        .map_err(|err| format!("does not unzip: {err}"))?;
    if file.size() > max as u64 {
        return Err(format!("decompresses to more than {max} bytes"));
    }
    capped(file, max)
}

fn summarize(report: &Report) -> Result<Summary, String> {
    let report_id = report.report_id().trim();
    let org = report.org_name().trim();
    if report_id.is_empty() || org.is_empty() {
        return Err("a report without an organisation or a report id".into());
    }
    let mut selectors: Vec<SelectorCount> = Vec::new();
    for record in report.records() {
        let count = u64::from(record.count());
        for result in record.dkim_auth_result() {
            let domain = result
                .domain()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let selector = result.selector().trim().to_ascii_lowercase();
            if domain.is_empty() || selector.is_empty() {
                continue;
            }
            let index = match selectors
                .iter()
                .position(|s| s.domain == domain && s.selector == selector)
            {
                Some(index) => index,
                None => {
                    selectors.push(SelectorCount {
                        domain,
                        selector,
                        ..SelectorCount::default()
                    });
                    selectors.len() - 1
                }
            };
            let counts = &mut selectors[index];
            match result.result() {
                DkimResult::Pass => counts.pass += count,
                DkimResult::Fail => counts.fail += count,
                _ => counts.other += count,
            }
        }
    }
    Ok(Summary {
        org: org.to_string(),
        report_id: report_id.to_string(),
        begin: report.date_range_begin(),
        end: report.date_range_end(),
        policy_domain: report.domain().trim().to_ascii_lowercase(),
        selectors,
    })
}

#[cfg(test)]
mod tests;
