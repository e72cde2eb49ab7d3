//! The OpenAPI document (`GET /openapi.json`, `src/http/openapi.rs`) against the router and
//! against what the service really answers:
//!
//! - the `(method, path)` pairs of the `.route(...)` calls in `src/http/router.rs` and the
//!   document's operations are the same set (a route missing from either side fails);
//! - the document is structurally OpenAPI 3 (every `$ref` resolves, every operation has
//!   responses, path parameters match the template, ...) and `openapi-spec-validator` accepts
//!   it (skipped with a message when Python lacks it; `.ci/run` installs it);
//! - every documented operation is served by the real router (never the `not_found` fallback or
//!   a 405), the API key is required exactly where a security requirement is documented, and
//!   each answer, including error answers provoked on purpose, has a documented status, content
//!   type and error code, and a body that matches the documented schema.

use std::collections::BTreeSet;
use std::process::Command;

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};

use crate::common::root;
use crate::service::{DEFAULT_TOML, IDLE, Reply, Svc};
use irgan::online::settings::ServiceConfig;

/// HTTP methods an OpenAPI path item can hold, lowercase.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The shipped configuration (`config/default.toml`) with `sets` overrides.
fn config(sets: &[&str]) -> ServiceConfig {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    ServiceConfig::load(
        Some(std::path::Path::new(DEFAULT_TOML)),
        Vec::<(String, String)>::new(),
        &sets,
    )
    .unwrap_or_else(|e| panic!("config {sets:?}: {e}"))
}

/// The document a service with the shipped configuration (no API key) serves.
fn document() -> Value {
    document_with(&[])
}

/// The document a service with the shipped configuration and `sets` serves.
fn document_with(sets: &[&str]) -> Value {
    serde_json::from_str(&irgan::http::openapi::json(&config(sets))).expect("the document is JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..))` call in `src/http/router.rs`.
/// Panics on constructs it does not understand, so that the comparison cannot silently miss
/// routes: teach it the new construct (or document the route some other way) then.
fn served() -> BTreeSet<(String, String)> {
    let file = root().join("src/http/router.rs");
    let src: String = std::fs::read_to_string(&file)
        .expect("router.rs")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    for unknown in [
        ".nest(",
        ".nest_service(",
        ".route_service(",
        ".fallback_service(",
    ] {
        assert!(
            !src.contains(unknown),
            "router.rs uses `{unknown}`: tests/it/openapi.rs cannot read those routes yet"
        );
    }
    let mut routes = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = rest[at + ".route(".len()..].trim_start();
        let path_and_more = rest
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("a .route( without a literal path: {}", &rest[..40]));
        let end = path_and_more.find('"').expect("end of the path literal");
        let path = &path_and_more[..end];
        assert!(
            !path.contains('*'),
            "wildcard route {path}: not supported here"
        );
        let expr = path_and_more[end + 1..]
            .trim_start()
            .strip_prefix(',')
            .unwrap_or_else(|| panic!("route {path}: expected `, method_router`"));
        // Identifiers called at the top level of the method router: `get(..).post(..)`.
        let (mut depth, mut ident, mut methods) = (0usize, String::new(), Vec::new());
        for c in expr.chars() {
            match c {
                '(' => {
                    if depth == 0 && !ident.is_empty() {
                        methods.push(std::mem::take(&mut ident));
                    }
                    depth += 1;
                    ident.clear();
                }
                ')' if depth == 0 => break,
                ')' => {
                    depth -= 1;
                    ident.clear();
                }
                c if c.is_alphanumeric() || c == '_' => ident.push(c),
                _ => ident.clear(),
            }
        }
        assert!(!methods.is_empty(), "route {path}: no method found");
        for m in methods {
            assert!(
                METHODS.contains(&m.as_str()),
                "route {path}: unsupported method router `{m}` (teach tests/it/openapi.rs)"
            );
            routes.insert((m.to_uppercase(), path.to_owned()));
        }
        rest = expr;
    }
    routes
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_routed() {
    // The console's pages and assets (`/ui…`) are HTML for people, not API: not documented.
    let served: BTreeSet<_> = served()
        .into_iter()
        .filter(|(_, p)| p != "/ui" && !p.starts_with("/ui/"))
        .collect();
    let documented = documented(&document());
    assert!(
        served.len() >= 14,
        "the router.rs reader found only {served:?}"
    );
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served by src/http/router.rs but missing from the OpenAPI document: {undocumented:?}; \
         annotate the handler with #[utoipa::path] and list it in ApiDoc's paths(...) \
         (src/http/openapi.rs)"
    );
    assert!(
        unrouted.is_empty(),
        "in the OpenAPI document but not routed in src/http/router.rs: {unrouted:?}"
    );
    assert!(served.contains(&("GET".into(), "/openapi.json".into())));
}

