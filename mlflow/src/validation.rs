//! Client-side checks of what the server would refuse late, silently cut or misread.
//!
//! The limits are MLflow's own (`mlflow/utils/validation.py`).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::types::{Metric, Param, RunTag};

/// Longest param value the server stores whole; longer values are cut or refused by MLflow.
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
/// Longest tag value.
pub const MAX_TAG_VALUE_LENGTH: usize = 8000;
/// Longest metric, param or tag key.
pub const MAX_KEY_LENGTH: usize = 250;
/// Most metrics in one `log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params in one `log-batch` call.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// Most tags in one `log-batch` call.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// Most items (metrics + params + tags) in one `log-batch` call.
pub const MAX_ITEMS_PER_BATCH: usize = 1000;

/// Refuses an empty (or blank) name.
pub fn non_empty(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(())
}

/// Checks a metric, param or tag key as MLflow does: not empty, at most [`MAX_KEY_LENGTH`]
/// characters, only alphanumerics, `_`, `-`, `.`, ` `, `:`, `/`, and a normalized relative
/// path (no empty, `.` or `..` segments: keys may become file names).
pub fn key(what: &str, key: &str) -> Result<()> {
    non_empty(what, key)?;
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(Error::InvalidInput(format!(
            "{what} {key:?} is longer than {MAX_KEY_LENGTH} characters"
        )));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | ':' | '/')))
    {
        return Err(Error::InvalidInput(format!(
            "{what} {key:?} contains {c:?}; allowed: alphanumerics, '_', '-', '.', ' ', ':', '/'"
        )));
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(Error::InvalidInput(format!(
            "{what} {key:?} must be a normalized relative path (no leading, trailing or double '/', no '.' or '..')"
        )));
    }
    Ok(())
}

/// Checks a registered model alias: letters, digits, `_`, `-`; not `latest` nor `v<digits>`
/// (reserved by MLflow for version references).
pub fn alias(alias: &str) -> Result<()> {
    non_empty("alias", alias)?;
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::InvalidInput(format!(
            "alias {alias:?} may only contain letters, digits, '_' and '-'"
        )));
    }
    let lower = alias.to_ascii_lowercase();
    if lower == "latest"
        || (lower.len() > 1
            && lower.starts_with('v')
            && lower[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::InvalidInput(format!(
            "alias {alias:?} is reserved by MLflow (latest, v<version>)"
        )));
    }
    Ok(())
}

/// Checks a metric: valid key, finite value unless `allow_non_finite`, non-negative timestamp.
pub fn metric(m: &Metric, allow_non_finite: bool) -> Result<()> {
    key("metric key", &m.key)?;
    if !allow_non_finite && !m.value.is_finite() {
        return Err(Error::InvalidInput(format!(
            "metric {:?} at step {} has the non-finite value {}; refused (set \
             ClientConfig::allow_non_finite_metrics to send it as MLflow's \"NaN\"/\"Infinity\")",
            m.key, m.step, m.value
        )));
    }
    if m.timestamp < 0 {
        return Err(Error::InvalidInput(format!(
            "metric {:?} has a negative timestamp",
            m.key
        )));
    }
    Ok(())
}

/// Checks a param: valid key, value at most [`MAX_PARAM_VALUE_LENGTH`] characters.
pub fn param(p: &Param) -> Result<()> {
    key("param key", &p.key)?;
    let n = p.value.chars().count();
    if n > MAX_PARAM_VALUE_LENGTH {
        return Err(Error::InvalidInput(format!(
            "param {:?} has a value of {n} characters; MLflow keeps at most {MAX_PARAM_VALUE_LENGTH}",
            p.key
        )));
    }
    Ok(())
}

/// Checks a tag: valid key, value at most [`MAX_TAG_VALUE_LENGTH`] characters.
pub fn tag(t: &RunTag) -> Result<()> {
    key("tag key", &t.key)?;
    let n = t.value.chars().count();
    if n > MAX_TAG_VALUE_LENGTH {
        return Err(Error::InvalidInput(format!(
            "tag {:?} has a value of {n} characters; MLflow keeps at most {MAX_TAG_VALUE_LENGTH}",
            t.key
        )));
    }
    Ok(())
}

/// Removes exact duplicate params (same key and value) and refuses one key with two values.
pub fn dedup_params(run_id: &str, params: &[Param]) -> Result<Vec<Param>> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        match seen.get(p.key.as_str()) {
            Some(v) if *v == p.value => {}
            Some(v) => {
                return Err(Error::ParamChanged {
                    run_id: run_id.to_string(),
                    key: p.key.clone(),
                    logged: (*v).to_string(),
                    attempted: p.value.clone(),
                });
            }
            None => {
                seen.insert(&p.key, &p.value);
                out.push(p.clone());
            }
        }
    }
    Ok(out)
}

