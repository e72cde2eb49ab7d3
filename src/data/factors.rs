//! Reading factor directories (the IRGAN reference's `dns-init/` format).
//!
//! A factor directory (the format of the IRGAN reference's `dns-init/`) holds
//!
//! * `user_factors.tsv` — one row per user, tab-separated floats;
//! * `item_factors.tsv` — one row per item, same width;
//! * `item_bias.tsv` — one float per line, one line per item;
//! * optionally `users.txt` / `items.txt` — one external id per line, naming the rows in order.
//!
//! Without `users.txt`/`items.txt`, row `i` is the user/item whose external id is `i.to_string()`
//! (i.e. [`IdMap::sequential`]), which is how the reference files are indexed. Rows are positional,
//! so blank lines are errors (except at the end of a file).

use std::fs;
use std::path::Path;

use ndarray::{Array1, Array2};

use crate::data::IdMap;
use crate::data::error::DataError;
use crate::data::records::{Fields, as_text, read_bytes};

/// File name of the user factor matrix in a factor directory.
pub const USER_FACTORS_FILE: &str = "user_factors.tsv";
/// File name of the item factor matrix in a factor directory.
pub const ITEM_FACTORS_FILE: &str = "item_factors.tsv";
/// File name of the item bias vector in a factor directory.
pub const ITEM_BIAS_FILE: &str = "item_bias.tsv";
/// File name of the optional user id list (one external id per line) in a factor directory.
pub const USER_IDS_FILE: &str = "users.txt";
/// File name of the optional item id list (one external id per line) in a factor directory.
pub const ITEM_IDS_FILE: &str = "items.txt";

/// The matrices of a factor directory: row `i` belongs to the user/item with dense index `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    /// User factors, one row per user.
    pub user: Array2<f32>,
    /// Item factors, one row per item, as wide as the user factors.
    pub item: Array2<f32>,
    /// Item biases, one per item.
    pub bias: Array1<f32>,
}

