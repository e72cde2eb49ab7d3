//! The `[nats]` section: where the JetStream server is, how to authenticate, and the names and
//! replica counts of the stream and buckets the service shares.

use serde::{Deserialize, Serialize};

/// Settings of the NATS JetStream backend (`storage.backend = "nats"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated (`nats://host:4222`, `tls://host:4222`).
    pub url: String,
    /// A `.creds` file (JWT and NKey seed) to authenticate with (empty = none).
    pub credentials_file: String,
    /// A token to authenticate with (empty = none).
    pub token: String,
    /// PEM file of the CA that signs the server's certificate (empty = the system's roots).
    pub tls_ca_file: String,
    /// Require TLS even for a `nats://` URL.
    pub tls_required: bool,
    /// Seconds to wait for the first connection.
    pub connect_timeout_seconds: f64,
    /// Stream of feedback events (file storage).
    pub stream: String,
    /// Subject feedback events are published on (the stream's only subject).
    pub subject: String,
    /// Stream of search impressions (file storage, `replicas`, the same duplicate window).
    pub search_stream: String,
    /// Subject search impressions are published on (the search stream's only subject; the
    /// impression id is the message id).
    pub search_subject: String,
    /// Object store bucket of snapshots (one object per file of a snapshot directory).
    pub snapshot_bucket: String,
    /// Key-value bucket of the live snapshot pointer (its history is the rollback list).
    pub pointer_bucket: String,
    /// Key-value bucket of the trainer's lease.
    pub lease_bucket: String,
    /// Replicas of the stream and of every bucket (1, or 3 on a 3-node cluster).
    pub replicas: usize,
    /// JetStream's duplicate window in seconds: a repeated event id within it is reported as a
    /// duplicate at once; beyond it the trainer skips the repeat when folding.
    pub duplicate_window_seconds: f64,
    /// Seconds a trainer's lease lasts without renewal; a standby takes over after it lapses.
    pub lease_ttl_seconds: f64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            credentials_file: String::new(),
            token: String::new(),
            tls_ca_file: String::new(),
            tls_required: false,
            connect_timeout_seconds: 5.0,
            stream: "IRGAN_FEEDBACK".into(),
            subject: "irgan.feedback".into(),
            search_stream: "IRGAN_SEARCH".into(),
            search_subject: "irgan.search".into(),
            snapshot_bucket: "irgan-snapshots".into(),
            pointer_bucket: "irgan-live".into(),
            lease_bucket: "irgan-lease".into(),
            replicas: 1,
            duplicate_window_seconds: 120.0,
            lease_ttl_seconds: 10.0,
        }
    }
}

impl NatsConfig {
    /// Checks the values; the message names the key (under `nats.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.url.trim().is_empty() {
            return Err(("url", "must name at least one server".into()));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(("replicas", "must be 1 to 5".into()));
        }
        for (key, v) in [
            ("duplicate_window_seconds", self.duplicate_window_seconds),
            ("lease_ttl_seconds", self.lease_ttl_seconds),
            ("connect_timeout_seconds", self.connect_timeout_seconds),
        ] {
            if !(v.is_finite() && (0.5..=86_400.0).contains(&v)) {
                return Err((key, "must be between 0.5 and 86400 seconds".into()));
            }
        }
        for (key, v) in [
            ("stream", &self.stream),
            ("search_stream", &self.search_stream),
            ("snapshot_bucket", &self.snapshot_bucket),
            ("pointer_bucket", &self.pointer_bucket),
            ("lease_bucket", &self.lease_bucket),
        ] {
            let ok = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err((key, "must be letters, digits, '-' or '_'".into()));
            }
        }
        for (key, v) in [
            ("subject", &self.subject),
            ("search_subject", &self.search_subject),
        ] {
            let ok = !v.is_empty()
                && !v.starts_with('.')
                && !v.ends_with('.')
                && !v.chars().any(|c| c.is_whitespace() || c == '*' || c == '>');
            if !ok {
                return Err((key, "must be a subject without spaces or wildcards".into()));
            }
        }
        // Feedback and impressions are two streams, each with its own subject.
        if self.stream == self.search_stream {
            return Err(("search_stream", "must differ from nats.stream".into()));
        }
        if self.subject == self.search_subject {
            return Err(("search_subject", "must differ from nats.subject".into()));
        }
        Ok(())
    }
}
