//! Delta tables read back as sorted display strings, for comparing task results.

use std::path::Path;

use deltalake::arrow::util::display::array_value_to_string;
use futures::StreamExt;
use tweetflow_delta::table;

/// A path inside `dir` as a string.
pub fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// All rows of a table as display strings, with the column names; rows sorted.
pub async fn rows(location: &str) -> (Vec<String>, Vec<Vec<String>>) {
    try_rows(location)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("table exists")
}

/// Why a table could not be read back: the step that failed and its error.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct TableReadError {
    /// What was being done (`open LOCATION`, `schema`, `read PATH` ...).
    pub step: String,
    /// The error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn at<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    step: impl Into<String>,
) -> impl FnOnce(E) -> TableReadError {
    let step = step.into();
    move |e| TableReadError {
        step,
        source: e.into(),
    }
}

/// [`rows`] without panicking: `Ok(None)` when there is no table at `location`, `Err` with
/// the reason when it cannot be read.
pub async fn try_rows(location: &str) -> Result<Option<Table>, TableReadError> {
    let Some(t) = table::open_table(location)
        .await
        .map_err(at(format!("open {location}")))?
    else {
        return Ok(None);
    };
    let schema = table::arrow_schema(&t, location).map_err(at("schema"))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut out = Vec::new();
    for (path, _, _) in table::active_files(&t, location).map_err(at("files"))? {
        let mut stream = table::read_file(&t, &path, &[])
            .await
            .map_err(at(format!("read {path}")))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(at(format!("read {path}")))?;
            for i in 0..batch.num_rows() {
                let mut row = Vec::with_capacity(names.len());
                for n in &names {
                    row.push(match batch.column_by_name(n) {
                        Some(c) => {
                            array_value_to_string(c, i).map_err(at(format!("column {n}")))?
                        }
                        None => String::new(),
                    });
                }
                out.push(row);
            }
        }
    }
    out.sort();
    Ok(Some((names, out)))
}

/// Column names and sorted rows of a table, as [`try_rows`] reads them.
pub type Table = (Vec<String>, Vec<Vec<String>>);

/// Rows projected on `columns`, sorted.
pub async fn rows_of(location: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let (names, rows) = rows(location).await;
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            names
                .iter()
                .position(|n| n == c)
                .unwrap_or_else(|| panic!("no column {c}"))
        })
        .collect();
    let mut out: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| idx.iter().map(|i| r[*i].clone()).collect())
        .collect();
    out.sort();
    out
}

/// The version of the table at `location` (-1 when none).
pub async fn version(location: &str) -> i64 {
    match table::open_table(location).await.expect("open") {
        Some(t) => table::version(&t),
        None => -1,
    }
}
