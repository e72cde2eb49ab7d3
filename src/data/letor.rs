//! LETOR / SVMlight ranking files: `label qid:Q i:v i:v ... # comment`, grouped by query.
//!
//! Features may be sparse (missing indices are 0) or dense; indices are 1-based as in the files
//! and stored 0-based. A document id is taken from a `docid = X` comment when there is one (as in
//! LETOR 4.0), else it is `"{qid}:{n}"` with `n` the document's position in its query.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use ndarray::Array2;

use crate::data::error::DataError;
use crate::rng;

/// Largest relevance label accepted (keeps the gain 2^label - 1 exact in f64).
pub const MAX_LABEL: u8 = 31;

/// Largest feature index accepted (guards against a typo allocating gigabytes).
pub const MAX_FEATURES: usize = 1 << 16;

/// Why a ranking file could not be read: the data layer's one error type.
pub type LtrError = DataError;

/// One query: its candidate documents' feature rows and relevance labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The query id as written in the file.
    pub qid: String,
    /// One row per document.
    pub features: Array2<f32>,
    /// Graded relevance per document (0 = not relevant).
    pub labels: Vec<u8>,
    /// Document ids, in row order.
    pub doc_ids: Vec<String>,
}

impl Query {
    /// Documents in this query.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the query has no documents.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// True when at least one document is relevant (label > 0).
    pub fn has_relevant(&self) -> bool {
        self.labels.iter().any(|&l| l > 0)
    }
}

/// A set of queries with a common feature dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct LtrData {
    /// Queries in first-appearance order.
    pub queries: Vec<Query>,
    /// Features per document.
    pub n_features: usize,
}

impl LtrData {
    /// Documents over all queries.
    pub fn n_docs(&self) -> usize {
        self.queries.iter().map(Query::len).sum()
    }

    /// Splits off a `fraction` of the queries (chosen by `seed`) as validation data; the rest is
    /// returned first. Query order inside each part is kept.
    pub fn split_queries(self, fraction: f64, seed: u64) -> (LtrData, LtrData) {
        let n = self.queries.len();
        let mut order: Vec<usize> = (0..n).collect();
        rng::shuffle(&mut rng::stream(seed, STREAM_SPLIT, 0), &mut order);
        let n_val = ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1));
        let mut is_val = vec![false; n];
        for &q in &order[..n_val] {
            is_val[q] = true;
        }
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (q, query) in self.queries.into_iter().enumerate() {
            if is_val[q] { &mut val } else { &mut train }.push(query);
        }
        let f = self.n_features;
        (
            LtrData {
                queries: train,
                n_features: f,
            },
            LtrData {
                queries: val,
                n_features: f,
            },
        )
    }

    /// Pads every query's feature rows with zero columns up to `n_features` (a sparse file whose
    /// highest index is below the model's dimension).
    pub fn widen(&mut self, n_features: usize) {
        if n_features <= self.n_features {
            return;
        }
        for q in &mut self.queries {
            let mut wide = Array2::zeros((q.len(), n_features));
            wide.slice_mut(ndarray::s![.., ..self.n_features])
                .assign(&q.features);
            q.features = wide;
        }
        self.n_features = n_features;
    }
}

/// Random stream tag of the query split.
const STREAM_SPLIT: u64 = 0x5e_a2c4;

/// One parsed document line.
struct Doc {
    query: usize,
    label: u8,
    features: Vec<(usize, f32)>,
    doc_id: Option<String>,
}

/// Reads a LETOR/SVMlight file. `n_features` fixes the dimension (an index above it is an
/// error); `None` takes the highest index in the file.
pub fn read_letor(path: &Path, n_features: Option<usize>) -> Result<LtrData, LtrError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_letor(BufReader::new(file), path, n_features)
}

/// Parses LETOR/SVMlight text from any reader; `path` only names the source in errors.
pub fn parse_letor(
    reader: impl BufRead,
    path: &Path,
    n_features: Option<usize>,
) -> Result<LtrData, LtrError> {
    let limit = n_features.unwrap_or(MAX_FEATURES);
    let mut qids: Vec<String> = Vec::new();
    let mut by_qid: HashMap<String, usize> = HashMap::new();
    let mut docs: Vec<Doc> = Vec::new();
    let mut width = n_features.unwrap_or(0);
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        let err = |message: String| DataError::Parse {
            path: path.to_owned(),
            line: n + 1,
            message,
        };
        let (body, comment) = match line.split_once('#') {
            Some((b, c)) => (b, Some(c)),
            None => (line.as_str(), None),
        };
        let mut tokens = body.split_whitespace();
        let Some(label_tok) = tokens.next() else {
            continue; // blank or comment-only line
        };
        let label = parse_label(label_tok).map_err(&err)?;
        let qid = tokens
            .next()
            .and_then(|t| t.strip_prefix("qid:"))
            .filter(|q| !q.is_empty())
            .ok_or_else(|| err("expected `qid:<id>` after the label".into()))?;
        let mut features = Vec::new();
        let mut last = 0usize;
        for tok in tokens {
            let (i, v) = tok
                .split_once(':')
                .ok_or_else(|| err(format!("expected `index:value`, found `{tok}`")))?;
            let i: usize = i
                .parse()
                .map_err(|_| err(format!("feature index `{i}` is not a positive integer")))?;
            if i == 0 || i <= last {
                return Err(err(format!(
                    "feature indices must start at 1 and increase (found {i} after {last})"
                )));
            }
            if i > limit {
                return Err(err(format!(
                    "feature index {i} exceeds the dimension {limit}"
                )));
            }
            let v: f32 = v
                .parse()
                .map_err(|_| err(format!("feature {i}: `{v}` is not a number")))?;
            if !v.is_finite() {
                return Err(err(format!("feature {i} is not finite")));
            }
            last = i;
            features.push((i - 1, v));
        }
        width = width.max(last);
        let query = *by_qid.entry(qid.to_owned()).or_insert_with(|| {
            qids.push(qid.to_owned());
            qids.len() - 1
        });
        docs.push(Doc {
            query,
            label,
            features,
            doc_id: comment.and_then(doc_id_of),
        });
    }
    if docs.is_empty() {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(assemble(qids, docs, width))
}