/// Resolves a local `$ref` (`#/a/b`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` under `v`, with where it is.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((at.to_owned(), x.as_str().unwrap_or("").to_owned()));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Every operation: `(METHOD, path, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push((m.to_uppercase(), path.clone(), op));
            }
        }
    }
    ops
}

#[test]
fn document_is_structurally_openapi_3() {
    // Open (the shipped default) and with an API key: the security requirements differ.
    structurally_openapi_3(&document(), false);
    structurally_openapi_3(&document_with(&[&format!("server.api_key={KEY}")]), true);
}

fn structurally_openapi_3(doc: &Value, keyed: bool) {
    let doc = doc.clone();
    let version = doc["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3."), "openapi = {version}");
    assert_eq!(doc["info"]["title"], "irgan");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["info"]["description"]
            .as_str()
            .is_some_and(|d| d.len() > 100)
    );
    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(!all.is_empty());
    for (at, r) in &all {
        assert!(
            resolve(&doc, r).is_some(),
            "{at}: $ref {r:?} does not resolve"
        );
    }
    // The event types of the default config are the ones the document names.
    let defaults: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("config/default.toml")).unwrap())
            .unwrap();
    let kind = doc["components"]["schemas"]["FeedbackEvent"]["properties"]["type"]["description"]
        .as_str()
        .expect("FeedbackEvent.type description");
    let types: BTreeSet<&str> = defaults["feedback"]["types"]
        .as_table()
        .expect("types")
        .keys()
        .map(String::as_str)
        .collect();
    let listed = kind
        .split_once("default config")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or("", |(list, _)| list);
    let named: BTreeSet<&str> = listed.split('`').skip(1).step_by(2).collect();
    assert_eq!(
        named, types,
        "FeedbackEvent.type vs config/default.toml: {kind}"
    );
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"].as_str().expect("operationId");
        assert!(
            ids.insert(id.to_owned()),
            "{what}: duplicate operationId {id}"
        );
        assert!(op["summary"].is_string(), "{what}: no summary");
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{what}: no responses");
        for (status, r) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok(),
                "{what}: status {status}"
            );
            assert!(
                r["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{what} {status}: no description"
            );
            assert!(
                r["content"].as_object().is_some_and(|c| !c.is_empty()),
                "{what} {status}: no content (every answer has a body)"
            );
            if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                let d = r["description"].as_str().unwrap_or("");
                assert!(
                    d.contains("Codes: `"),
                    "{what} {status}: lists no codes: {d}"
                );
            }
        }
        for common in ["408", "503"] {
            assert!(responses.contains_key(common), "{what}: no {common}");
        }
        // Path parameters: exactly the template's, required.
        let template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{what}: path parameter {p}");
                p["name"].as_str().expect("name")
            })
            .collect();
        assert_eq!(template, declared, "{what}: path parameters");
        for p in &params {
            assert!(
                p["schema"].is_object(),
                "{what}: parameter without schema {p}"
            );
            assert!(p["description"].is_string(), "{what}: undescribed {p}");
        }
        // Security: declared schemes only; operations that need the key document 401; with no
        // key configured, they list the empty requirement `{}` (no credentials needed).
        let security = op["security"].as_array().cloned().unwrap_or_default();
        let open = security.iter().any(|r| r == &json!({}));
        for req in &security {
            for name in req.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(name), "{what}: unknown scheme {name}");
            }
        }
        assert_eq!(
            !security.is_empty() && !open,
            responses.contains_key("401"),
            "{what}: 401 documented exactly when a key is required"
        );
        if !security.is_empty() {
            assert_eq!(open, !keyed, "{what}: `{{}}` exactly when no key is set");
        }
        // Request examples match their schemas.
        if let Some(content) = op["requestBody"]["content"].as_object() {
            for (media, c) in content {
                if let Some(example) = c.get("example") {
                    let mut errors = Vec::new();
                    check(&doc, &c["schema"], example, "example", &mut errors);
                    assert!(errors.is_empty(), "{what} {media} example: {errors:#?}");
                }
            }
        }
    }
}

