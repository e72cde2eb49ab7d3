//! Checks on what callers send to the search task (query and document ids, feature vectors,
//! labels), each failure a stable code and a message naming the field.

use std::collections::HashSet;

use crate::data::letor::MAX_LABEL;
use crate::online::search::{SearchError, SearchFailure};
use crate::online::search_settings::SearchServiceConfig;
use crate::store::impression_log::Impression;

/// Longest accepted query or document id, in characters (as JSON Schema's `maxLength`).
const MAX_ID_LEN: usize = 256;

/// Finite and representable as a finite `f32` (models compute in f32).
fn fits_f32(v: f64) -> bool {
    v.is_finite() && v.abs() <= f64::from(f32::MAX)
}

/// A feature row as the models take it.
pub fn row_f32(features: &[f64]) -> Vec<f32> {
    features.iter().map(|&v| v as f32).collect()
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {MAX_ID_LEN} characters, none a control character"
        ));
    }
    Ok(())
}

/// Checks a query id.
pub fn check_query(query: &str) -> Result<(), SearchError> {
    check_id(query)
        .map_err(|m| SearchError::invalid(SearchFailure::InvalidQuery, format!("`query` {m}")))
}

/// Checks a list of `(id, features)`: not empty, not too long, ids valid and distinct, every
/// vector of the configured length with finite f32 values.
pub fn check_documents<'a>(
    cfg: &SearchServiceConfig,
    docs: impl ExactSizeIterator<Item = (&'a str, &'a [f64])>,
) -> Result<(), SearchError> {
    if docs.len() == 0 {
        return Err(SearchError::invalid(
            SearchFailure::EmptyDocuments,
            "`documents` must not be empty",
        ));
    }
    if docs.len() > cfg.max_documents {
        return Err(SearchError::invalid(
            SearchFailure::TooManyDocuments,
            format!(
                "{} documents; at most {} per list",
                docs.len(),
                cfg.max_documents
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (n, (id, features)) in docs.enumerate() {
        check_id(id).map_err(|m| {
            SearchError::invalid(
                SearchFailure::InvalidDocumentId,
                format!("documents[{n}].id {m}"),
            )
        })?;
        if !seen.insert(id) {
            return Err(SearchError::invalid(
                SearchFailure::DuplicateDocument,
                format!("documents[{n}]: id {id:?} appears twice"),
            ));
        }
        if features.len() != cfg.n_features {
            return Err(SearchError::invalid(
                SearchFailure::FeatureLength,
                format!(
                    "documents[{n}] ({id:?}) has {} features; this service expects {}",
                    features.len(),
                    cfg.n_features
                ),
            ));
        }
        if let Some(f) = features.iter().position(|v| !fits_f32(*v)) {
            return Err(SearchError::invalid(
                SearchFailure::NonFiniteFeature,
                format!("documents[{n}] ({id:?}) feature {f} is not a finite 32-bit number"),
            ));
        }
    }
    Ok(())
}

/// Checks one impression: its ids, its documents and their labels.
pub fn check_impression(cfg: &SearchServiceConfig, imp: &Impression) -> Result<(), SearchError> {
    check_query(&imp.query)?;
    if let Some(id) = &imp.id {
        check_id(id)
            .map_err(|m| SearchError::invalid(SearchFailure::InvalidId, format!("`id` {m}")))?;
    }
    check_documents(
        cfg,
        imp.documents
            .iter()
            .map(|d| (d.id.as_str(), d.features.as_slice())),
    )?;
    if let Some((n, d)) = imp
        .documents
        .iter()
        .enumerate()
        .find(|(_, d)| d.label.is_some_and(|l| l > MAX_LABEL))
    {
        return Err(SearchError::invalid(
            SearchFailure::InvalidLabel,
            format!(
                "documents[{n}] ({:?}) label must be in 0..={MAX_LABEL}",
                d.id
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_features_are_checked() {
        let cfg = SearchServiceConfig {
            n_features: 2,
            ..Default::default()
        };
        let ok = [1.0, 2.0];
        let check = |docs: &[(&str, &[f64])]| {
            check_documents(&cfg, docs.iter().map(|&(i, f)| (i, f)))
                .err()
                .map(|e| e.code)
        };
        assert_eq!(check(&[("a", &ok)]), None);
        assert_eq!(check(&[]), Some(SearchFailure::EmptyDocuments));
        assert_eq!(
            check(&[("a", &ok), ("a", &ok)]),
            Some(SearchFailure::DuplicateDocument)
        );
        assert_eq!(check(&[("", &ok)]), Some(SearchFailure::InvalidDocumentId));
        assert_eq!(check(&[("a", &[1.0])]), Some(SearchFailure::FeatureLength));
        assert_eq!(
            check(&[("a", &[1.0, 1e39])]),
            Some(SearchFailure::NonFiniteFeature)
        );
        assert!(check_query("q\n").is_err());
    }
}