fn parse_label(tok: &str) -> Result<u8, String> {
    let v: f64 = tok
        .parse()
        .map_err(|_| format!("label `{tok}` is not a number"))?;
    if v.fract() != 0.0 || !(0.0..=f64::from(MAX_LABEL)).contains(&v) {
        return Err(format!(
            "label `{tok}` must be an integer in 0..={MAX_LABEL}"
        ));
    }
    Ok(v as u8)
}

/// `docid = GX008-86-4444840 inc = 1 prob = 0.08` → `GX008-86-4444840`.
fn doc_id_of(comment: &str) -> Option<String> {
    let mut it = comment.split_whitespace();
    while let Some(tok) = it.next() {
        if tok == "docid" {
            let next = it.next()?;
            let id = if next == "=" { it.next()? } else { next };
            return Some(id.to_owned());
        }
        if let Some(id) = tok.strip_prefix("docid=").filter(|s| !s.is_empty()) {
            return Some(id.to_owned());
        }
    }
    None
}

fn assemble(qids: Vec<String>, docs: Vec<Doc>, width: usize) -> LtrData {
    let mut sizes = vec![0usize; qids.len()];
    for d in &docs {
        sizes[d.query] += 1;
    }
    let mut queries: Vec<Query> = qids
        .into_iter()
        .zip(&sizes)
        .map(|(qid, &n)| Query {
            qid,
            features: Array2::zeros((n, width)),
            labels: Vec::with_capacity(n),
            doc_ids: Vec::with_capacity(n),
        })
        .collect();
    for d in docs {
        let q = &mut queries[d.query];
        let row = q.labels.len();
        for (i, v) in d.features {
            q.features[[row, i]] = v;
        }
        q.labels.push(d.label);
        let id = d.doc_id.unwrap_or_else(|| format!("{}:{row}", q.qid));
        q.doc_ids.push(id);
    }
    LtrData {
        queries,
        n_features: width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, n: Option<usize>) -> Result<LtrData, LtrError> {
        parse_letor(text.as_bytes(), Path::new("t.txt"), n)
    }

    #[test]
    fn groups_by_query_sparse_and_dense() {
        let d = parse(
            "2 qid:7 1:0.5 3:1 # docid = A inc = 1\n\
             0 qid:7 2:0.25\n\
             \n\
             # a comment line\n\
             1 qid:9 1:1 2:2 3:3 #docid=C\n\
             0 qid:7 1:-1\n",
            None,
        )
        .unwrap();
        assert_eq!(d.n_features, 3);
        assert_eq!(d.queries.len(), 2);
        let q = &d.queries[0];
        assert_eq!(q.qid, "7");
        assert_eq!(q.labels, vec![2, 0, 0]);
        assert_eq!(q.doc_ids, vec!["A", "7:1", "7:2"]);
        assert_eq!(q.features.row(0).to_vec(), vec![0.5, 0.0, 1.0]);
        assert_eq!(q.features.row(1).to_vec(), vec![0.0, 0.25, 0.0]);
        assert_eq!(q.features.row(2).to_vec(), vec![-1.0, 0.0, 0.0]);
        assert_eq!(d.queries[1].doc_ids, vec!["C"]);
        assert_eq!(d.n_docs(), 4);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("1 qid:1 1:0\nx qid:1 1:0\n", "t.txt:2: label `x`"),
            ("1 1:0\n", "t.txt:1: expected `qid:"),
            ("1 qid:1 2:0 1:0\n", "must start at 1 and increase"),
            ("1 qid:1 0:1\n", "must start at 1"),
            ("1 qid:1 1:abc\n", "`abc` is not a number"),
            ("1 qid:1 1:NaN\n", "not finite"),
            ("1 qid:1 1:inf\n", "not finite"),
            ("1.5 qid:1 1:0\n", "must be an integer"),
            ("-1 qid:1 1:0\n", "must be an integer"),
            ("1 qid:1 junk\n", "expected `index:value`"),
        ];
        for (text, want) in cases {
            let e = parse(text, None).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = parse("1 qid:1 5:1\n", Some(4)).unwrap_err().to_string();
        assert!(e.contains("exceeds the dimension 4"), "{e}");
        assert!(matches!(
            parse("\n# only\n", None),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn fixed_dimension_and_widen() {
        let mut d = parse("1 qid:1 1:1\n", Some(3)).unwrap();
        assert_eq!(d.queries[0].features.shape(), &[1, 3]);
        d.widen(5);
        assert_eq!(
            d.queries[0].features.row(0).to_vec(),
            vec![1.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn split_is_by_query_and_seeded() {
        let text: String = (0..20)
            .map(|q| format!("1 qid:{q} 1:1\n0 qid:{q} 1:0\n"))
            .collect();
        let d = parse(&text, None).unwrap();
        let (a, b) = d.clone().split_queries(0.25, 3);
        assert_eq!((a.queries.len(), b.queries.len()), (15, 5));
        assert_eq!(b, d.clone().split_queries(0.25, 3).1);
        let mut all: Vec<String> = a
            .queries
            .iter()
            .chain(&b.queries)
            .map(|q| q.qid.clone())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20);
    }
}
