//! Integration tests of data-quality expectations (`expect:`) and the `sql` task on real
//! Delta tables in temporary folders.

mod common;
mod expect;
mod sql;
mod validation;
