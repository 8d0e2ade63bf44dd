"""Prints where the newest tweet_sentiment run put its report, its MLflow run page and its
key figures (tweets replayed, tweets, tweets with mentions, distinct mentions, accuracy, F1),
and the newest run of mentions_report that gold's new versions triggered.

Usage: tweetflow runs list --json --limit 50 | python scripts/demo-summary.py [RUNS_DIR]
"""

import json
import os
import sys


def main() -> None:
    runs_dir = sys.argv[1] if len(sys.argv) > 1 else "runs"
    everything = json.load(sys.stdin)
    runs = [r for r in everything if r.get("pipeline") == "tweet_sentiment"]
    if not runs:
        sys.exit("no tweet_sentiment run recorded")
    run = runs[0]

    def out(task):
        o = (run.get("tasks", {}).get(task) or {}).get("output") or {}
        return o.get("values", o)

    def num(v, fmt="{:,}"):
        return "-" if v is None else fmt.format(v)

    report = out("report").get("report")
    metrics, clean, profile, replay = out("log_metrics"), out("clean"), out("profile"), out("replay")
    link = os.path.join(runs_dir, run["run_id"], "mlflow.json")
    url = json.load(open(link))["url"] if os.path.exists(link) else "not logged to MLflow"
    where = os.path.abspath(report) if report else "not written"
    print()
    print(f"Run {run['run_id']}: {run['status']}")
    print(f"  report.html: {where}")
    print(f"  MLflow run:  {url}")
    if replay.get("tweets") is not None:
        print(f"  replayed:    {num(replay.get('tweets'))} tweets from {run.get('params', {}).get('csv', '?')}")
    # clean counts the tweets this run added (none when the landing files were ingested
    # before); profile describes the whole silver table
    print(
        f"  tweets: {num(clean.get('tweets'))} new in this run; silver table: "
        f"{num(profile.get('tweets'))} tweets with mentions, "
        f"{num(profile.get('distinct_mentions'))} distinct mentions"
    )
    print(
        f"  accuracy: {num(metrics.get('accuracy'), '{:.3f}')}, "
        f"F1: {num(metrics.get('f1'), '{:.3f}')} "
        f"(on {num(metrics.get('binary_support'))} positive/negative labelled tweets called "
        f"positive or negative; {num(metrics.get('neutral_predictions_excluded'))} called neutral left out)"
    )
    if metrics.get("macro_f1") is not None:
        print(f"  macro F1 over negative/neutral/positive: {metrics['macro_f1']:.3f}")
    # The triggered report that ran because gold got new versions.
    triggered = [
        r for r in everything
        if r.get("pipeline") == "mentions_report" and r.get("tags", {}).get("trigger") == "table"
    ]
    if triggered:
        t = triggered[0]
        print(
            f"Triggered run {t['run_id']} of mentions_report: {t['status']}, "
            f"{t['tags'].get('trigger.gold', '?')}"
        )


if __name__ == "__main__":
    main()
