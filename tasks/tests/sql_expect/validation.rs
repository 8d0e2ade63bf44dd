//! `tweetflow validate` of `expect:` and `sql` tasks: the checked-in golden case
//! `tests/validation/expectations.yaml` (also run by the workspace's `validation_golden`)
//! and the shipped main pipeline.

use tweetflow_engine::{LoadOptions, load_file};

use crate::common::repo_root;

fn render(path: &std::path::Path) -> String {
    let registry = tweetflow_tasks::default_registry();
    let env = |name: &str| (name == "HOME").then(|| "/home/tester".to_string());
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &env,
    };
    match load_file(path, &options) {
        Ok(p) => format!("valid: {} tasks\n", p.tasks.len()),
        Err(d) => d.render(),
    }
}

#[test]
fn expectation_problems_are_reported_with_their_position_and_the_columns() {
    let root = repo_root();
    std::env::set_current_dir(&root).unwrap();
    let case = std::path::Path::new("tests/validation/expectations.yaml");
    let got = render(case);
    let expected_path = root.join("tests/validation/expectations.expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    assert_eq!(got, std::fs::read_to_string(&expected_path).unwrap());
}

#[test]
fn the_main_pipeline_with_its_sql_table_and_expectations_is_valid() {
    let got = render(&repo_root().join("pipelines/tweet_sentiment.yaml"));
    assert_eq!(got, "valid: 9 tasks\n");
}
