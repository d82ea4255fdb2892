//! `type: imap`: reports read from an IMAP mailbox (the `rua=` address's), over TLS; processed
//! messages are moved to `processed:` or flagged `\Seen`.

mod settings;

pub use settings::ImapSettings;
