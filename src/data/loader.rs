//! Reading interaction files and importing/exporting factor matrices.
//!
//! # Interaction files
//!
//! Two line formats are understood (see [`Format`]):
//!
//! * **ratings** — `user item [rating [timestamp]]`, one interaction per line;
//! * **adjacency** — `user item item …`, every `(user, item)` pair is a positive.
//!
//! Fields are separated by runs of spaces/tabs, or by commas (a line containing a comma is split
//! on commas, and whitespace around each field is ignored; an empty field is an error). Blank lines
//! and lines whose first non-blank character is `#` are skipped; a leading UTF-8 byte-order mark is
//! ignored. User and item ids are arbitrary tokens (not necessarily numbers) and are mapped to dense
//! indices with [`IdMap`]. There is no header detection: comment a CSV header out with `#`.
//!
//! Every problem is reported as a [`DataError`] naming the file and the 1-based line; nothing here
//! panics on bad input.
//!
//! # Factor directories
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

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::{Array1, Array2};

use super::{IdMap, Interactions};
use crate::model::mf::MfModel;

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

/// Everything that can go wrong reading or writing data files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The file holds no records (only blank or comment lines, or nothing at all).
    #[error("{path}: no records")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A factor row has a different number of values than the first row.
    #[error("{path}:{line}: expected {expected} values, found {found}")]
    Ragged {
        /// The factor file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Width of the first row.
        expected: usize,
        /// Width of this row.
        found: usize,
    },
    /// The bias file does not have one value per item row.
    #[error("{path}: {found} bias values but {expected} item rows")]
    BiasCount {
        /// The bias file.
        path: PathBuf,
        /// Number of bias values read.
        found: usize,
        /// Number of item factor rows.
        expected: usize,
    },
    /// User and item factors have different widths.
    #[error("{path}: user factors have {user_dim} columns but item factors have {item_dim}")]
    DimMismatch {
        /// The factor directory.
        path: PathBuf,
        /// Width of the user factors.
        user_dim: usize,
        /// Width of the item factors.
        item_dim: usize,
    },
    /// An id list does not have one id per factor row.
    #[error("{path}: {ids} ids but {rows} factor rows")]
    IdCount {
        /// The id file.
        path: PathBuf,
        /// Number of ids in the file.
        ids: usize,
        /// Number of factor rows.
        rows: usize,
    },
    /// Inconsistent arguments or contents that are not tied to a line (e.g. a model whose size
    /// does not match its id maps when exporting).
    #[error("{path}: {message}")]
    Invalid {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Line format of an interaction file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `user item [rating [timestamp]]`, one interaction per line.
    #[default]
    Ratings,
    /// `user item item …`: every listed item is a positive of the user.
    Adjacency,
}

impl Format {
    /// The lowercase name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ratings => "ratings",
            Format::Adjacency => "adjacency",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    /// Parses `ratings` or `adjacency` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ratings") {
            Ok(Format::Ratings)
        } else if s.eq_ignore_ascii_case("adjacency") {
            Ok(Format::Adjacency)
        } else {
            Err(format!(
                "unknown format `{s}` (expected `ratings` or `adjacency`)"
            ))
        }
    }
}

/// How to read an interaction file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Line format.
    pub format: Format,
    /// Ratings at or above this value are positives (records without a rating always are).
    pub positive_threshold: f32,
}

impl Default for LoadOptions {
    /// Ratings format, positives are ratings ≥ 4.
    fn default() -> Self {
        Self {
            format: Format::Ratings,
            positive_threshold: 4.0,
        }
    }
}

/// One interaction read from a file, with dense user/item indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// Dense user index.
    pub user: u32,
    /// Dense item index.
    pub item: u32,
    /// The rating, when the file has one (always finite).
    pub rating: Option<f32>,
    /// The timestamp, when the file has one.
    pub timestamp: Option<i64>,
}

