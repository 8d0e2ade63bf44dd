//! Measures, in one process and one run, on the Sentiment140 training tweets:
//!
//! 1. `clean` (bronze → silver) with three expectations vs none (fresh silver each round,
//!    same bronze; rounds alternate), and the overhead ratio;
//! 2. the `sql` task's GROUP BY over that silver (≈ 26,000 rows) into a new table vs the same
//!    query with Python `deltalake` + pandas (read, group, write a Delta table), and the ratio.
//!
//! ```sh
//! TWEETFLOW_VENV=.venv cargo run --release -p tweetflow-bench --example sql_expect -- \
//!     datasets/sentiment140/training.csv.gz [ROUNDS]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use tweetflow_delta::WriteControl;
use tweetflow_delta::expect::{self, OnFail, Rule, Scope};
use tweetflow_tasks::medallion::clean::{CleanParams, clean};
use tweetflow_tasks::medallion::ingest::{IngestParams, ingest};
use tweetflow_tasks::medallion::replay::{ReplayParams, replay};
use tweetflow_tasks::sql::{Mode, SqlParams, run_sql};

const QUERY: &str = "SELECT mention, count(*) AS tweets, count(DISTINCT user) AS users, \
     min(timestamp) AS first_seen, max(timestamp) AS last_seen FROM silver GROUP BY mention";

const PYTHON: &str = r#"
import sys, time
t0 = time.perf_counter()
from deltalake import DeltaTable, write_deltalake
t1 = time.perf_counter()
df = DeltaTable(sys.argv[1]).to_pandas(columns=["mention", "user", "timestamp"])
out = df.groupby("mention").agg(tweets=("user", "size"), users=("user", "nunique"),
                                first_seen=("timestamp", "min"), last_seen=("timestamp", "max")).reset_index()
write_deltalake(sys.argv[2], out, mode="overwrite")
t2 = time.perf_counter()
print(f"{t2 - t1:.6f} {len(out)} {t1 - t0:.6f}")
"#;

fn rules() -> Vec<Rule> {
    let rule = |name: &str, sql: &str, on_fail| Rule {
        name: name.into(),
        sql: sql.into(),
        on_fail,
    };
    vec![
        rule("has_text", "length(cleaned_text) > 0", OnFail::Drop),
        rule(
            "recent",
            "timestamp >= TIMESTAMP '2009-01-01'",
            OnFail::Quarantine,
        ),
        rule("not_empty", "length(mention) > 0", OnFail::Fail),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let csv = args
        .next()
        .unwrap_or_else(|| "datasets/sentiment140/training.csv.gz".into());
    let rounds: usize = args.next().map_or(Ok(3), |r| r.parse())?;
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let s = |p: &Path| p.display().to_string();
    let ctl = WriteControl::default();
    replay(&ReplayParams::new(&csv, s(&d.join("landing"))), &ctl).await?;
    let i = ingest(
        &IngestParams::new(s(&d.join("landing")), s(&d.join("bronze"))).with_settle_time("0s"),
        &ctl,
    )
    .await?;
    println!("bronze: {} tweets", i.rows);

    let (mut plain, mut checked) = (Vec::new(), Vec::new());
    let mut silver_rows = 0;
    for round in 0..rounds {
        let target = d.join(format!("silver_plain_{round}"));
        let t0 = Instant::now();
        let c = clean(&CleanParams::new(s(&d.join("bronze")), s(&target)), &ctl).await?;
        plain.push(t0.elapsed().as_secs_f64());
        silver_rows = c.rows;
        let target = d.join(format!("silver_checked_{round}"));
        let scope = Scope::new("clean", rules());
        let t0 = Instant::now();
        expect::scoped(
            scope.clone(),
            clean(&CleanParams::new(s(&d.join("bronze")), s(&target)), &ctl),
        )
        .await?;
        checked.push(t0.elapsed().as_secs_f64());
        if round == 0 {
            let tallies: BTreeMap<_, _> = scope
                .tallies()
                .into_iter()
                .map(|(k, t)| (k, t.failed))
                .collect();
            println!("expectation failures: {tallies:?}");
        }
    }
    let (p, c) = (median(plain), median(checked));
    println!(
        "clean over {} tweets ({silver_rows} silver rows), median of {rounds}: no expectations {p:.3} s, 3 expectations {c:.3} s, overhead x{:.3} ({:+.1} %)",
        i.rows,
        c / p,
        (c / p - 1.0) * 100.0
    );

    let silver = s(&d.join("silver_plain_0"));
    let (mut rust, mut python, mut python_wall) = (Vec::new(), Vec::new(), Vec::new());
    let venv = std::env::var("TWEETFLOW_VENV").unwrap_or_else(|_| ".venv".into());
    let python_bin = Path::new(&venv).join("bin/python");
    let mut groups = (0, 0);
    for round in 0..rounds {
        let params = SqlParams {
            tables: BTreeMap::from([("silver".to_string(), silver.clone())]),
            query: QUERY.into(),
            table: s(&d.join(format!("per_mention_{round}"))),
            mode: Mode::Overwrite,
            merge_keys: Vec::new(),
            incremental: false,
            quarantine: None,
        };
        let t0 = Instant::now();
        let r = run_sql(&params, "per_mention", round as i64, &ctl).await?;
        rust.push(t0.elapsed().as_secs_f64());
        groups.0 = r.rows;
        let t0 = Instant::now();
        let out = std::process::Command::new(&python_bin)
            .args(["-c", PYTHON, &silver, &s(&d.join(format!("py_{round}")))])
            .output()?;
        python_wall.push(t0.elapsed().as_secs_f64());
        if !out.status.success() {
            return Err(format!("python: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        python.push(parts.next().unwrap_or("0").parse::<f64>()?);
        groups.1 = parts.next().unwrap_or("0").parse::<u64>()?;
    }
    let (r, py, pw) = (median(rust), median(python), median(python_wall));
    println!(
        "sql GROUP BY over {silver_rows} silver rows -> {} groups (Python: {}), median of {rounds}: \
         sql task {r:.3} s, Python deltalake+pandas {py:.3} s in-process ({pw:.3} s with interpreter start and imports); \
         Python / sql = x{:.2} (x{:.2} with start)",
        groups.0,
        groups.1,
        py / r,
        pw / r
    );
    Ok(())
}
