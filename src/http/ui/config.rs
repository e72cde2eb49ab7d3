//! The configuration page: the configuration in effect as TOML, each section under its own
//! heading, with secrets redacted.

use toml::{Table, Value};

use crate::api::ServiceConfig;
use crate::http::ui::escape;

/// What a redacted secret shows.
const REDACTED: &str = "<redacted>";

/// A key whose value is a credential: the API key and anything named like a secret.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "secret", "password", "token", "credential"]
        .iter()
        .any(|w| k.ends_with(w) || k.contains(&format!("{w}_")))
}

/// Replaces every non-empty secret string in `t` (at any depth) by [`REDACTED`]; an empty one
/// stays empty, so the page still tells "no key set" from "a key is set".
fn redact(t: &mut Table) {
    for (k, v) in t.iter_mut() {
        match v {
            Value::Table(inner) => redact(inner),
            Value::String(s) if is_secret(k) && !s.is_empty() => *s = REDACTED.into(),
            _ => {}
        }
    }
}

/// The configuration as TOML with secrets redacted.
pub fn redacted_toml(cfg: &ServiceConfig) -> String {
    let mut t = match Table::try_from(cfg) {
        Ok(t) => t,
        Err(e) => return format!("# cannot show the configuration: {e}\n"),
    };
    redact(&mut t);
    toml::to_string_pretty(&t).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
}

/// The page's body.
pub fn render(cfg: &ServiceConfig) -> String {
    let open = if cfg.server.api_key.is_empty() {
        r#"<p class="warn">No <code>server.api_key</code> is set: writes are open to anyone who can reach the server.</p>"#
    } else {
        r#"<p>Writes need <code>server.api_key</code> (redacted below).</p>"#
    };
    format!(
        r#"<h1>Configuration in effect</h1>
<p>The validated configuration the server runs with (defaults, then the file, <code>IRGAN_*</code> variables and <code>--set</code>), secrets redacted. Every key is documented in <code>config/default.toml</code>.</p>
{open}
<pre id="config" class="config">{}</pre>"#,
        escape(&redacted_toml(cfg))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_is_redacted_and_nothing_else() {
        let mut cfg = ServiceConfig::default();
        cfg.server.api_key = "hunter2-very-secret".into();
        let shown = render(&cfg);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("api_key = &quot;&lt;redacted&gt;&quot;"),
            "{shown}"
        );
        assert!(shown.contains("keep_snapshots"), "{shown}");
        assert!(
            shown.contains("gate_metric = &quot;NDCG@10&quot;"),
            "{shown}"
        );
        for (key, secret) in [
            ("api_key", true),
            ("password", true),
            ("access_token", true),
            ("secret_file", true),
            ("keep_snapshots", false),
            ("max_tokens_in", false),
            ("gate_metric", false),
        ] {
            assert_eq!(is_secret(key), secret, "{key}");
        }
    }
}
