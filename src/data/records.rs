//! Reading interaction files into records.
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

use std::fs;
use std::path::Path;

use crate::data::IdMap;
use crate::data::error::DataError;
use crate::data::format::{Format, LoadOptions};

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
pub(crate) enum Fields<'a> {
    Comma(std::str::Split<'a, char>),
    Blank(std::str::SplitAsciiWhitespace<'a>),
}

impl<'a> Fields<'a> {
    pub(crate) fn new(line: &'a str) -> Self {
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

/// The whole file.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The file as text (without a leading byte-order mark), or the line of the first invalid byte.
pub(crate) fn as_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, DataError> {
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
