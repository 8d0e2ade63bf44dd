//! Integration tests of `infer` on real Delta tables in temporary folders.
#![allow(clippy::unwrap_used)]

mod common;
mod infer;
mod shards;
