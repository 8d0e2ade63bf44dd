//! `tweetflow replay`: writes landing files from a CSV by hand.

use tweetflow_delta::WriteControl;
use tweetflow_tasks::medallion::replay::{self, ReplayParams};

use crate::cli::ReplayArgs;
use crate::exit;

/// Writes landing files from a CSV.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    let mut params = ReplayParams::new(args.csv, args.landing.clone());
    params.tweets_per_file = args.tweets_per_file;
    params.limit = args.limit;
    params.seed = args.seed;
    params.delay = args.delay;
    let summary = replay::replay(&params, &WriteControl::default()).await?;
    println!(
        "landed {} tweets in {} files under {} ({} rows skipped)",
        summary.tweets, summary.files, args.landing, summary.skipped
    );
    Ok(exit::OK)
}
