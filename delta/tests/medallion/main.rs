//! Integration tests of the medallion tasks on real Delta tables in temporary folders.

mod common;
mod smoke;