/// One `log-batch` request body worth of items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchChunk {
    /// Metrics of this call.
    pub metrics: Vec<Metric>,
    /// Params of this call.
    pub params: Vec<Param>,
    /// Tags of this call.
    pub tags: Vec<RunTag>,
}

/// Splits metrics, params and tags into chunks within the server's limits
/// ([`MAX_METRICS_PER_BATCH`], [`MAX_PARAMS_PER_BATCH`], [`MAX_TAGS_PER_BATCH`],
/// [`MAX_ITEMS_PER_BATCH`]). Order is kept within each kind; params and tags go first.
pub fn split_batch(metrics: &[Metric], params: &[Param], tags: &[RunTag]) -> Vec<BatchChunk> {
    let (mut mi, mut pi, mut ti) = (0, 0, 0);
    let mut out = Vec::new();
    while mi < metrics.len() || pi < params.len() || ti < tags.len() {
        let np = (params.len() - pi).min(MAX_PARAMS_PER_BATCH);
        let nt = (tags.len() - ti).min(MAX_TAGS_PER_BATCH);
        let room = MAX_ITEMS_PER_BATCH - np - nt;
        let nm = (metrics.len() - mi).min(MAX_METRICS_PER_BATCH).min(room);
        out.push(BatchChunk {
            metrics: metrics[mi..mi + nm].to_vec(),
            params: params[pi..pi + np].to_vec(),
            tags: tags[ti..ti + nt].to_vec(),
        });
        mi += nm;
        pi += np;
        ti += nt;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_limits_and_keeps_everything() {
        let metrics: Vec<Metric> = (0..2500).map(|i| Metric::at("m", i as f64, i, 1)).collect();
        let params: Vec<Param> = (0..250).map(|i| Param::new(format!("p{i}"), "v")).collect();
        let tags: Vec<RunTag> = (0..130)
            .map(|i| RunTag::new(format!("t{i}"), "v"))
            .collect();
        let chunks = split_batch(&metrics, &params, &tags);
        for c in &chunks {
            assert!(c.metrics.len() <= MAX_METRICS_PER_BATCH);
            assert!(c.params.len() <= MAX_PARAMS_PER_BATCH);
            assert!(c.tags.len() <= MAX_TAGS_PER_BATCH);
            assert!(c.metrics.len() + c.params.len() + c.tags.len() <= MAX_ITEMS_PER_BATCH);
        }
        let m: Vec<_> = chunks.iter().flat_map(|c| c.metrics.clone()).collect();
        assert_eq!(m, metrics);
        assert_eq!(chunks.iter().map(|c| c.params.len()).sum::<usize>(), 250);
        assert_eq!(chunks.iter().map(|c| c.tags.len()).sum::<usize>(), 130);
        assert!(split_batch(&[], &[], &[]).is_empty());
        assert_eq!(split_batch(&metrics[..1000], &[], &[]).len(), 1);
    }

    #[test]
    fn checks() {
        assert!(key("k", "").is_err());
        assert!(key("k", "a/b.c-d e_f").is_ok());
        assert!(key("k", "a:b").is_ok());
        assert!(key("k", "a*b").is_err());
        assert!(key("k", "a//b").is_err());
        assert!(key("k", "a/").is_err());
        assert!(key("k", "./a").is_err());
        assert!(alias("champion_2").is_ok());
        assert!(alias("v3").is_err());
        assert!(alias("Latest").is_err());
        assert!(alias("a b").is_err());
        assert!(key("k", "../x").is_err());
        assert!(key("k", &"x".repeat(251)).is_err());
        assert!(metric(&Metric::at("a", f64::NAN, 0, 0), false).is_err());
        assert!(metric(&Metric::at("a", f64::INFINITY, 0, 0), true).is_ok());
        assert!(param(&Param::new("a", "x".repeat(6000))).is_ok());
        assert!(param(&Param::new("a", "x".repeat(6001))).is_err());
        let d = dedup_params("r", &[Param::new("a", "1"), Param::new("a", "1")]).unwrap();
        assert_eq!(d.len(), 1);
        assert!(matches!(
            dedup_params("r", &[Param::new("a", "1"), Param::new("a", "2")]),
            Err(Error::ParamChanged { .. })
        ));
    }
}
