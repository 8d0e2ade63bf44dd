//! Checking that a table named by a param has the columns a task reads or writes, before the
//! task reads or writes anything: a table written by another tool with a missing or mistyped
//! column is a config error naming the param, the table and every offending column, not a
//! failure in the middle of a batch or values silently cast.
//!
//! Types are compared by kind (any string type is a string, any integer width an integer,
//! timestamps with or without a zone are timestamps); extra columns are allowed.

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::DataType as ArrowType;
use deltalake::kernel::{DataType, PrimitiveType, StructType};

use crate::table_error::{Result, TableTaskError};
use tweetflow_delta::table;

/// The kind of a column type, as this check compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Float,
    Timestamp,
    Binary,
    Boolean,
    Other,
}

impl Kind {
    fn of_kernel(t: &DataType) -> Kind {
        match t {
            DataType::Primitive(p) => match p {
                PrimitiveType::String => Kind::String,
                PrimitiveType::Byte
                | PrimitiveType::Short
                | PrimitiveType::Integer
                | PrimitiveType::Long => Kind::Integer,
                PrimitiveType::Float | PrimitiveType::Double => Kind::Float,
                PrimitiveType::Timestamp | PrimitiveType::TimestampNtz => Kind::Timestamp,
                PrimitiveType::Binary => Kind::Binary,
                PrimitiveType::Boolean => Kind::Boolean,
                _ => Kind::Other,
            },
            _ => Kind::Other,
        }
    }

    fn of_arrow(t: &ArrowType) -> Kind {
        match t {
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => Kind::String,
            ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 => {
                Kind::Integer
            }
            ArrowType::Float32 | ArrowType::Float64 => Kind::Float,
            ArrowType::Timestamp(_, _) => Kind::Timestamp,
            ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => Kind::Binary,
            ArrowType::Boolean => Kind::Boolean,
            ArrowType::Dictionary(_, v) => Kind::of_arrow(v),
            _ => Kind::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a floating-point number",
            Kind::Timestamp => "a timestamp",
            Kind::Binary => "binary",
            Kind::Boolean => "a boolean",
            Kind::Other => "another type",
        }
    }
}

/// The columns of `schema`, leaving out the names in `skip`.
pub fn columns_of(schema: &StructType, skip: &[&str]) -> Vec<(String, DataType)> {
    schema
        .fields()
        .filter(|f| !skip.contains(&f.name().as_str()))
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

/// Fails unless `table` (at `location`, given as `param`) has every column of `expected`
/// with a type of the same kind; `what` names the role of the table ("a bronze table").
pub fn require_columns(
    table: &DeltaTable,
    location: &str,
    param: &'static str,
    what: &str,
    expected: &[(String, DataType)],
) -> Result<()> {
    let schema = table::arrow_schema(table, location)?;
    let mut problems = Vec::new();
    for (name, ty) in expected {
        let want = Kind::of_kernel(ty);
        match schema.field_with_name(name) {
            Err(_) => problems.push(format!("no column `{name}`")),
            Ok(field) => {
                let got = Kind::of_arrow(field.data_type());
                if got != want {
                    problems.push(format!(
                        "column `{name}` is {} ({}), expected {}",
                        got.name(),
                        field.data_type(),
                        want.name()
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(TableTaskError::Param {
        param,
        message: format!(
            "table `{location}` is not {what}: {} (a table written by another tool?)",
            problems.join("; ")
        ),
    })
}

/// [`require_columns`] on the table at `location` when there is one (a missing table is
/// created by the task with the right schema).
pub async fn require_columns_if_exists(
    location: &str,
    param: &'static str,
    what: &str,
    expected: &StructType,
    skip: &[&str],
) -> Result<()> {
    if let Some(t) = table::open_table(location).await? {
        require_columns(&t, location, param, what, &columns_of(expected, skip))?;
    }
    Ok(())
}