impl Record {
    /// Whether this record is a positive: no rating, or `rating >= threshold`.
    pub fn is_positive(&self, threshold: f32) -> bool {
        match self.rating {
            None => true,
            Some(r) => r >= threshold,
        }
    }
}

/// Reads every record of `path`, mapping external ids through `users` and `items` (new ids are
/// appended with [`IdMap::get_or_insert`]).
///
/// In the adjacency format a line yields one record per listed item (rating and timestamp
/// `None`); a line holding only a user registers that user without records.
///
/// Fails with [`DataError::Empty`] when the file holds no record at all.
pub fn read_records(
    path: &Path,
    opts: &LoadOptions,
    users: &mut IdMap,
    items: &mut IdMap,
) -> Result<Vec<Record>, DataError> {
    let bytes = read_bytes(path)?;
    let text = as_text(path, &bytes)?;
    // One record per line is exact for ratings and a fair first guess for adjacency lists.
    let mut out = Vec::with_capacity(text.bytes().filter(|&b| b == b'\n').count() + 1);
    let mut last_user = LastUser::default();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let res = match opts.format {
            Format::Ratings => {
                parse_rating_line(line, &mut last_user, users, items).map(|r| out.push(r))
            }
            Format::Adjacency => parse_adjacency_line(line, &mut last_user, users, items, &mut out),
        };
        if let Err(message) = res {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: idx + 1,
                message,
            });
        }
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// The fields of a non-blank line: comma-separated when it contains a comma, else
/// whitespace-separated.
enum Fields<'a> {
    Comma(std::str::Split<'a, char>),
    Blank(std::str::SplitAsciiWhitespace<'a>),
}

impl<'a> Fields<'a> {
    fn new(line: &'a str) -> Self {
        if line.contains(',') {
            Fields::Comma(line.split(','))
        } else {
            Fields::Blank(line.split_ascii_whitespace())
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Fields::Comma(s) => s.next().map(str::trim),
            Fields::Blank(s) => s.next(),
        }
    }
}

/// The next field, which must exist and be non-empty.
fn field<'a>(fields: &mut Fields<'a>, n: usize, what: &str) -> Result<Option<&'a str>, String> {
    match fields.next() {
        None => Ok(None),
        Some("") => Err(format!("field {n} ({what}) is empty")),
        Some(f) => Ok(Some(f)),
    }
}

/// The previous line's user token and index: files are usually grouped by user, so this skips
/// most user-map lookups.
#[derive(Default)]
struct LastUser<'a>(Option<(&'a str, u32)>);

impl<'a> LastUser<'a> {
    fn index(&mut self, token: &'a str, users: &mut IdMap) -> u32 {
        match self.0 {
            Some((t, u)) if t == token => u,
            _ => {
                let u = users.get_or_insert(token);
                self.0 = Some((token, u));
                u
            }
        }
    }
}

fn parse_rating_line<'a>(
    line: &'a str,
    last_user: &mut LastUser<'a>,
    users: &mut IdMap,
    items: &mut IdMap,
) -> Result<Record, String> {
    let mut f = Fields::new(line);
    let u = field(&mut f, 1, "user")?.ok_or("missing user")?;
    let i = field(&mut f, 2, "item")?
        .ok_or("expected `user item [rating [timestamp]]`, found 1 field")?;
    let rating = match field(&mut f, 3, "rating")? {
        None => None,
        Some(s) => {
            let r: f32 = s.parse().map_err(|_| format!("invalid rating `{s}`"))?;
            if !r.is_finite() {
                return Err(format!("rating `{s}` is not a finite number"));
            }
            Some(r)
        }
    };
    let timestamp = match field(&mut f, 4, "timestamp")? {
        None => None,
        Some(s) => Some(parse_timestamp(s).ok_or_else(|| format!("invalid timestamp `{s}`"))?),
    };
    if f.next().is_some() {
        let found = 5 + f.count();
        return Err(format!(
            "expected at most 4 fields (`user item rating timestamp`), found {found}"
        ));
    }
    Ok(Record {
        user: last_user.index(u, users),
        item: items.get_or_insert(i),
        rating,
        timestamp,
    })
}

