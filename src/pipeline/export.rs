//! Exporting a model as a factor directory (the format [`crate::data::factors`] reads), written
//! with the store's one atomic writer.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use ndarray::Array2;

use crate::data::IdMap;
use crate::data::factors::{
    ITEM_BIAS_FILE, ITEM_FACTORS_FILE, ITEM_IDS_FILE, USER_FACTORS_FILE, USER_IDS_FILE,
};
use crate::data::loader::DataError;
use crate::model::MfModel;
use crate::store::atomic::write_atomic;

/// Writes `model` to `dir` (created if needed) in the factor-directory format, with
/// `users.txt`/`items.txt` naming the rows. Floats are written in their shortest round-trip form,
/// so [`read_factors_with_ids`] gives back exactly the same model and maps.
///
/// Each file is written with the store's atomic writer (temporary name, fsync, rename). Fails when the maps do not
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
    write_text(&dir.join(USER_FACTORS_FILE), &matrix_text(&model.user))?;
    write_text(&dir.join(ITEM_FACTORS_FILE), &matrix_text(&model.item))?;
    let mut bias = String::with_capacity(model.bias.len() * 12);
    for b in &model.bias {
        // Writing to a String cannot fail.
        let _ = writeln!(bias, "{b}");
    }
    write_text(&dir.join(ITEM_BIAS_FILE), &bias)?;
    write_text(&dir.join(USER_IDS_FILE), &lines_text(users.names()))?;
    write_text(&dir.join(ITEM_IDS_FILE), &lines_text(items.names()))?;
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

/// Writes `text` to `path` atomically.
fn write_text(path: &Path, text: &str) -> Result<(), DataError> {
    write_atomic(path, text.as_bytes()).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::factors::{read_factor_ids, read_factors, read_factors_with_ids};
    use crate::train::init::model_from_factors;

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
        assert_eq!(model_from_factors(read_factors(&out).unwrap()), m);
        let (m2, u2, i2) = read_factors_with_ids(&out).unwrap();
        assert_eq!(
            (model_from_factors(m2), &u2, &i2),
            (m.clone(), &users, &items)
        );
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
}
