//! One battery (`support/battery.rs`) run by every signer adapter, each against its real signer
//! or its documented format: stage, switch, two domains never share a file, other domains
//! untouched, a failed reload restores everything, clean removes only what rotor put there.

mod support;

use support::battery::run;

#[test]
fn opendkim() {
    run(support::opendkim::start);
}

#[test]
fn rspamd() {
    run(support::rspamd::start);
}

#[test]
fn exim() {
    run(support::exim::start);
}

#[test]
fn kumomta() {
    run(support::kumomta::start);
}

#[test]
fn files() {
    run(support::files::start);
}
