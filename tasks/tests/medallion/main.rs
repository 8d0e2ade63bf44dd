//! Integration tests of the medallion tasks on real Delta tables in temporary folders.
#![allow(clippy::unwrap_used)]

mod common;
mod exactly_once;
mod golden;
mod landing;
mod long_history;
mod maintenance;
mod python;
mod quarantine;
mod real_crash;
mod s3;
mod shards;
mod smoke;
