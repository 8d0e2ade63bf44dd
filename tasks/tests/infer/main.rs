//! Integration tests of `infer` on real Delta tables in temporary folders.

mod common;
mod infer;
mod shards;
