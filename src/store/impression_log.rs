//! The durable log of search impressions: a shown list of documents (id and feature vector)
//! for a query, with the user's clicks or an assessor's relevance labels.
//!
//! One SQLite file (`search.sqlite3`, WAL, `synchronous = FULL`): a request's impressions are
//! appended in one transaction, so when [`ImpressionLog::append`] returns they survive a crash.
//! An impression with an `id` that is already logged is acknowledged as a duplicate and not
//! stored again. Sequence numbers are gap-free and increase with acknowledgement order.
//!
//! With `storage.backend = "nats"` the log is a JetStream stream instead
//! ([`crate::store::nats::NatsImpressionLog`]); both sit behind
//! [`crate::store::backend::ImpressionStore`].

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Schema version of the impression log (SQLite `user_version`).
const SCHEMA_VERSION: i64 = 1;

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum ImpressionLogError {
    /// An SQLite operation failed.
    #[error("impression log {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// An impression could not be encoded as JSON for its row.
    #[error("impression log encoding an impression: {0}")]
    Encode(#[source] serde_json::Error),
    /// The file was written by a build with another schema version.
    #[error("impression log {path}: schema version {found}, this build reads {supported}")]
    UnsupportedVersion {
        /// The database file.
        path: String,
        /// Version found in `user_version`.
        found: i64,
        /// Version this build reads.
        supported: i64,
    },
    /// The shared log (NATS) failed or did not answer.
    #[error("impression log: {0}")]
    Remote(String),
}

/// One shown document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShownDocument {
    /// Caller's document id.
    pub id: String,
    /// Its feature vector (checked to fit f32 before it is logged).
    pub features: Vec<f64>,
    /// Graded relevance judgement (takes precedence over `clicked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u8>,
    /// Whether the user clicked it (a click is relevance 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clicked: Option<bool>,
}

impl ShownDocument {
    /// The relevance the trainer learns: the judgement, else 1 for a click, else 0.
    pub fn relevance(&self) -> u8 {
        self.label
            .unwrap_or(u8::from(self.clicked.unwrap_or(false)))
    }
}

/// One impression: a query and the documents shown for it, in display order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Impression {
    /// Idempotency key (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The query id.
    pub query: String,
    /// The shown documents.
    pub documents: Vec<ShownDocument>,
}

/// An impression as read back, with its log position.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedImpression {
    /// Position in the log (1-based, gap-free).
    pub seq: u64,
    /// The impression.
    pub impression: Impression,
    /// A repeat of an id stored at a lower seq (possible only in a log whose deduplication
    /// has a time window, like JetStream's): the trainer advances past it without training on
    /// it. Never set by the SQLite log, whose ids are unique.
    pub repeat: bool,
}

/// The outcome of appending one impression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its log position (the earlier one for a duplicate).
    pub seq: u64,
    /// True when its id was already logged.
    pub duplicate: bool,
}

/// The log; cheap to clone (clones share one connection).
#[derive(Clone)]
pub struct ImpressionLog {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for ImpressionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImpressionLog").finish_non_exhaustive()
    }
}

fn ctx<T>(r: rusqlite::Result<T>, context: &str) -> Result<T, ImpressionLogError> {
    r.map_err(|source| ImpressionLogError::Sqlite {
        context: context.into(),
        source,
    })
}

