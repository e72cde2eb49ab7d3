//! The query string of a read route, decoded without building a map: a handful of keys are
//! looked up once per request, so the pairs stay borrowed from the URI unless they hold escapes.

use std::borrow::Cow;

use axum::http::Uri;
use percent_encoding::percent_decode;

use crate::api::ErrorCode;
use crate::http::error::ApiError;

/// The decoded `key=value` pairs of a request's query string, in order.
#[derive(Debug, Default)]
pub struct QueryString<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> QueryString<'a> {
    /// Decodes `uri`'s query (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a
    /// byte). A key or value that is not UTF-8 once decoded is a 400 `invalid_query`.
    pub fn of(uri: &'a Uri) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for pair in uri.query().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Self { pairs })
    }

    /// The value of `key`; the last one when it is given more than once.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The value of `key` parsed as `T`; a value that does not parse is a 400
    /// `invalid_parameter` naming the key.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|v| {
                v.parse::<T>().map_err(|e| {
                    ApiError::bad_request(ErrorCode::InvalidParameter, format!("{key}: {e}"))
                })
            })
            .transpose()
    }
}

/// One form-encoded component, borrowed when it holds no escape.
fn decode(s: &str) -> Result<Cow<'_, str>, ApiError> {
    if !s.contains(['%', '+']) {
        return Ok(Cow::Borrowed(s));
    }
    let spaced = s.replace('+', " ");
    let bytes: Vec<u8> = percent_decode(spaced.as_bytes()).collect();
    String::from_utf8(bytes).map(Cow::Owned).map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("the query string component {s:?} is not UTF-8 once decoded"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn decodes_escapes_and_keeps_plain_pairs_borrowed() {
        let u = uri("/x?k=20&model=blend&name=a+b%2Bc&flag&=v&&empty=");
        let q = QueryString::of(&u).unwrap();
        assert_eq!(q.get("k"), Some("20"));
        assert_eq!(q.get("model"), Some("blend"));
        assert_eq!(q.get("name"), Some("a b+c"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get(""), Some("v"));
        assert_eq!(q.get("missing"), None);
        assert!(matches!(q.pairs[0].1, Cow::Borrowed(_)));
        assert!(matches!(q.pairs[2].1, Cow::Owned(_)));
    }

    #[test]
    fn the_last_of_a_repeated_key_wins() {
        let u = uri("/x?k=1&k=2");
        assert_eq!(QueryString::of(&u).unwrap().get("k"), Some("2"));
        let none = uri("/x");
        assert_eq!(QueryString::of(&none).unwrap().get("k"), None);
    }

    #[test]
    fn parses_values_and_names_the_key_that_does_not() {
        let u = uri("/x?k=20&explore=abc");
        let q = QueryString::of(&u).unwrap();
        assert_eq!(q.parse::<usize>("k").unwrap(), Some(20));
        assert_eq!(q.parse::<usize>("seed").unwrap(), None);
        let e = q.parse::<f64>("explore").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
        assert!(e.message.contains("explore"), "{}", e.message);
    }

    #[test]
    fn a_component_that_is_not_utf8_is_an_invalid_query() {
        let u = uri("/x?k=%FF%FE");
        assert_eq!(
            QueryString::of(&u).unwrap_err().code,
            ErrorCode::InvalidQuery
        );
    }
}
