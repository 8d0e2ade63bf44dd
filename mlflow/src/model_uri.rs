//! `models:/` URIs as MLflow users write them.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The stages of MLflow's (deprecated, still served) stage workflow, in canonical spelling.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// A parsed `models:/` URI.
///
/// | form | variant |
/// |---|---|
/// | `models:/NAME@ALIAS` | [`ModelUri::Alias`] |
/// | `models:/NAME/VERSION` (digits) | [`ModelUri::Version`] |
/// | `models:/NAME/latest` | [`ModelUri::Latest`] |
/// | `models:/NAME/STAGE` (`Production`, `Staging`, `Archived`, `None`; any case) | [`ModelUri::Stage`] |
///
/// Model names cannot contain `/` in URIs (as in MLflow).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelUri {
    /// A fixed version.
    Version {
        /// Registered model name.
        name: String,
        /// Version number.
        version: u64,
    },
    /// The version an alias points at.
    Alias {
        /// Registered model name.
        name: String,
        /// Alias.
        alias: String,
    },
    /// The highest version number.
    Latest {
        /// Registered model name.
        name: String,
    },
    /// The latest version in a stage.
    Stage {
        /// Registered model name.
        name: String,
        /// Stage in canonical spelling (see [`STAGES`]).
        stage: String,
    },
}

impl ModelUri {
    /// Parses a `models:/` URI.
    pub fn parse(uri: &str) -> Result<ModelUri, Error> {
        let bad = |reason: &str| {
            Error::invalid_uri(
                uri,
                format!(
                    "{reason}; expected models:/NAME@ALIAS, models:/NAME/VERSION, models:/NAME/latest or models:/NAME/STAGE"
                ),
            )
        };
        let rest = uri
            .trim()
            .strip_prefix("models:")
            .ok_or_else(|| bad("not a models: URI"))?;
        // `models:/x`, and the `models:///x` form with an empty authority.
        let rest = rest
            .strip_prefix("//")
            .map(|r| r.strip_prefix('/').unwrap_or(r))
            .unwrap_or(rest);
        let rest = rest.strip_prefix('/').unwrap_or(rest).trim_end_matches('/');
        if rest.is_empty() {
            return Err(bad("no model name"));
        }
        if let Some((name, alias)) = rest.rsplit_once('@') {
            if name.is_empty() || name.contains('/') {
                return Err(bad("bad model name"));
            }
            if alias.is_empty() || alias.contains('/') {
                return Err(bad("bad alias"));
            }
            return Ok(ModelUri::Alias {
                name: name.to_string(),
                alias: alias.to_string(),
            });
        }
        let (name, tail) = rest
            .split_once('/')
            .ok_or_else(|| bad("no version, alias, stage or 'latest'"))?;
        if name.is_empty() || tail.is_empty() || tail.contains('/') {
            return Err(bad("wrong number of path segments"));
        }
        let name = name.to_string();
        if tail.bytes().all(|b| b.is_ascii_digit()) {
            let version = tail.parse().map_err(|_| bad("version out of range"))?;
            if version == 0 {
                return Err(bad("versions start at 1"));
            }
            return Ok(ModelUri::Version { name, version });
        }
        if tail.eq_ignore_ascii_case("latest") {
            return Ok(ModelUri::Latest { name });
        }
        match STAGES.iter().find(|s| s.eq_ignore_ascii_case(tail)) {
            Some(stage) => Ok(ModelUri::Stage {
                name,
                stage: (*stage).to_string(),
            }),
            None => Err(bad(&format!(
                "{tail:?} is neither a version number, 'latest' nor a stage ({})",
                STAGES.join(", ")
            ))),
        }
    }

    /// The registered model name.
    pub fn name(&self) -> &str {
        match self {
            ModelUri::Version { name, .. }
            | ModelUri::Alias { name, .. }
            | ModelUri::Latest { name }
            | ModelUri::Stage { name, .. } => name,
        }
    }
}

impl FromStr for ModelUri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelUri::parse(s)
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelUri::Version { name, version } => write!(f, "models:/{name}/{version}"),
            ModelUri::Alias { name, alias } => write!(f, "models:/{name}@{alias}"),
            ModelUri::Latest { name } => write!(f, "models:/{name}/latest"),
            ModelUri::Stage { name, stage } => write!(f, "models:/{name}/{stage}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let p = |s: &str| ModelUri::parse(s).unwrap();
        assert_eq!(
            p("models:/sent@champion"),
            ModelUri::Alias {
                name: "sent".into(),
                alias: "champion".into()
            }
        );
        assert_eq!(
            p("models:/sent/3"),
            ModelUri::Version {
                name: "sent".into(),
                version: 3
            }
        );
        assert_eq!(
            p("models:/sent/latest"),
            ModelUri::Latest {
                name: "sent".into()
            }
        );
        assert_eq!(
            p("models:/sent/Latest"),
            ModelUri::Latest {
                name: "sent".into()
            }
        );
        assert_eq!(
            p("models:/sent/production"),
            ModelUri::Stage {
                name: "sent".into(),
                stage: "Production".into()
            }
        );
        assert_eq!(
            p("models:/sent/Staging"),
            ModelUri::Stage {
                name: "sent".into(),
                stage: "Staging".into()
            }
        );
        assert_eq!(
            p("models:///sent/2"),
            ModelUri::Version {
                name: "sent".into(),
                version: 2
            }
        );
        assert_eq!(p("models:/my model.v2/1").name(), "my model.v2");
        for s in [
            "models:/sent@champion",
            "models:/sent/3",
            "models:/sent/latest",
            "models:/sent/Production",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        for bad in [
            "runs:/x/y",
            "models:/",
            "models:/sent",
            "models:/sent/",
            "models:/a/b/c",
            "models:/sent/Prod",
            "models:/@x",
            "models:/s@",
            "models:/s/0",
        ] {
            assert!(ModelUri::parse(bad).is_err(), "{bad}");
        }
    }
}
