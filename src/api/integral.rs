//! Integers as JSON Schema counts them: `18` and `18.0` are both the integer 18, so a request
//! field documented as an integer accepts either (serde's integer types refuse `18.0`).

use serde::de::{Deserialize, Deserializer, Error};

/// An optional non-negative integer field that fits `T`, written as `18` or `18.0`.
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            // Whole and within 2^53, where every integer is exact (serde_json also reads an
            // integer literal beyond 64 bits as a float: that one is refused).
            .filter(|f| f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(f))
            .map(|f| f as u64)
    });
    whole
        .and_then(|u| T::try_from(u).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!("expected a non-negative integer in range, got {n}"))
        })
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct X {
        #[serde(default, deserialize_with = "super::option")]
        v: Option<u8>,
    }

    #[test]
    fn whole_floats_are_integers() {
        let v = |s: &str| serde_json::from_str::<X>(s).map(|x| x.v).ok();
        assert_eq!(v(r#"{"v": 18}"#), Some(Some(18)));
        assert_eq!(v(r#"{"v": 18.0}"#), Some(Some(18)));
        assert_eq!(v(r#"{"v": null}"#), Some(None));
        assert_eq!(v("{}"), Some(None));
        assert_eq!(v(r#"{"v": 18.5}"#), None);
        assert_eq!(v(r#"{"v": 256}"#), None);
        assert_eq!(v(r#"{"v": -1}"#), None);
    }
}
