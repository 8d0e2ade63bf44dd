//! The loader and validator driven by generated and mutated pipelines, starting from the
//! checked-in examples (`pipelines/*.yaml`, `tests/validation/*.yaml`): whatever the input,
//! no panic, no hang, and every outcome is a valid pipeline or errors with positions inside
//! the file.
//!
//! The generator is seeded: a failure prints its seed and case number, and
//! `TWEETFLOW_FUZZ_SEED=S TWEETFLOW_FUZZ_CASES=N` replays it. The default is 100,000 cases.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use tweetflow_engine::{LoadOptions, load_str};

/// A small seeded generator (xorshift64*), so the test needs no dependency and replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Fragments that matter to YAML and to the loader.
const FRAGMENTS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!tag ",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "%",
    "@",
    "`",
    "\n",
    "\n  ",
    "\t",
    "  ",
    "---\n",
    "...\n",
    "? ",
    "${params.",
    "${env.HOME}",
    "${env.MY_TOKEN}",
    "${secret.MY_TOKEN}",
    "${secret.NOPE}",
    "${params.landing}",
    "$${",
    "${",
    "}",
    "null",
    "~",
    "true",
    "0x1f",
    "1e9",
    ".inf",
    "-1",
    "99999999999999999999",
    "10ms",
    "5m",
    "1h30m",
    "-5s",
    "type",
    "with",
    "depends_on",
    "retries",
    "timeout",
    "cache",
    "schedule",
    "cron",
    "timezone",
    "params",
    "defaults",
    "tasks",
    "name",
    "command",
    "noop",
    "argv",
    "env",
    "max_attempts",
    "backoff",
    "\u{feff}",
    "é",
    "\u{0}",
    "\r\n",
    "<<: *a\n",
];

/// Values that keep a `key: value` line well-formed YAML (and often a valid pipeline).
const VALUES: &[&str] = &[
    "1",
    "0",
    "-3",
    "2.5",
    "true",
    "false",
    "null",
    "\"\"",
    "x",
    "30s",
    "10ms",
    "2h",
    "[]",
    "{}",
    "[a, b]",
    "{ enabled: true }",
    "\"${params.batch}\"",
    "\"${env.HOME}/x\"",
    "\"${secret.MY_TOKEN}\"",
    "\"${env.MY_TOKEN:-d}\"",
    "exponential",
    "skip",
    "UTC",
    "\"*/5 * * * *\"",
    "\"0 0 31 2 *\"",
    "*a",
];

/// Replaces the value of one `key: value` line: the structure stays, the values vary.
fn revalue(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(": ") && !lines[i].trim_start().starts_with('#'))
        .collect();
    if candidates.is_empty() {
        return text.to_string();
    }
    let i = candidates[rng.below(candidates.len())];
    if let Some(pos) = lines[i].find(": ") {
        lines[i].truncate(pos + 2);
        let value = *rng.pick(VALUES);
        lines[i].push_str(value);
    }
    lines.join("\n")
}

/// Mutates `text` once.
fn mutate(rng: &mut Rng, text: &str, corpus: &[String]) -> String {
    let bytes = text.as_bytes();
    let at = rng.below(bytes.len() + 1);
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 64);
    match rng.below(12) {
        // Change a value, keeping the structure.
        9..=11 => return revalue(rng, text),
        // Insert a fragment.
        0 | 1 => {
            out.extend_from_slice(&bytes[..at]);
            out.extend_from_slice(rng.pick(FRAGMENTS).as_bytes());
            out.extend_from_slice(&bytes[at..]);
        }
        // Delete a range.
        2 => {
            let end = (at + 1 + rng.below(40)).min(bytes.len());
            out.extend_from_slice(&bytes[..at.min(end)]);
            out.extend_from_slice(&bytes[end..]);
        }
        // Duplicate a range.
        3 => {
            let end = (at + 1 + rng.below(200)).min(bytes.len());
            out.extend_from_slice(&bytes[..end]);
            out.extend_from_slice(&bytes[at.min(end)..]);
        }
        // Replace a byte with a random one.
        4 => {
            out.extend_from_slice(bytes);
            if !out.is_empty() {
                let i = at.min(out.len() - 1);
                out[i] = (rng.next() & 0x7f) as u8;
            }
        }
        // Re-indent a line.
        5 => {
            let lines: Vec<&str> = text.split('\n').collect();
            let i = rng.below(lines.len());
            let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let shift = rng.below(5);
            lines[i] = if rng.below(2) == 0 {
                format!("{}{}", " ".repeat(shift), lines[i])
            } else {
                lines[i].trim_start_matches(' ').to_string()
            };
            return lines.join("\n");
        }
        // Swap two lines.
        6 => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(i, j);
            return lines.join("\n");
        }
        // Splice in lines of another file.
        7 => {
            let other = rng.pick(corpus);
            let lines: Vec<&str> = other.split('\n').collect();
            let from = rng.below(lines.len());
            let n = 1 + rng.below(8);
            let piece = lines[from..(from + n).min(lines.len())].join("\n");
            let mine: Vec<&str> = text.split('\n').collect();
            let i = rng.below(mine.len() + 1);
            let mut joined: Vec<&str> = mine[..i].to_vec();
            joined.push(&piece);
            joined.extend_from_slice(&mine[i..]);
            return joined.join("\n");
        }
        // Truncate.
        _ => out.extend_from_slice(&bytes[..at]),
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pipeline generated from scratch: random tasks, dependencies (cycles included), policies.
fn generate(rng: &mut Rng) -> String {
    let n = 1 + rng.below(12);
    let mut text = String::from("name: generated\nparams:\n  landing: data/landing\n  batch: 4\n");
    if rng.below(3) == 0 {
        text.push_str("  token: ${env.MY_TOKEN}\n");
    }
    if rng.below(4) == 0 {
        text.push_str("schedule: { cron: \"*/5 * * * *\", overlap: skip }\n");
    }
    text.push_str("tasks:\n");
    for i in 0..n {
        let ty = *rng.pick(&["command", "noop", "nope", "command"]);
        text.push_str(&format!("  t{i}:\n    type: {ty}\n"));
        if ty == "command" {
            text.push_str("    with: { argv: [echo, \"${params.landing}\"], env: { T: \"${params.batch}\" } }\n");
        }
        if rng.below(2) == 0 && n > 1 {
            let deps: Vec<String> = (0..1 + rng.below(3))
                .map(|_| format!("t{}", rng.below(n + 1)))
                .collect();
            text.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
        }
        if rng.below(3) == 0 {
            text.push_str(
                "    retries: { max_attempts: 3, initial_delay: 10ms }\n    timeout: 1m\n",
            );
        }
        if rng.below(4) == 0 {
            text.push_str("    cache: { enabled: true, ttl: 1h }\n");
        }
    }
    text
}

