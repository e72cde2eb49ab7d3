//! The API key that guards write and admin operations on both transports.

use subtle::ConstantTimeEq;

use crate::api::Error;

/// Checks the credentials a request presented against `server.api_key` in constant time:
/// `x_api_key` (the `X-API-Key` header or `x-api-key` metadata) or `authorization`
/// (`Bearer KEY`). An empty configured key lets everything through. The key is never logged.
pub fn check(key: &str, x_api_key: Option<&str>, authorization: Option<&str>) -> Result<(), Error> {
    let key = key.as_bytes();
    if key.is_empty() {
        return Ok(());
    }
    let given = x_api_key
        .or_else(|| authorization.and_then(|v| v.strip_prefix("Bearer ")))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(key)) {
        Ok(())
    } else {
        Err(Error::unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check("", None, None).is_ok());
        assert!(check("k", Some("k"), None).is_ok());
        assert!(check("k", None, Some("Bearer k")).is_ok());
        for (x, a) in [
            (None, None),
            (Some(""), None),
            (Some("k "), None),
            (None, Some("k")),
            (None, Some("Basic k")),
            (None, Some("Bearer kk")),
        ] {
            assert_eq!(check("k", x, a).unwrap_err().code.as_str(), "unauthorized");
        }
    }
}