/// An integer timestamp; an integral float (`1.5e9`, `978300760.0`) is accepted too.
fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<i64>() {
        return Some(t);
    }
    let x: f64 = s.parse().ok()?;
    // 2^63 as f64 is exactly representable; the range check keeps the cast exact.
    let in_range = (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x);
    (x.is_finite() && x.fract() == 0.0 && in_range).then_some(x as i64)
}

fn parse_adjacency_line<'a>(
    line: &'a str,
    last_user: &mut LastUser<'a>,
    users: &mut IdMap,
    items: &mut IdMap,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    let mut f = Fields::new(line);
    let u = field(&mut f, 1, "user")?.ok_or("missing user")?;
    let user = last_user.index(u, users);
    let mut n = 2;
    while let Some(i) = field(&mut f, n, "item")? {
        out.push(Record {
            user,
            item: items.get_or_insert(i),
            rating: None,
            timestamp: None,
        });
        n += 1;
    }
    Ok(())
}

/// Positives and all observed interactions of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InteractionSets {
    /// Records passing the positive threshold (or without a rating).
    pub positives: Interactions,
    /// Every record, whatever its rating (the items a user has seen).
    pub seen: Interactions,
}

/// Builds the positive and seen sets of `records` over `n_users × n_items`.
///
/// The sizes are raised to cover every index in `records` if needed, so this never panics.
pub fn to_sets(
    records: &[Record],
    n_users: usize,
    n_items: usize,
    threshold: f32,
) -> InteractionSets {
    let mut n_users = n_users;
    let mut n_items = n_items;
    let mut seen = Vec::with_capacity(records.len());
    let mut positives = Vec::with_capacity(records.len());
    for r in records {
        n_users = n_users.max(r.user as usize + 1);
        n_items = n_items.max(r.item as usize + 1);
        seen.push((r.user, r.item));
        if r.is_positive(threshold) {
            positives.push((r.user, r.item));
        }
    }
    InteractionSets {
        positives: Interactions::from_pairs(n_users, n_items, &positives),
        seen: Interactions::from_pairs(n_users, n_items, &seen),
    }
}

/// A training file, an optional test file and the id maps covering both.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// External user ids (index = dense user index).
    pub users: IdMap,
    /// External item ids (index = dense item index).
    pub items: IdMap,
    /// Training interactions.
    pub train: InteractionSets,
    /// Test interactions, when a test file was given.
    pub test: Option<InteractionSets>,
}

impl Dataset {
    /// Number of users (the size of every interaction set).
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Number of items (the size of every interaction set).
    pub fn n_items(&self) -> usize {
        self.items.len()
    }
}

/// Loads a training file and an optional test file.
///
/// `users`/`items` may be pre-seeded (e.g. with [`IdMap::sequential`] or [`read_factor_ids`] when
/// factors are imported) so that indices match an existing model. Ids that appear only in the
/// test file are added as well (they have empty training rows). Every [`Interactions`] is sized to
/// the final `users.len() × items.len()`.
pub fn load_dataset(
    train: &Path,
    test: Option<&Path>,
    opts: &LoadOptions,
    users: IdMap,
    items: IdMap,
) -> Result<Dataset, DataError> {
    let (mut users, mut items) = (users, items);
    let train_records = read_records(train, opts, &mut users, &mut items)?;
    let test_records = match test {
        Some(p) => Some(read_records(p, opts, &mut users, &mut items)?),
        None => None,
    };
    let (nu, ni, th) = (users.len(), items.len(), opts.positive_threshold);
    Ok(Dataset {
        train: to_sets(&train_records, nu, ni, th),
        test: test_records.map(|r| to_sets(&r, nu, ni, th)),
        users,
        items,
    })
}