#[test]
fn openapi_spec_validator_accepts_the_document() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let available = Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!(
            "SKIPPED openapi_spec_validator_accepts_the_document: `{python} -c 'import \
             openapi_spec_validator'` failed; install it with `{python} -m pip install \
             openapi-spec-validator` (.ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (open, keyed) = (dir.path().join("open.json"), dir.path().join("keyed.json"));
    std::fs::write(&open, irgan::http::openapi::json(&config(&[]))).expect("write");
    let with_key = config(&[&format!("server.api_key={KEY}")]);
    std::fs::write(&keyed, irgan::http::openapi::json(&with_key)).expect("write");
    let out = Command::new(&python)
        .args(["-m", "openapi_spec_validator", "--validation-errors", "all"])
        .args([&open, &keyed])
        .output()
        .expect("run openapi_spec_validator");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects the document:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}\n{stderr}");
}

/// Checks `v` against `schema` (a schema of the document, often a `$ref`) with the `jsonschema`
/// crate, draft 2020-12 (the dialect of OpenAPI 3.1). The schema is compiled inside a root that
/// embeds the document's `components`, so `#/components/schemas/...` references resolve there
/// and nothing is fetched. Stricter than JSON Schema in two ways (see [`strict`]): an object
/// schema with `properties` and no `additionalProperties` refuses undocumented fields, so a field
/// the service sends but the document lacks is caught, and a documented integer must not be
/// written as a float (`1.0`).
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    strict(&mut root);
    let validator = jsonschema::draft202012::options()
        .with_keyword(INTEGER_LITERAL, |_, _, _| Ok(Box::new(IntegerLiteral)))
        .build(&root)
        .unwrap_or_else(|e| panic!("{at}: the schema does not compile: {e}\n{schema}"));
    errors.extend(
        validator
            .iter_errors(v)
            .map(|e| format!("{at}{}: {e}", e.instance_path())),
    );
}

/// Our keyword for "a number here is written as an integer" (see [`IntegerLiteral`]).
const INTEGER_LITERAL: &str = "x-integer-literal";

/// JSON Schema counts `1.0` as an integer; serde writes a Rust integer as `1`, so a documented
/// integer that arrives as `1.0` is a float in disguise and is refused.
struct IntegerLiteral;

impl<'i> jsonschema::Keyword<'i> for IntegerLiteral {
    fn validate(&self, v: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        if self.is_valid(v) {
            Ok(())
        } else {
            Err(jsonschema::ValidationError::custom(format!(
                "{v} is a float where the document says integer"
            )))
        }
    }

    fn is_valid(&self, v: &'i Value) -> bool {
        !v.is_number() || v.is_i64() || v.is_u64()
    }
}

