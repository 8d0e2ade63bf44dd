//! Integration tests of data-quality expectations (`expect:`) and the `sql` task on real
//! Delta tables in temporary folders.
#![allow(clippy::unwrap_used)]

mod common;
mod expect;
mod sql;
mod validation;