/// Reads the factor matrices and item bias of a factor directory (see the module docs).
///
/// Row `i` of each matrix belongs to the user/item with dense index `i`; pair it with
/// [`read_factor_ids`] (external id `i.to_string()` unless `users.txt`/`items.txt` are present).
/// Fails on ragged rows, non-finite or non-numeric values, empty files, different user/item widths
/// and a bias count different from the number of item rows.
pub fn read_factors(dir: &Path) -> Result<MfModel, DataError> {
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
    Ok(MfModel {
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
pub fn read_factors_with_ids(dir: &Path) -> Result<(MfModel, IdMap, IdMap), DataError> {
    let model = read_factors(dir)?;
    let users = ids_or_sequential(&dir.join(USER_IDS_FILE), model.n_users())?;
    let items = ids_or_sequential(&dir.join(ITEM_IDS_FILE), model.n_items())?;
    Ok((model, users, items))
}

/// Writes `model` to `dir` (created if needed) in the factor-directory format, with
/// `users.txt`/`items.txt` naming the rows. Floats are written in their shortest round-trip form,
/// so [`read_factors_with_ids`] gives back exactly the same model and maps.
///
/// Each file is written to a temporary name and renamed into place. Fails when the maps do not
/// match the model's sizes or an id cannot be stored on one line (empty, surrounding whitespace,
/// line breaks).
pub fn write_factors(
    model: &MfModel,
    users: &IdMap,
    items: &IdMap,
    dir: &Path,
) -> Result<(), DataError> {
    let invalid = |message: String| DataError::Invalid {
        path: dir.to_path_buf(),
        message,
    };
    if users.len() != model.n_users() {
        return Err(invalid(format!(
            "{} user ids for {} user factor rows",
            users.len(),
            model.n_users()
        )));
    }
    if items.len() != model.n_items() || model.bias.len() != model.n_items() {
        return Err(invalid(format!(
            "{} item ids and {} bias values for {} item factor rows",
            items.len(),
            model.bias.len(),
            model.n_items()
        )));
    }
    for id in users.names().iter().chain(items.names()) {
        if id.is_empty() || id.trim() != id || id.contains(['\n', '\r']) {
            return Err(invalid(format!("id {id:?} cannot be written on one line")));
        }
    }
    fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomic(&dir.join(USER_FACTORS_FILE), &matrix_text(&model.user))?;
    write_atomic(&dir.join(ITEM_FACTORS_FILE), &matrix_text(&model.item))?;
    let mut bias = String::with_capacity(model.bias.len() * 12);
    for b in &model.bias {
        // Writing to a String cannot fail.
        let _ = writeln!(bias, "{b}");
    }
    write_atomic(&dir.join(ITEM_BIAS_FILE), &bias)?;
    write_atomic(&dir.join(USER_IDS_FILE), &lines_text(users.names()))?;
    write_atomic(&dir.join(ITEM_IDS_FILE), &lines_text(items.names()))?;
    Ok(())
}

fn matrix_text(m: &Array2<f32>) -> String {
    let mut s = String::with_capacity(m.len() * 12);
    for row in m.rows() {
        for (j, x) in row.iter().enumerate() {
            let sep = if j == 0 { "" } else { "\t" };
            let _ = write!(s, "{sep}{x}");
        }
        s.push('\n');
    }
    s
}

fn lines_text(names: &[String]) -> String {
    let mut s = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    s
}

fn write_atomic(path: &Path, text: &str) -> Result<(), DataError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, text).map_err(|source| DataError::Io {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The file as text (without a leading byte-order mark), or the line of the first invalid byte.
fn as_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.strip_prefix('\u{feff}').unwrap_or(s)),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Err(DataError::Parse {
                path: path.to_path_buf(),
                line,
                message: "invalid UTF-8".to_owned(),
            })
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        fs::write(&p, contents).unwrap();
        p
    }

    fn read(contents: &str, opts: &LoadOptions) -> Result<(Vec<Record>, IdMap, IdMap), DataError> {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "data.txt", contents.as_bytes());
        let (mut u, mut i) = (IdMap::new(), IdMap::new());
        read_records(&p, opts, &mut u, &mut i).map(|r| (r, u, i))
    }

    fn ratings() -> LoadOptions {
        LoadOptions::default()
    }

    fn adjacency() -> LoadOptions {
        LoadOptions {
            format: Format::Adjacency,
            ..LoadOptions::default()
        }
    }

    fn parse_err(e: DataError) -> (usize, String) {
        let shown = e.to_string();
        match e {
            DataError::Parse { line, message, .. } => {
                assert!(shown.contains("data.txt:"), "{shown}");
                (line, message)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn every_separator_gives_the_same_records() {
        let want = read("1\t10\t5\t100\n2\t20\t3\t200\n", &ratings()).unwrap();
        for text in [
            "1 10 5 100\n2 20 3 200\n",
            "1   10 \t 5  100\r\n2 20 3 200",
            "1,10,5,100\n2,20,3,200\n",
            "1, 10 ,5, 100\n 2,20,3,200 \n",
        ] {
            assert_eq!(read(text, &ratings()).unwrap(), want, "{text:?}");
        }
        let (recs, users, items) = want;
        assert_eq!(
            recs[0],
            Record {
                user: 0,
                item: 0,
                rating: Some(5.0),
                timestamp: Some(100)
            }
        );
        assert_eq!(recs[1].user, 1);
        assert_eq!((users.name(1), items.name(1)), ("2", "20"));
    }

    #[test]
    fn two_three_and_four_columns() {
        let (r, ..) = read("a x\nb y 2.5\nc z 4 978300760\nd w 1 1.5e9\n", &ratings()).unwrap();
        assert_eq!(r[0].rating, None);
        assert_eq!(r[0].timestamp, None);
        assert_eq!(r[1].rating, Some(2.5));
        assert_eq!(r[1].timestamp, None);
        assert_eq!(
            (r[2].rating, r[2].timestamp),
            (Some(4.0), Some(978_300_760))
        );
        assert_eq!(r[3].timestamp, Some(1_500_000_000));
    }

    #[test]
    fn threshold_decides_positives() {
        let rec = |rating| Record {
            user: 0,
            item: 0,
            rating,
            timestamp: None,
        };
        assert!(rec(None).is_positive(4.0));
        assert!(rec(Some(4.0)).is_positive(4.0));
        assert!(!rec(Some(3.5)).is_positive(4.0));
        let (r, u, i) = read("u1 i1 5\nu1 i2 3\nu2 i1 4\nu2 i3\n", &ratings()).unwrap();
        let sets = to_sets(&r, u.len(), i.len(), 4.0);
        assert_eq!(sets.seen.nnz(), 4);
        assert_eq!(sets.positives.items(0), &[0]);
        assert_eq!(sets.positives.items(1), &[0, 2]);
        assert!(sets.seen.contains(0, 1));
        // Sizes are raised to cover the records rather than panicking.
        let sets = to_sets(&r, 0, 0, 4.0);
        assert_eq!((sets.seen.n_users(), sets.seen.n_items()), (2, 3));
    }

    #[test]
    fn adjacency_lists() {
        let (r, u, i) = read("alice x y z\nbob\ncarol,y\n", &adjacency()).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(u.names(), &["alice", "bob", "carol"]);
        assert_eq!(i.names(), &["x", "y", "z"]);
        assert!(
            r.iter()
                .all(|x| x.rating.is_none() && x.timestamp.is_none())
        );
        assert_eq!(
            r[3],
            Record {
                user: 2,
                item: 1,
                rating: None,
                timestamp: None
            }
        );
        let sets = to_sets(&r, u.len(), i.len(), 4.0);
        assert_eq!(sets.positives, sets.seen);
        assert!(sets.positives.items(1).is_empty());
    }

    #[test]
    fn comments_blank_lines_and_bom_are_skipped() {
        let text = "\u{feff}# header\n\n   \n1 2 5\n  # indented comment\n\t\n3 4 1\n\n";
        let (r, ..) = read(text, &ratings()).unwrap();
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn string_ids_are_mapped_in_order() {
        let (r, u, i) = read(
            "user-b item:9 5\nuser-a item:1 5\nuser-b item:1 2\n",
            &ratings(),
        )
        .unwrap();
        assert_eq!(u.names(), &["user-b", "user-a"]);
        assert_eq!(i.names(), &["item:9", "item:1"]);
        assert_eq!((r[2].user, r[2].item), (0, 1));
    }

    #[test]
    fn non_numeric_rating_names_file_and_line() {
        let e = read("1 2 5\n# fine\n1 3 five\n", &ratings()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("data.txt:3:"), "{shown}");
        assert!(shown.contains("five"), "{shown}");
        assert_eq!(parse_err(e).0, 3);
    }

    #[test]
    fn malformed_lines_are_errors() {
        let cases = [
            ("1 2 5\n7\n", 2),
            ("1 2 NaN\n", 1),
            ("1 2 inf\n", 1),
            ("1 2 -inf\n", 1),
            ("1,,5\n", 1),
            ("1,2,\n", 1),
            ("1 2 5 x\n", 1),
            ("1 2 5 1e300\n", 1),
            ("1 2 5 100 extra\n", 1),
            ("1 2 5 100\n", 0), // sentinel: valid
        ];
        for (text, line) in cases {
            match read(text, &ratings()) {
                Ok(_) => assert_eq!(line, 0, "{text:?} should fail"),
                Err(e) => assert_eq!(parse_err(e).0, line, "{text:?}"),
            }
        }
        let (_, msg) = parse_err(read("1 2 NaN\n", &ratings()).unwrap_err());
        assert!(msg.contains("finite"), "{msg}");
        assert_eq!(parse_err(read("a,x,,y\n", &adjacency()).unwrap_err()).0, 1);
    }

    #[test]
    fn invalid_utf8_reports_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "data.txt", b"1 2 5\n1 3 4\n1 \xff\xfe 4\n");
        let (mut u, mut i) = (IdMap::new(), IdMap::new());
        let e = read_records(&p, &ratings(), &mut u, &mut i).unwrap_err();
        assert!(e.to_string().contains("data.txt:3: invalid UTF-8"), "{e}");
    }

    #[test]
    fn empty_and_missing_files() {
        for text in ["", "\n\n", "# only a comment\n"] {
            assert!(
                matches!(read(text, &ratings()), Err(DataError::Empty { .. })),
                "{text:?}"
            );
        }
        assert!(matches!(
            read("lonely-user\n", &adjacency()),
            Err(DataError::Empty { .. })
        ));
        let (mut u, mut i) = (IdMap::new(), IdMap::new());
        let e = read_records(Path::new("/no/such/file.txt"), &ratings(), &mut u, &mut i);
        assert!(matches!(e, Err(DataError::Io { .. })));
    }

    #[test]
    fn bad_last_line_of_a_large_file() {
        let mut text = String::new();
        for k in 0..50_000 {
            let _ = writeln!(text, "{} {} {}", k % 700, k % 1500, 1 + k % 5);
        }
        text.push_str("3 4 oops");
        let (line, _) = parse_err(read(&text, &ratings()).unwrap_err());
        assert_eq!(line, 50_001);
    }

    #[test]
    fn format_parses_and_serializes() {
        assert_eq!("ratings".parse::<Format>(), Ok(Format::Ratings));
        assert_eq!(" Adjacency".parse::<Format>(), Ok(Format::Adjacency));
        assert!("csv".parse::<Format>().is_err());
        assert_eq!(
            serde_json::to_string(&Format::Adjacency).unwrap(),
            "\"adjacency\""
        );
        assert_eq!(
            serde_json::from_str::<Format>("\"ratings\"").unwrap(),
            Format::Ratings
        );
        assert_eq!(Format::Adjacency.to_string(), "adjacency");
        assert_eq!(LoadOptions::default().positive_threshold, 4.0);
    }

    #[test]
    fn test_only_ids_are_added_and_sets_share_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let train = file(&dir, "train.txt", b"u1 a 5\nu2 b 4\nu2 c 1\n");
        let test = file(&dir, "test.txt", b"u3 a 5\nu1 d 5\nu1 b 2\n");
        let ds = load_dataset(&train, Some(&test), &ratings(), IdMap::new(), IdMap::new()).unwrap();
        assert_eq!((ds.n_users(), ds.n_items()), (3, 4));
        let t = ds.test.as_ref().unwrap();
        for s in [&ds.train.positives, &ds.train.seen, &t.positives, &t.seen] {
            assert_eq!((s.n_users(), s.n_items()), (3, 4));
        }
        let u3 = ds.users.get("u3").unwrap() as usize;
        assert!(ds.train.seen.items(u3).is_empty());
        assert_eq!(t.positives.items(u3), &[0]);
        assert_eq!(t.positives.nnz(), 2);
        assert_eq!(t.seen.nnz(), 3);
        assert_eq!(ds.train.positives.nnz(), 2);

        // Pre-seeded maps keep their indices.
        let ds =
            load_dataset(&train, None, &ratings(), IdMap::sequential(2), IdMap::new()).unwrap();
        assert_eq!(ds.users.names(), &["0", "1", "u1", "u2"]);
        assert_eq!(ds.train.seen.n_users(), 4);
        assert!(ds.test.is_none());
    }

    fn sample_model() -> MfModel {
        let mut r = crate::rng::stream(3, 0, 0);
        let mut m = MfModel::random(4, 6, 3, 0.7, &mut r);
        m.bias[2] = -1.25e-7;
        m.bias[5] = 3.0;
        m.user[(0, 0)] = f32::MIN_POSITIVE;
        m
    }

    #[test]
    fn factors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        let m = sample_model();
        let users = IdMap::from_names(["a", "b", "c", "d"].map(String::from).to_vec()).unwrap();
        let items = IdMap::sequential(6);
        write_factors(&m, &users, &items, &out).unwrap();
        assert_eq!(read_factors(&out).unwrap(), m);
        let (m2, u2, i2) = read_factors_with_ids(&out).unwrap();
        assert_eq!((m2, &u2, &i2), (m.clone(), &users, &items));
        assert_eq!(
            read_factor_ids(&out).unwrap(),
            (users.clone(), items.clone())
        );

        // Without id files, rows are sequential ids.
        fs::remove_file(out.join(USER_IDS_FILE)).unwrap();
        fs::remove_file(out.join(ITEM_IDS_FILE)).unwrap();
        assert_eq!(
            read_factor_ids(&out).unwrap(),
            (IdMap::sequential(4), IdMap::sequential(6))
        );

        // Size mismatches and unwritable ids are refused.
        assert!(matches!(
            write_factors(&m, &IdMap::sequential(3), &items, &out),
            Err(DataError::Invalid { .. })
        ));
        let bad = IdMap::from_names(["a", "b c", "", "d"].map(String::from).to_vec()).unwrap();
        assert!(matches!(
            write_factors(&m, &bad, &items, &out),
            Err(DataError::Invalid { .. })
        ));
    }

    fn factor_dir(user: &str, item: &str, bias: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        file(&dir, USER_FACTORS_FILE, user.as_bytes());
        file(&dir, ITEM_FACTORS_FILE, item.as_bytes());
        file(&dir, ITEM_BIAS_FILE, bias.as_bytes());
        dir
    }

    #[test]
    fn factor_file_errors() {
        let ok_items = "1\t2\n3\t4\n";
        let ok_bias = "0.5\n-0.5\n";
        let m = read_factors(factor_dir("1\t2\n", ok_items, ok_bias).path()).unwrap();
        assert_eq!((m.n_users(), m.n_items(), m.dim()), (1, 2, 2));

        let e = read_factors(factor_dir("1\t2\n3\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Ragged {
                    line: 2,
                    expected: 2,
                    found: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("user_factors.tsv:2:"), "{e}");

        let e = read_factors(factor_dir("1\t2\n", ok_items, "0.5\n").path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BiasCount {
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = read_factors(factor_dir("1\t2\n", ok_items, "0.5 1\n2 3\n").path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Ragged {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{e:?}"
        );

        let e = read_factors(factor_dir("1\t2\n", "1\tNaN\n3\t4\n", ok_bias).path()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 1, .. }), "{e:?}");
        let e = read_factors(factor_dir("1\tx\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(e.to_string().contains("user_factors.tsv:1:"), "{e}");
        let e = read_factors(factor_dir("1\t2\n\n3\t4\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 2, .. }), "{e:?}");

        let e = read_factors(factor_dir("", ok_items, ok_bias).path()).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
        let e = read_factors(factor_dir("1\t2\t3\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::DimMismatch {
                    user_dim: 3,
                    item_dim: 2,
                    ..
                }
            ),
            "{e:?}"
        );

        // Id files must match the rows and be unique.
        let dir = factor_dir("1\t2\n", ok_items, ok_bias);
        file(&dir, ITEM_IDS_FILE, b"x\n");
        assert!(matches!(
            read_factor_ids(dir.path()),
            Err(DataError::IdCount {
                ids: 1,
                rows: 2,
                ..
            })
        ));
        file(&dir, ITEM_IDS_FILE, b"x\nx\n");
        let e = read_factor_ids(dir.path()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 2, .. }), "{e:?}");
        assert!(matches!(
            read_factors(&dir.path().join("missing")),
            Err(DataError::Io { .. })
        ));
    }

    fn ml100k() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ml-100k");
        dir.join("movielens-100k-train.txt").exists().then_some(dir)
    }

    #[test]
    fn reads_movielens_100k_when_present() {
        let Some(dir) = ml100k() else {
            eprintln!("ml-100k not found, skipping");
            return;
        };
        let start = std::time::Instant::now();
        let ds = load_dataset(
            &dir.join("movielens-100k-train.txt"),
            Some(&dir.join("movielens-100k-test.txt")),
            &LoadOptions::default(),
            IdMap::new(),
            IdMap::new(),
        )
        .unwrap();
        eprintln!("ml-100k loaded in {:?}", start.elapsed());
        assert_eq!(ds.n_users(), 943);
        assert_eq!(ds.train.seen.nnz(), 80_000);
        assert!(ds.train.positives.nnz() > 0);
        assert!(ds.test.as_ref().unwrap().positives.nnz() > 0);

        let init = dir.join("dns-init");
        if init.exists() {
            let m = read_factors(&init).unwrap();
            assert_eq!(m.user.dim(), (943, 5));
            assert_eq!(m.item.dim(), (1683, 5));
            assert_eq!(m.bias.len(), 1683);
            assert!(m.is_finite());
            let (users, items) = read_factor_ids(&init).unwrap();
            assert_eq!((users.len(), items.len()), (943, 1683));
            // Seeding with the factor ids keeps factor rows aligned with data indices.
            let ds = load_dataset(
                &dir.join("movielens-100k-train.txt"),
                Some(&dir.join("movielens-100k-test.txt")),
                &LoadOptions::default(),
                users,
                items,
            )
            .unwrap();
            assert_eq!((ds.n_users(), ds.n_items()), (943, 1683));
            assert_eq!(ds.users.get("17"), Some(17));
        }
    }
}
