//! Reports in both formats, compressed and attached, and what is refused.

use rotor_testkit::dmarc::{Format, Row, gzip, message, report, zip};

use super::*;

const DAY: u64 = 1_764_547_200; // 2025-12-01T00:00:00Z

fn rows() -> Vec<Row<'static>> {
    vec![
        Row {
            domain: "example.com",
            selector: "new",
            result: "pass",
            count: 7,
        },
        Row {
            domain: "example.com",
            selector: "new",
            result: "fail",
            count: 1,
        },
        Row {
            domain: "Example.COM",
            selector: "OLD",
            result: "neutral",
            count: 2,
        },
    ]
}

fn expected(org: &str, id: &str) -> Summary {
    Summary {
        org: org.into(),
        report_id: id.into(),
        begin: DAY,
        end: DAY + 86_399,
        policy_domain: "example.com".into(),
        selectors: vec![
            SelectorCount {
                domain: "example.com".into(),
                selector: "new".into(),
                pass: 7,
                fail: 1,
                other: 0,
            },
            SelectorCount {
                domain: "example.com".into(),
                selector: "old".into(),
                pass: 0,
                fail: 0,
                other: 2,
            },
        ],
    }
}

#[test]
fn both_formats_as_xml_gzip_zip_and_attachments_give_the_same_counts() {
    for format in [Format::Rfc7489, Format::Rfc9990] {
        let xml = report(format, "google.com", "r1", "example.com", DAY, &rows());
        let want = expected("google.com", "r1");
        assert_eq!(
            parse(xml.as_bytes(), 1 << 20),
            Ok(want.clone()),
            "{format:?} xml"
        );
        assert_eq!(
            parse(&gzip(xml.as_bytes()), 1 << 20),
            Ok(want.clone()),
            "{format:?} gz"
        );
        let zipped = zip("r1.xml", xml.as_bytes());
        assert_eq!(parse(&zipped, 1 << 20), Ok(want.clone()), "{format:?} zip");
        for (name, kind, bytes) in [
            ("r1.xml.gz", "application/gzip", gzip(xml.as_bytes())),
            ("r1.zip", "application/zip", zipped.clone()),
            ("r1.xml", "text/xml", xml.clone().into_bytes()),
        ] {
            let mail = message("google.com", "dmarc@example.com", name, kind, &bytes);
            assert_eq!(parse(&mail, 1 << 20), Ok(want.clone()), "{format:?} {name}");
        }
    }
}

#[test]
fn oversized_malformed_and_empty_reports_are_refused_with_the_reason() {
    let xml = report(Format::Rfc9990, "o", "r", "example.com", DAY, &rows());
    let bomb = gzip(&vec![b' '; 4 << 20]);
    let err = parse(&bomb, 1 << 20).unwrap_err();
    assert!(err.contains("more than 1048576 bytes"), "{err}");
    let mail = message("o", "d@example.com", "r.xml.gz", "application/gzip", &bomb);
    let err = parse(&mail, 1 << 20).unwrap_err();
    assert!(err.contains("more than"), "{err}");
    let err = parse(&gzip(xml.as_bytes())[..40], 1 << 20).unwrap_err();
    assert!(err.contains("decompress"), "{err}");
    let err = parse(b"<feedback><broken", 1 << 20).unwrap_err();
    assert!(err.starts_with("not a DMARC report"), "{err}");
    let err = parse(b"Subject: hello\r\n\r\njust text\r\n", 1 << 20).unwrap_err();
    assert!(err.contains("without a DMARC report"), "{err}");
    let no_id = xml.replace("<report_id>r</report_id>", "<report_id></report_id>");
    let err = parse(no_id.as_bytes(), 1 << 20).unwrap_err();
    assert!(err.contains("report id"), "{err}");
    let mut two = mail_auth::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["a.xml", "b.xml"] {
        two.start_file(name, mail_auth::zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut two, xml.as_bytes()).unwrap();
    }
    let two = two.finish().unwrap().into_inner();
    let err = parse(&two, 1 << 20).unwrap_err();
    assert!(err.contains("2 files"), "{err}");
}
