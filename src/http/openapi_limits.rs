//! The limits the service enforces, written into the generated OpenAPI document from the
//! configuration in effect, so that the served contract is exact: a request the document
//! allows is accepted, one it forbids is refused (checked by schemathesis, see
//! `tests/it/schemathesis.rs`).
//!
//! The annotations (`#[utoipa::path]`, `ToSchema`) describe shapes; what depends on the
//! config (`server.max_k`, `feedback.types`, `feedback.max_events_per_request`,
//! `search.n_features`, `search.max_documents`, whether `server.api_key` is set) and a few
//! bounds utoipa cannot spell (an id's characters, integers wider than `int64`) are set here
//! on the document as JSON, by pointer. [`apply`] names every pointer it could not find, and
//! a unit test keeps that list empty.

use serde_json::{Map, Value, json};

use crate::api::ServiceConfig;
use crate::api::feedback::{MAX_ID_LEN, MAX_VALUE};
use crate::api::search::MAX_LABEL;

/// An external id as the checks take it (`char::is_control` is Unicode category Cc): 1 to
/// [`MAX_ID_LEN`] characters, none of them a control character.
fn id_schema() -> Value {
    json!({
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": format!("^[^\\x00-\\x1F\\x7F-\\x9F]{{1,{MAX_ID_LEN}}}$"),
    })
}

/// Every JSON integer that fits `u64`, the type the service parses (no `int64` format).
fn u64_schema(minimum: u64) -> Value {
    json!({"type": "integer", "minimum": minimum, "maximum": u64::MAX, "format": null})
}

/// A feature vector of the configured length, each value a finite `f32`.
fn features_schema(n: usize) -> Value {
    let max = f64::from(f32::MAX);
    json!({
        "minItems": n,
        "maxItems": n,
        "items": {"type": "number", "minimum": -max, "maximum": max},
    })
}

/// Sets the limits of `cfg` on `doc` (the document as JSON); returns the pointers that were
/// not found (empty unless the annotations changed under this module).
pub fn apply(doc: &mut Value, cfg: &ServiceConfig) -> Vec<String> {
    let mut p = Patcher {
        doc,
        missing: Vec::new(),
    };
    let k = json!({"minimum": 1, "maximum": cfg.server.max_k});
    for path in [
        "/v1/users/{user}/recommendations",
        "/v1/items/{item}/similar",
    ] {
        p.param(path, "get", "k", &k);
    }
    let recs = "/v1/users/{user}/recommendations";
    p.param(recs, "get", "user", &json!({"minLength": 1}));
    p.param(recs, "get", "seed", &u64_schema(0));
    p.param(
        "/v1/items/{item}/similar",
        "get",
        "item",
        &json!({"minLength": 1}),
    );
    p.param(
        "/v1/snapshots/{version}/activate",
        "post",
        "version",
        &u64_schema(1),
    );

    let s = "/components/schemas";
    let candidates = cfg.server.max_k.max(crate::api::queries::MAX_CANDIDATES);
    p.merge(
        &format!("{s}/RankIn/properties/items"),
        &json!({"minItems": 1, "maxItems": candidates}),
    );

    // Feedback events.
    p.merge(&format!("{s}/ExternalId/oneOf/0"), &id_schema());
    p.merge(
        &format!("{s}/ExternalId/oneOf/1"),
        &json!({"minimum": i64::MIN, "maximum": u64::MAX, "format": null}),
    );
    let types: Vec<&str> = cfg.feedback.types.keys().map(String::as_str).collect();
    p.merge(
        &format!("{s}/FeedbackEvent/properties/type"),
        &json!({"enum": types}),
    );
    p.merge(
        &format!("{s}/FeedbackEvent/properties/value"),
        &json!({"minimum": -MAX_VALUE, "maximum": MAX_VALUE}),
    );
    // A batch is stored when at least one event is valid; the others are rejected one by one
    // (listed in `rejected`), so an array's items may be anything that `contains` one event.
    let events = json!({
        "minItems": 1,
        "maxItems": cfg.feedback.max_events_per_request,
        "items": {},
        "contains": {"$ref": "#/components/schemas/FeedbackEvent"},
    });
    p.merge(&format!("{s}/FeedbackBatch/oneOf/1"), &events);
    p.merge(
        "/paths/~1v1~1feedback/post/requestBody/content/application~1x-ndjson/schema",
        &events,
    );

    // Search.
    let docs = json!({"minItems": 1, "maxItems": cfg.search.max_documents});
    for (schema, field) in [
        ("RankRequest", "query"),
        ("Impression", "query"),
        ("Impression", "id"),
        ("CandidateDocument", "id"),
        ("ShownDocument", "id"),
    ] {
        p.merge(&format!("{s}/{schema}/properties/{field}"), &id_schema());
    }
    for schema in ["RankRequest", "Impression"] {
        p.merge(&format!("{s}/{schema}/properties/documents"), &docs);
    }
    for schema in ["CandidateDocument", "ShownDocument"] {
        p.merge(
            &format!("{s}/{schema}/properties/features"),
            &features_schema(cfg.search.n_features),
        );
    }
    p.merge(
        &format!("{s}/RankRequest/properties/k"),
        &json!({"minimum": 1, "maximum": usize::MAX, "format": null}),
    );
    p.merge(
        &format!("{s}/ShownDocument/properties/label"),
        &json!({"minimum": 0, "maximum": MAX_LABEL, "format": null}),
    );
    p.merge(
        &format!("{s}/ImpressionBatch/oneOf/1"),
        &json!({"minItems": 1}),
    );

    if cfg.server.api_key.is_empty() {
        open_writes(p.doc);
    }
    p.missing
}

