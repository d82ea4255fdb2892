//! The PostgreSQL schema, as numbered migrations run in order on open, each once (recorded in
//! `rotor_schema`), all under one advisory lock so that instances starting together migrate
//! one after the other. Names compare byte by byte (`COLLATE "C"`), as sled orders them.
//! Records are their JSON as rotor writes it, in `text` columns (`jsonb` refuses a JSON string
//! holding a NUL, which an error from a remote server may carry; `record::jsonb` reads them).

/// The migrations: version, then the SQL that brings the schema from the version before to it.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE keys (
    domain text COLLATE "C" NOT NULL,
    selector text COLLATE "C" NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (domain, selector)
);
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    domain text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    record text NOT NULL
);
CREATE INDEX events_by_domain ON events (domain, at, id);
CREATE TABLE meta (
    name text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO meta (name, value) VALUES ('due_fingerprint', '');
CREATE TABLE due (
    domain text COLLATE "C" PRIMARY KEY,
    at bigint NOT NULL
);
CREATE INDEX due_by_time ON due (at);
CREATE TABLE reports (
    org text COLLATE "C" NOT NULL,
    report_id text COLLATE "C" NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (org, report_id)
);
CREATE TABLE dkim_days (
    domain text COLLATE "C" NOT NULL,
    selector text COLLATE "C" NOT NULL,
    day bigint NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (domain, selector, day)
);
CREATE TABLE writers (
    instance text PRIMARY KEY,
    boot_id text,
    clean boolean NOT NULL
);
"#,
    ),
    (
        2,
        r#"
CREATE SEQUENCE lease_tokens;
CREATE TABLE leases (
    domain text COLLATE "C" PRIMARY KEY,
    holder text NOT NULL,
    token bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
"#,
    ),
];

/// The version this rotor's schema is at.
pub(super) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// The advisory lock held while migrating (an arbitrary number: "rotor" in ASCII).
pub(super) const MIGRATION_LOCK: i64 = 0x0072_6f74_6f72;