impl ImpressionLog {
    /// Opens (creating if needed) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, ImpressionLogError> {
        let conn = ctx(Connection::open(path), &path.display().to_string())?;
        ctx(
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS impressions (
                     seq INTEGER PRIMARY KEY,
                     id TEXT UNIQUE,
                     body TEXT NOT NULL
                 );",
            ),
            "creating the schema",
        )?;
        // The schema version lives in SQLite's user_version: 0 = just created, ours = 1.
        let version: i64 = ctx(
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)),
            "reading the schema version",
        )?;
        match version {
            0 => ctx(
                conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};")),
                "writing the schema version",
            )?,
            SCHEMA_VERSION => {}
            other => {
                return Err(ImpressionLogError::UnsupportedVersion {
                    path: path.display().to_string(),
                    found: other,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Appends impressions in one durable transaction; returns one outcome per impression.
    pub fn append(&self, impressions: &[Impression]) -> Result<Vec<Appended>, ImpressionLogError> {
        let mut conn = self.conn.lock();
        let tx = ctx(conn.transaction(), "begin")?;
        let mut out = Vec::with_capacity(impressions.len());
        {
            let mut find = ctx(
                tx.prepare_cached("SELECT seq FROM impressions WHERE id = ?1"),
                "prepare",
            )?;
            let mut insert = ctx(
                tx.prepare_cached("INSERT INTO impressions (id, body) VALUES (?1, ?2)"),
                "prepare",
            )?;
            for imp in impressions {
                if let Some(id) = &imp.id {
                    let seen: Option<i64> = ctx(
                        find.query_row(params![id], |r| r.get(0)).optional(),
                        "lookup",
                    )?;
                    if let Some(seq) = seen {
                        out.push(Appended {
                            seq: seq as u64,
                            duplicate: true,
                        });
                        continue;
                    }
                }
                let body = serde_json::to_string(imp).map_err(ImpressionLogError::Encode)?;
                ctx(insert.execute(params![imp.id, body]), "insert")?;
                out.push(Appended {
                    seq: tx.last_insert_rowid() as u64,
                    duplicate: false,
                });
            }
        }
        ctx(tx.commit(), "commit")?;
        Ok(out)
    }

    /// Up to `limit` impressions with `seq > after`, in order.
    pub fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedImpression>, ImpressionLogError> {
        let conn = self.conn.lock();
        let mut stmt = ctx(
            conn.prepare_cached(
                "SELECT seq, body FROM impressions WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            ),
            "prepare",
        )?;
        let rows = ctx(
            stmt.query_map(params![after as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            }),
            "read",
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = ctx(row, "read")?;
            // Bodies are written by `append` only; an unreadable one is skipped, not fatal.
            if let Ok(impression) = serde_json::from_str(&body) {
                out.push(LoggedImpression {
                    seq: seq as u64,
                    impression,
                    repeat: false,
                });
            }
        }
        Ok(out)
    }

    /// Impressions logged.
    pub fn count(&self) -> Result<u64, ImpressionLogError> {
        let conn = self.conn.lock();
        let n: i64 = ctx(
            conn.query_row("SELECT COUNT(*) FROM impressions", [], |r| r.get(0)),
            "count",
        )?;
        Ok(n as u64)
    }

    /// Whether an impression with idempotency key `id` is logged.
    pub fn contains_id(&self, id: &str) -> Result<bool, ImpressionLogError> {
        let conn = self.conn.lock();
        let seen: Option<i64> = ctx(
            conn.query_row(
                "SELECT seq FROM impressions WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional(),
            "lookup",
        )?;
        Ok(seen.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(id: Option<&str>, q: &str) -> Impression {
        Impression {
            id: id.map(str::to_owned),
            query: q.into(),
            documents: vec![ShownDocument {
                id: "d".into(),
                features: vec![0.5, 1.0],
                label: None,
                clicked: Some(true),
            }],
        }
    }

    #[test]
    fn appends_durably_dedups_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search.sqlite3");
        let log = ImpressionLog::open(&path).unwrap();
        let a = log
            .append(&[imp(Some("a"), "q1"), imp(None, "q2"), imp(Some("a"), "q3")])
            .unwrap();
        assert_eq!(
            a.iter().map(|x| (x.seq, x.duplicate)).collect::<Vec<_>>(),
            vec![(1, false), (2, false), (1, true)]
        );
        drop(log);
        let log = ImpressionLog::open(&path).unwrap();
        assert_eq!(log.count().unwrap(), 2);
        assert!(log.contains_id("a").unwrap() && !log.contains_id("b").unwrap());
        let back = log.read_after(1, 10).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].impression, imp(None, "q2"));
        assert_eq!(back[0].impression.documents[0].relevance(), 1);
        drop(log);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 7;").unwrap();
        drop(conn);
        let e = ImpressionLog::open(&path).unwrap_err().to_string();
        assert!(e.contains("schema version 7"), "{e}");
    }
}
