//! Reading the log: tailing by sequence number, counts, and the JSON Lines export. Reads use their
//! own connection and see only committed events.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::FeedbackLog;
use super::error::{LogError, SqlContext};
use super::events::LoggedEvent;
use super::schema::{SELECT_EVENTS, logged_event, open_reader, to_u64};

impl FeedbackLog {
    /// Events with `seq > after`, in order, at most `limit` of them.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.reader();
        let ctx = || format!("{}: reading events", self.inner.path.display());
        let mut stmt = conn.prepare_cached(SELECT_EVENTS).ctx(ctx)?;
        let rows = stmt
            .query_map(params![after, limit], logged_event)
            .ctx(ctx)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(ctx)
    }

    /// Whether an event with idempotency key `id` is in the log (an index lookup).
    pub fn contains_id(&self, id: &str) -> Result<bool, LogError> {
        let found: Option<i64> = self
            .reader()
            .query_row("SELECT seq FROM events WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .ctx(|| format!("{}: looking up an event id", self.inner.path.display()))?;
        Ok(found.is_some())
    }

    /// Highest committed seq (0 for an empty log); equals [`count`](Self::count) since sequence
    /// numbers have no gaps.
    pub fn last_seq(&self) -> Result<u64, LogError> {
        let seq: i64 = self
            .reader()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .ctx(|| format!("{}: reading the last seq", self.inner.path.display()))?;
        Ok(to_u64(seq))
    }

    /// Number of committed events (a full count: O(n) in the size of the log).
    pub fn count(&self) -> Result<u64, LogError> {
        let n: i64 = self
            .reader()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .ctx(|| format!("{}: counting events", self.inner.path.display()))?;
        Ok(to_u64(n))
    }

    /// Writes every event as one JSON object per line ([`LoggedEvent`] serialisation: `seq`,
    /// `acked_unix_ms` and the event's fields, `kind` as `type`), in seq order; returns the
    /// count.
    ///
    /// Reads a consistent snapshot through its own connection, so appends and other reads are
    /// not held up. Output is buffered internally and flushed before returning.
    pub fn export_jsonl(&self, out: &mut dyn Write) -> Result<u64, LogError> {
        let path = &self.inner.path;
        let ctx = || format!("{}: exporting events", path.display());
        let conn = open_reader(path)?;
        let mut stmt = conn
            .prepare(
                "SELECT seq, id, user, item, type, value, timestamp_ms, acked_unix_ms \
                 FROM events ORDER BY seq",
            )
            .ctx(ctx)?;
        let mut rows = stmt.query([]).ctx(ctx)?;
        let mut out = BufWriter::new(out);
        let io_err = |e: io::Error| LogError::Io {
            context: "writing the JSONL export".into(),
            source: Arc::new(e),
        };
        let mut n = 0u64;
        while let Some(row) = rows.next().ctx(ctx)? {
            let event = logged_event(row).ctx(ctx)?;
            serde_json::to_writer(&mut out, &event).map_err(|e| io_err(e.into()))?;
            out.write_all(b"\n").map_err(io_err)?;
            n += 1;
        }
        out.flush().map_err(io_err)?;
        Ok(n)
    }
}
