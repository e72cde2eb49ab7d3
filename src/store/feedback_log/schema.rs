//! The feedback log's SQLite schema: the tables and statements, opening connections, creating or
//! recognising a log, and mapping rows back to events.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use super::error::{LogError, SqlContext};
use super::events::{FeedbackEvent, LoggedEvent};

/// Value of the `format` key in the `meta` table.
pub const FORMAT: &str = "irgan-feedback-log";
/// The `schema_version` this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How long a connection waits for a lock held by another connection (e.g. a `sqlite3` shell or
/// a second process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const CREATE_SCHEMA: &str = "
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT UNIQUE,
    user          TEXT NOT NULL,
    item          TEXT NOT NULL,
    type          TEXT NOT NULL,
    value         REAL,
    timestamp_ms  INTEGER,
    acked_unix_ms INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
";

pub(super) const INSERT_EVENT: &str = "INSERT INTO events (id, user, item, type, value, timestamp_ms, \
                            acked_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(super) const FIND_BY_ID: &str = "SELECT seq FROM events WHERE id = ?1";
pub(super) const SELECT_EVENTS: &str = "SELECT seq, id, user, item, type, value, timestamp_ms, acked_unix_ms \
                             FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// Opens a connection with the busy timeout set.
pub(super) fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, LogError> {
    let conn =
        Connection::open_with_flags(path, flags).ctx(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx(|| format!("{}: setting the busy timeout", path.display()))?;
    Ok(conn)
}

/// Opens a read connection to an existing log (refuses writes).
pub(super) fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
    let conn = open_connection(path, flags)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .ctx(|| format!("{}: opening a read connection", path.display()))?;
    Ok(conn)
}

/// Creates the schema in an empty database, or checks that an existing one is a log this build
/// reads.
pub(super) fn init_schema(conn: &mut Connection, path: &Path) -> Result<(), LogError> {
    let ctx = || format!("{}: checking the schema", path.display());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(ctx)?;
    let tables: Vec<String> = {
        let mut stmt = tx
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
            .ctx(ctx)?;
        stmt.query_map([], |r| r.get(0))
            .ctx(ctx)?
            .collect::<rusqlite::Result<_>>()
            .ctx(ctx)?
    };
    let not_a_log = |reason: String| LogError::NotALog {
        path: path.to_owned(),
        reason,
    };
    if tables.is_empty() {
        tx.execute_batch(CREATE_SCHEMA).ctx(ctx)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('format', ?1), ('schema_version', ?2)",
            params![FORMAT, SCHEMA_VERSION.to_string()],
        )
        .ctx(ctx)?;
        return tx.commit().ctx(ctx);
    }
    if !tables.iter().any(|t| t == "meta") {
        return Err(not_a_log(format!(
            "no `meta` table; tables: {}",
            tables.join(", ")
        )));
    }
    let meta = |key: &str| -> Result<Option<String>, LogError> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ctx(ctx)
            .map(Option::flatten)
    };
    let format = meta("format")?;
    if format.as_deref() != Some(FORMAT) {
        return Err(not_a_log(format!("meta format is {format:?}")));
    }
    let version = meta("schema_version")?.unwrap_or_default();
    if version != SCHEMA_VERSION.to_string() {
        return Err(LogError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if !tables.iter().any(|t| t == "events") {
        return Err(not_a_log("no `events` table".into()));
    }
    tx.commit().ctx(ctx)
}

/// Maps a `seq, id, user, item, type, value, timestamp_ms, acked_unix_ms` row.
pub(super) fn logged_event(r: &Row<'_>) -> rusqlite::Result<LoggedEvent> {
    Ok(LoggedEvent {
        seq: to_u64(r.get(0)?),
        acked_unix_ms: to_u64(r.get(7)?),
        event: FeedbackEvent {
            id: r.get(1)?,
            user: r.get(2)?,
            item: r.get(3)?,
            kind: r.get(4)?,
            value: r.get(5)?,
            timestamp_ms: r.get(6)?,
        },
        repeat: false,
    })
}

/// Sequence numbers and ack times are never negative; clamps defensively.
pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