/// With no `server.api_key`, the write and admin operations take any credentials or none:
/// each lists the empty requirement `{}` first (OpenAPI's "no authentication") and has no
/// 401, which it never answers.
fn open_writes(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in op.values_mut().filter_map(Value::as_object_mut) {
            let Some(Value::Array(security)) = op.get_mut("security") else {
                continue;
            };
            if security.is_empty() {
                continue;
            }
            security.insert(0, json!({}));
            if let Some(Value::Object(responses)) = op.get_mut("responses") {
                responses.remove("401");
            }
        }
    }
}

/// Merges JSON objects into the document at JSON pointers, remembering misses.
struct Patcher<'a> {
    doc: &'a mut Value,
    missing: Vec<String>,
}

impl Patcher<'_> {
    /// Merges `with`'s keys into the object at `pointer` (a `null` value removes the key).
    fn merge(&mut self, pointer: &str, with: &Value) {
        match self.doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            Some(target) => merge_into(target, with),
            None => self.missing.push(pointer.to_owned()),
        }
    }

    /// Merges into the schema of parameter `name` of operation `method path`.
    fn param(&mut self, path: &str, method: &str, name: &str, with: &Value) {
        let at = format!("/paths/{}/{method}/parameters", escape(path));
        let index = self
            .doc
            .pointer(&at)
            .and_then(Value::as_array)
            .and_then(|ps| ps.iter().position(|p| p["name"] == name));
        match index {
            Some(i) => self.merge(&format!("{at}/{i}/schema"), with),
            None => self.missing.push(format!("{at} ({name})")),
        }
    }
}

fn merge_into(target: &mut Map<String, Value>, with: &Value) {
    for (k, v) in with.as_object().into_iter().flatten() {
        if v.is_null() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
}

/// A path as one JSON pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sets: &[&str]) -> ServiceConfig {
        let defaults = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
        ServiceConfig::load(
            Some(std::path::Path::new(defaults)),
            Vec::<(String, String)>::new(),
            &sets.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn document(cfg: &ServiceConfig) -> Value {
        let mut doc = serde_json::to_value(crate::http::openapi::document()).unwrap();
        let missing = apply(&mut doc, cfg);
        assert!(missing.is_empty(), "not in the document: {missing:?}");
        doc
    }

    #[test]
    fn every_limit_finds_its_place_and_comes_from_the_config() {
        let cfg = config(&[
            "server.max_k=77",
            "search.n_features=5",
            "feedback.max_events_per_request=9",
        ]);
        let doc = document(&cfg);
        let k = &doc["paths"]["/v1/users/{user}/recommendations"]["get"]["parameters"][1];
        assert_eq!(k["name"], "k");
        assert_eq!(k["schema"]["maximum"], 77);
        let s = &doc["components"]["schemas"];
        assert_eq!(
            s["CandidateDocument"]["properties"]["features"]["maxItems"],
            5
        );
        assert_eq!(s["FeedbackBatch"]["oneOf"][1]["maxItems"], 9);
        assert_eq!(s["RankIn"]["properties"]["items"]["maxItems"], 10_000);
        assert_eq!(
            s["FeedbackEvent"]["properties"]["type"]["enum"],
            json!(["click", "dislike", "import", "like", "purchase", "view"])
        );
    }

    #[test]
    fn writes_are_declared_open_exactly_when_no_key_is_set() {
        let feedback = |doc: &Value| doc["paths"]["/v1/feedback"]["post"].clone();
        let open = feedback(&document(&config(&[])));
        assert_eq!(open["security"][0], json!({}));
        assert!(open["responses"].get("401").is_none());
        let keyed = feedback(&document(&config(&["server.api_key=k"])));
        assert!(
            keyed["security"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r != &json!({}))
        );
        assert!(keyed["responses"].get("401").is_some());
    }
}