/// The example pipelines, then the validation cases; and how many examples there are.
fn corpus(root: &Path) -> (Vec<String>, usize) {
    let mut files = Vec::new();
    let mut examples = 0;
    for dir in ["pipelines", "tests/validation"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        files.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
        if dir == "pipelines" {
            examples = files.len();
        }
    }
    assert!(files.len() >= 10 && examples >= 2, "the examples are there");
    (files, examples)
}

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/tester".into()),
        "MY_TOKEN" => Some("fuzz-token-value".into()),
        _ => None,
    }
}

#[test]
fn generated_and_mutated_pipelines_never_panic_and_always_point_at_the_problem() {
    let cases: usize = std::env::var("TWEETFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("TWEETFLOW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (corpus, examples) = corpus(root);
    let registry = tweetflow_tasks::default_registry();
    let options = LoadOptions {
        registry: &registry,
        param_overrides: &[],
        env: &env,
    };
    let mut rng = Rng(seed | 1);
    let (mut valid, mut invalid) = (0usize, 0usize);
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for case in 0..cases {
        let text = if rng.below(10) == 0 {
            generate(&mut rng)
        } else {
            // Half the cases start from a valid example, so mutations that keep it valid
            // reach the whole validator.
            let sources = if rng.below(2) == 0 {
                &corpus[..examples]
            } else {
                &corpus[..]
            };
            let mut text = rng.pick(sources).clone();
            for _ in 0..1 + rng.below(3) {
                text = mutate(&mut rng, &text, &corpus);
            }
            text
        };
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            load_str("fuzz.yaml", &text, &options)
        }));
        let took = start.elapsed();
        slowest = slowest.max(took);
        let Ok(outcome) = outcome else {
            panic!("seed {seed}, case {case}: the loader panicked on:\n{text}");
        };
        assert!(
            took < Duration::from_secs(1),
            "seed {seed}, case {case}: took {took:?} on:\n{text}"
        );
        match outcome {
            Ok(p) => {
                assert!(!p.tasks.is_empty(), "seed {seed}, case {case}");
                valid += 1;
            }
            Err(d) => {
                assert!(
                    !d.items.is_empty(),
                    "seed {seed}, case {case}: no diagnostic"
                );
                // Lines as YAML counts them: `\n`, `\r\n` and a lone `\r` end a line.
                let lines = text
                    .replace("\r\n", "\n")
                    .replace('\r', "\n")
                    .split('\n')
                    .count();
                for item in &d.items {
                    assert!(
                        item.span.line >= 1 && item.span.column >= 1 && item.span.line <= lines + 1,
                        "seed {seed}, case {case}: position {}:{} outside the file ({lines} lines): {}\n{text}",
                        item.span.line,
                        item.span.column,
                        item.message
                    );
                    assert!(!item.message.is_empty(), "seed {seed}, case {case}");
                }
                invalid += 1;
            }
        }
    }
    println!(
        "{cases} pipelines (seed {seed}): {valid} valid, {invalid} refused with positions; slowest {slowest:?}; {:?} in all",
        started.elapsed()
    );
    assert_eq!(valid + invalid, cases);
    assert!(
        valid > 0 && invalid > 0,
        "the generator reaches both outcomes"
    );
}

/// The seed of the default run.
const DEFAULT_SEED: u64 = 0x7ee7_f10a;