/// Reads the factor matrices and item bias of a factor directory (see the module docs).
///
/// Row `i` of each matrix belongs to the user/item with dense index `i`; pair it with
/// [`read_factor_ids`] (external id `i.to_string()` unless `users.txt`/`items.txt` are present).
/// Fails on ragged rows, non-finite or non-numeric values, empty files, different user/item widths
/// and a bias count different from the number of item rows.
pub fn read_factors(dir: &Path) -> Result<Factors, DataError> {
    let (user, user_dim) = read_matrix(&dir.join(USER_FACTORS_FILE))?;
    let (item, item_dim) = read_matrix(&dir.join(ITEM_FACTORS_FILE))?;
    if user_dim != item_dim {
        return Err(DataError::DimMismatch {
            path: dir.to_path_buf(),
            user_dim,
            item_dim,
        });
    }
    let bias_path = dir.join(ITEM_BIAS_FILE);
    let (bias, bias_dim) = read_matrix(&bias_path)?;
    if bias_dim != 1 {
        return Err(DataError::Ragged {
            path: bias_path,
            line: 1,
            expected: 1,
            found: bias_dim,
        });
    }
    let n_items = item.len() / item_dim;
    if bias.len() != n_items {
        return Err(DataError::BiasCount {
            path: bias_path,
            found: bias.len(),
            expected: n_items,
        });
    }
    let n_users = user.len() / user_dim;
    let shape_err = |e: ndarray::ShapeError| DataError::Invalid {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    Ok(Factors {
        user: Array2::from_shape_vec((n_users, user_dim), user).map_err(shape_err)?,
        item: Array2::from_shape_vec((n_items, item_dim), item).map_err(shape_err)?,
        bias: Array1::from_vec(bias),
    })
}

/// The id maps naming the rows of a factor directory: read from `users.txt`/`items.txt` when
/// present (one external id per line, which must match the factor row counts), otherwise
/// [`IdMap::sequential`] over the number of rows of `user_factors.tsv`/`item_factors.tsv`.
pub fn read_factor_ids(dir: &Path) -> Result<(IdMap, IdMap), DataError> {
    let n_users = count_rows(&dir.join(USER_FACTORS_FILE))?;
    let n_items = count_rows(&dir.join(ITEM_FACTORS_FILE))?;
    let users = ids_or_sequential(&dir.join(USER_IDS_FILE), n_users)?;
    let items = ids_or_sequential(&dir.join(ITEM_IDS_FILE), n_items)?;
    Ok((users, items))
}

/// [`read_factors`] and [`read_factor_ids`] together: the model and the maps naming its rows.
pub fn read_factors_with_ids(dir: &Path) -> Result<(Factors, IdMap, IdMap), DataError> {
    let model = read_factors(dir)?;
    let users = ids_or_sequential(&dir.join(USER_IDS_FILE), model.user.nrows())?;
    let items = ids_or_sequential(&dir.join(ITEM_IDS_FILE), model.item.nrows())?;
    Ok((model, users, items))
}

/// The positional lines of a factor or id file: trailing blank lines are dropped; an empty file
/// is an error. Yields `(1-based line, trimmed line)`.
fn positional_lines<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<impl Iterator<Item = (usize, &'a str)>, DataError> {
    let text = as_text(path, bytes)?.trim_end();
    if text.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(text.split('\n').enumerate().map(|(i, l)| (i + 1, l.trim())))
}

/// Reads a whitespace- (or comma-) separated float matrix; returns the values row-major and the
/// row width.
fn read_matrix(path: &Path) -> Result<(Vec<f32>, usize), DataError> {
    let bytes = read_bytes(path)?;
    let mut values = Vec::with_capacity(bytes.len() / 8);
    let mut width = None;
    let parse_err = |line, message| DataError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    for (line, text) in positional_lines(path, &bytes)? {
        if text.is_empty() {
            return Err(parse_err(
                line,
                "blank line (factor rows are positional)".to_owned(),
            ));
        }
        let mut found = 0;
        for tok in Fields::new(text) {
            let x: f32 = tok
                .parse()
                .map_err(|_| parse_err(line, format!("invalid number `{tok}`")))?;
            if !x.is_finite() {
                return Err(parse_err(line, format!("value `{tok}` is not finite")));
            }
            values.push(x);
            found += 1;
        }
        match width {
            None => width = Some(found),
            Some(expected) if expected != found => {
                return Err(DataError::Ragged {
                    path: path.to_path_buf(),
                    line,
                    expected,
                    found,
                });
            }
            Some(_) => {}
        }
    }
    // `positional_lines` guarantees at least one non-blank row, so the width is set and > 0.
    Ok((values, width.unwrap_or(1)))
}

/// Number of rows of a factor file (without parsing the values).
fn count_rows(path: &Path) -> Result<usize, DataError> {
    let bytes = read_bytes(path)?;
    Ok(positional_lines(path, &bytes)?.count())
}

/// Reads an id list if the file exists (checking it has `rows` ids), else the sequential map.
fn ids_or_sequential(path: &Path, rows: usize) -> Result<IdMap, DataError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(IdMap::sequential(rows)),
        Err(source) => {
            return Err(DataError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut names = Vec::with_capacity(rows);
    for (line, id) in positional_lines(path, &bytes)? {
        if id.is_empty() {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line,
                message: "empty id (ids are positional)".to_owned(),
            });
        }
        names.push(id.to_owned());
    }
    if names.len() != rows {
        return Err(DataError::IdCount {
            path: path.to_path_buf(),
            ids: names.len(),
            rows,
        });
    }
    IdMap::from_names(names).map_err(|dup| {
        let line = bytes_line_of(&bytes, &dup);
        DataError::Parse {
            path: path.to_path_buf(),
            line,
            message: format!("duplicate id `{dup}`"),
        }
    })
}

/// 1-based line of the second occurrence of `id` in an id file (for error messages).
fn bytes_line_of(bytes: &[u8], id: &str) -> usize {
    let text = String::from_utf8_lossy(bytes);
    text.split('\n')
        .enumerate()
        .filter(|(_, l)| l.trim() == id)
        .nth(1)
        .map_or(0, |(i, _)| i + 1)
}
