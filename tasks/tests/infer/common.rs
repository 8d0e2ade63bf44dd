//! Helpers of the infer tests.

pub use tweetflow_test_support::medallion::add_silver;
pub use tweetflow_test_support::tables::{p, rows_of, version};
pub use tweetflow_test_support::{
    TaskContextBuilder, assert_unique_rows, tiny_model, tiny_model_int8,
};
