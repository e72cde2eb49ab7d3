//! The operator's console at `/ui`: four HTML pages (overview, snapshots, try it,
//! configuration) sharing one shell and nav, plus their script and style sheet, all compiled
//! into the binary. The pages are drawn in the browser from the documented JSON API (the
//! script reads `/v1/model`, `/v1/training/history`, `/v1/traffic`, ...; writes send the key
//! typed into the page as `Authorization: Bearer`), except the configuration, which is
//! rendered here with secrets redacted. Not part of the API: not in `/openapi.json`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;

mod config;

const SHELL: &str = include_str!("assets/shell.html");
const OVERVIEW: &str = include_str!("assets/overview.html");
const SNAPSHOTS: &str = include_str!("assets/snapshots.html");
const TRY: &str = include_str!("assets/try.html");
const SCRIPT: &str = include_str!("assets/console.js");
const ERRORS: &str = include_str!("assets/errors.js");
const STYLE: &str = include_str!("assets/console.css");

/// The pages in nav order: path, page id, title.
const PAGES: [(&str, &str, &str); 4] = [
    ("/ui", "overview", "Overview"),
    ("/ui/snapshots", "snapshots", "Snapshots"),
    ("/ui/try", "try", "Try it"),
    ("/ui/config", "config", "Configuration"),
];

/// Ids offered in the "try it" pickers (any id can be typed).
const SUGGESTED_IDS: usize = 50;

/// Only our own scripts, styles and API: no inline code, nothing from elsewhere.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The shell around a page's body, with the nav marking the current page.
fn page(id: &str, body: &str) -> Response {
    let title = PAGES.iter().find(|p| p.1 == id).map_or("", |p| p.2);
    let nav: String = PAGES
        .iter()
        .map(|(href, pid, t)| {
            let current = if *pid == id {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="{href}"{current}>{t}</a>"#)
        })
        .collect();
    let html = SHELL
        .replace("{{title}}", title)
        .replace("{{page}}", id)
        .replace("{{nav}}", &nav)
        .replace("{{body}}", body);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

/// `GET /ui`: live version, trainer state, the game's history and traffic.
pub async fn overview() -> Response {
    page("overview", OVERVIEW)
}

/// `GET /ui/snapshots`: versions on disk with their validation metrics; activate, publish.
pub async fn snapshots() -> Response {
    page("snapshots", SNAPSHOTS)
}

/// `<option>`s for the first [`SUGGESTED_IDS`] ids.
fn options(names: &[String]) -> String {
    names
        .iter()
        .take(SUGGESTED_IDS)
        .map(|n| format!(r#"<option value="{}"></option>"#, escape(n)))
        .collect()
}

/// `GET /ui/try`: a user's lists by G, D and the blend; similar items; search ranking.
pub async fn try_it(State(state): State<AppState>) -> Response {
    let live = state.models.current();
    let s = &live.snapshot;
    let first_user = s.users.names().first().map_or("", String::as_str);
    let first_item = s.items.names().first().map_or("", String::as_str);
    let search = &state.config.search;
    // Ids (anyone's strings) go in last, so no placeholder inside one is ever expanded.
    let body = TRY
        .replace("{{max_k}}", &state.config.server.max_k.to_string())
        .replace("{{search}}", if search.enabled { "on" } else { "off" })
        .replace("{{n_features}}", &search.n_features.to_string())
        .replace("{{first_user}}", &escape(first_user))
        .replace("{{first_item}}", &escape(first_item))
        .replace("{{users}}", &options(s.users.names()))
        .replace("{{items}}", &options(s.items.names()));
    page("try", &body)
}

/// `GET /ui/config`: the configuration in effect, secrets redacted.
pub async fn configuration(State(state): State<AppState>) -> Response {
    page("config", &config::render(&state.config))
}

/// `GET /ui/assets/{file}`: the script and the style sheet.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "errors.js" => (ERRORS, "text/javascript; charset=utf-8"),
        "console.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            // Compiled in: a new binary may change them, so revalidate often.
            (header::CACHE_CONTROL, "max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn every_page_has_the_nav_and_marks_itself() {
        for (_, id, _) in PAGES {
            let r = page(id, "<p>body</p>");
            assert_eq!(r.status(), StatusCode::OK);
            let ct = r.headers()[header::CONTENT_TYPE].to_str().unwrap_or("");
            assert!(ct.starts_with("text/html"), "{ct}");
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
        for placeholder in ["{{title}}", "{{page}}", "{{nav}}", "{{body}}"] {
            assert!(SHELL.contains(placeholder), "{placeholder}");
        }
    }
}