/// Tightens every schema under `schema` (and the component schemas of a root), walking only the
/// keywords that hold schemas (so a property that happens to be called `properties` is not
/// mistaken for one):
/// - an object schema that lists `properties` and says nothing about other fields gets
///   `additionalProperties: false`;
/// - an `integer` type (without `number` beside it) gets [`INTEGER_LITERAL`].
fn strict(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let open =
        !map.contains_key("additionalProperties") && !map.contains_key("unevaluatedProperties");
    if open && map.get("properties").is_some_and(Value::is_object) {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    let integer = match map.get("type") {
        Some(Value::Array(types)) => {
            types.contains(&json!("integer")) && !types.contains(&json!("number"))
        }
        Some(t) => t == "integer",
        None => false,
    };
    if integer {
        map.insert(INTEGER_LITERAL.into(), Value::Bool(true));
    }
    for (keyword, sub) in map.iter_mut() {
        match keyword.as_str() {
            "properties" | "patternProperties" | "$defs" => {
                sub.as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                    .for_each(strict);
            }
            "components" => {
                let schemas = sub.get_mut("schemas").and_then(Value::as_object_mut);
                schemas
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                    .for_each(strict);
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                sub.as_array_mut().into_iter().flatten().for_each(strict);
            }
            "items" | "additionalProperties" | "not" | "if" | "then" | "else" | "contains" => {
                strict(sub);
            }
            _ => {}
        }
    }
}

#[test]
fn the_schema_check_refuses_undocumented_fields_missing_fields_and_disguised_floats() {
    let doc = document();
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let in_a_list = json!({"type": "array", "items": {"anyOf": [error_body, {"type": "null"}]}});
    let errors = |schema: &Value, v: Value| {
        let mut errors = Vec::new();
        check(&doc, schema, &v, "body", &mut errors);
        errors
    };
    let fine = json!({"code": "x", "message": "m"});
    assert_eq!(errors(&error_body, fine.clone()), Vec::<String>::new());
    assert_eq!(
        errors(&in_a_list, json!([fine, null])),
        Vec::<String>::new()
    );
    let extra = json!({"code": "x", "message": "m", "extra": 1});
    assert_eq!(errors(&error_body, extra.clone()).len(), 1);
    assert_eq!(errors(&in_a_list, json!([null, extra])).len(), 1);
    assert_eq!(errors(&error_body, json!({"code": "x"})).len(), 1);
    assert_eq!(
        errors(&error_body, json!({"code": 1, "message": "m"})).len(),
        1
    );
    let count = json!({"type": ["integer", "null"], "minimum": 0});
    assert_eq!(errors(&count, json!(3)), Vec::<String>::new());
    assert_eq!(errors(&count, json!(null)), Vec::<String>::new());
    assert_eq!(errors(&count, json!(3.0)).len(), 1);
}

/// Checks one answer of operation `(method, path)` against the document: a documented status,
/// a documented content type, a body matching the schema, and for errors a documented code.
#[track_caller]
fn conforms(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let status = reply.status.as_str();
    let Some(response) = op["responses"].get(status) else {
        panic!("{method} {path}: status {status} is not documented: {reply:?}");
    };
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content = response["content"].as_object().expect("content");
    let Some(media) = content.get(content_type) else {
        panic!(
            "{method} {path} {status}: content type {content_type:?} is not documented \
             (documented: {:?}): {reply:?}",
            content.keys().collect::<Vec<_>>()
        );
    };
    if content_type.starts_with("application/json") {
        let body = reply.json();
        let mut errors = Vec::new();
        check(doc, &media["schema"], &body, "body", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: the body does not match the documented schema: \
             {errors:#?}\n{reply:?}"
        );
        if reply.status.as_u16() >= 400
            && let Some(code) = body["code"].as_str()
        {
            let description = response["description"].as_str().unwrap_or("");
            assert!(
                description.contains(&format!("`{code}`")),
                "{method} {path} {status}: code `{code}` is not documented: {description}"
            );
        }
    } else {
        assert_eq!(
            media["schema"]["type"], "string",
            "{method} {path}: non-JSON bodies are documented as strings"
        );
    }
}

const KEY: &str = "s3cret-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_as_documented() {
    let mut sets = IDLE.to_vec();
    let key_set = format!("server.api_key={KEY}");
    sets.extend([
        key_set.as_str(),
        "server.body_limit_bytes=4096",
        "feedback.max_events_per_request=5",
    ]);
    let svc = Svc::start(&sets).await;
    let doc: Value = serde_json::from_str(&irgan::http::openapi::json(&svc.cfg)).expect("JSON");
    let bearer = format!("Bearer {KEY}");
    // The search routes answer 200 only once a search model is live: train one.
    let search = svc.state.search.clone().expect("search enabled");
    let impressions = irgan::data::letor_synth::synthetic_ltr(30, 8, 46, 3)
        .queries
        .iter()
        .map(|q| irgan::store::impression_log::Impression {
            id: None,
            query: q.qid.clone(),
            documents: (0..q.len())
                .map(|d| irgan::store::impression_log::ShownDocument {
                    id: q.doc_ids[d].clone(),
                    features: q.features.row(d).iter().map(|&v| f64::from(v)).collect(),
                    label: Some(q.labels[d]),
                    clicked: None,
                })
                .collect(),
        })
        .collect();
    search.ingest(impressions).expect("ingest");
    let start = std::time::Instant::now();
    while search.current().is_none() {
        assert!(
            start.elapsed().as_secs() < 60,
            "no search model: {:?}",
            search.info()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The served document is the one the tests read.
    let r = svc.get("/openapi.json").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, irgan::http::openapi::json(&svc.cfg));

    let mut seen = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let version = svc.version().await.to_string();
        let uri = path
            .replace("{user}", "u1")
            .replace("{item}", "i1")
            .replace("{version}", &version);
        let example = &op["requestBody"]["content"]["application/json"]["example"];
        let body = if example.is_null() {
            String::new()
        } else {
            example.to_string()
        };
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let json_ct = [("content-type", "application/json")];
        let protected = op["security"].as_array().is_some_and(|s| !s.is_empty());

        // Without the key: 401 exactly where a key is documented.
        let r = svc
            .send(m.clone(), &uri, &json_ct, Body::from(body.clone()))
            .await;
        if protected {
            r.error(401, "unauthorized");
            conforms(&doc, &method, &path, &r);
            let wrong = [("authorization", "Bearer nope")];
            svc.send(m.clone(), &uri, &wrong, Body::empty())
                .await
                .error(401, "unauthorized");
        } else {
            assert_ne!(r.status, 401, "{method} {path} is open: {r:?}");
        }

        // With the key (either header).
        let auth = if seen.len() % 2 == 0 {
            ("authorization", bearer.as_str())
        } else {
            ("x-api-key", KEY)
        };
        let r = svc
            .send(m.clone(), &uri, &[json_ct[0], auth], Body::from(body))
            .await;
        let code = serde_json::from_str::<Value>(&r.body).map(|v| v["code"].clone());
        assert!(
            !(r.status == 404 && code.is_ok_and(|c| c == "not_found")) && r.status != 405,
            "{method} {path} is documented but not routed: {r:?}"
        );
        assert!(
            r.status.is_success(),
            "{method} {path} with the documented example: {r:?}"
        );
        conforms(&doc, &method, &path, &r);
        seen.insert((method, path));
    }
    assert_eq!(seen, documented(&doc));

    // Error answers, provoked on purpose, are documented too.
    let long = format!(r#"{{"items": [{}]}}"#, vec![r#""i1""#; 2000].join(", "));
    let many: Vec<Value> = (0..6)
        .map(|i| json!({"user": "u1", "item": format!("i{i}"), "type": "click"}))
        .collect();
    let many = Value::Array(many).to_string();
    let ndjson = concat!(
        r#"{"user": "u1", "item": "i2", "type": "view"}"#,
        "\n",
        r#"{"user": 5, "item": "i2", "type": "nope"}"#,
    );
    let recs = "/v1/users/{user}/recommendations";
    let similar = "/v1/items/{item}/similar";
    let activate = "/v1/snapshots/{version}/activate";
    // (method, documented path, request URI, body, expected status)
    let cases: &[(&str, &str, &str, &str, u16)] = &[
        ("GET", recs, "/v1/users/u1/recommendations?k=0", "", 400),
        ("GET", recs, "/v1/users/u1/recommendations?model=x", "", 400),
        (
            "GET",
            recs,
            "/v1/users/u1/recommendations?explore=-1",
            "",
            400,
        ),
        ("GET", recs, "/v1/users/%FF/recommendations", "", 400),
        ("GET", recs, "/v1/users/nobody/recommendations?k=3", "", 200),
        (
            "GET",
            recs,
            "/v1/users/u2/recommendations?explore=0.5&seed=7",
            "",
            200,
        ),
        ("GET", similar, "/v1/items/nope/similar", "", 404),
        ("GET", similar, "/v1/items/i1/similar?k=x", "", 400),
        (
            "GET",
            similar,
            "/v1/items/i1/similar?model=blend&k=3",
            "",
            200,
        ),
        ("POST", "/v1/rank", "/v1/rank", "{", 400),
        ("POST", "/v1/rank", "/v1/rank", r#"{"items": []}"#, 400),
        (
            "POST",
            "/v1/rank",
            "/v1/rank",
            r#"{"items": ["i1"], "extra": 1}"#,
            400,
        ),
        (
            "POST",
            "/v1/rank",
            "/v1/rank",
            r#"{"items": ["i1", "zz"]}"#,
            200,
        ),
        ("POST", "/v1/rank", "/v1/rank", &long, 413),
        ("POST", "/v1/feedback", "/v1/feedback", "", 400),
        (
            "POST",
            "/v1/feedback",
            "/v1/feedback",
            r#"[1, {"user": "u1"}]"#,
            400,
        ),
        ("POST", "/v1/feedback", "/v1/feedback", &many, 400),
        ("POST", "/v1/feedback", "/v1/feedback", ndjson, 200),
        ("POST", "/v1/feedback", "/v1/feedback", &long, 413),
        ("POST", activate, "/v1/snapshots/abc/activate", "", 400),
        ("POST", activate, "/v1/snapshots/%FF/activate", "", 400),
        ("POST", activate, "/v1/snapshots/999999/activate", "", 404),
    ];
    for &(method, path, uri, body, want) in cases {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let r = svc
            .send(
                m,
                uri,
                &[("content-type", "application/json"), ("x-api-key", KEY)],
                Body::from(body.to_owned()),
            )
            .await;
        assert_eq!(r.status.as_u16(), want, "{r:?}");
        conforms(&doc, method, path, &r);
    }
    svc.stop().await;
}
