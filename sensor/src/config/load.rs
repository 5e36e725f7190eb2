//! Loading the effective configuration: defaults, then the TOML file, then
//! `SENSOR_<SECTION>_<KEY>` environment variables, then flags.
//!
//! Owns: the file format (one table per section, `ConfigFile`), the
//! mapping of environment variables onto keys, the record of where each value
//! came from, and error messages that point there (`FILE:LINE:COLUMN`, the
//! variable, or the flag). Inputs: a path, the environment as name/value
//! pairs (injectable, so tests never touch the process environment), flags.
//! Output: a validated [`SensorConfig`], or a one-line [`ConfigError`]. Does
//! not: define ranges (see `validate`) or flags (see `args`).
//!
//! The known sections and keys are those of the default configuration's TOML
//! form, so the file, the environment and `check-config` can never disagree
//! about which keys exist; an environment value is parsed as the type of its
//! key's default (lists: comma-separated).

use super::args::RunArgs;
use super::validate::Invalid;
use super::{
    CommunityIdConfig, DecapConfig, DefragConfig, DissectConfig, FlowConfig, HealthConfig,
    LiveConfig, OutputConfig, PipelineConfig, ReassemblyConfig, SensorConfig,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use toml::{Table, Value};

/// The file format: one table per section, every key optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ConfigFile {
    decap: DecapConfig,
    defrag: DefragConfig,
    flows: FlowConfig,
    community_id: CommunityIdConfig,
    reassembly: ReassemblyConfig,
    dissect: DissectConfig,
    live: LiveConfig,
    health: HealthConfig,
    output: OutputConfig,
    enroll: super::EnrollConfig,
    nucleus: super::NucleusConfig,
}

impl From<ConfigFile> for SensorConfig {
    fn from(f: ConfigFile) -> Self {
        Self {
            pipeline: PipelineConfig {
                decap: f.decap,
                defrag: f.defrag,
                flows: f.flows,
                community_id: f.community_id,
                reassembly: f.reassembly,
                dissect: f.dissect,
            },
            live: f.live,
            health: f.health,
            output: f.output,
            enroll: f.enroll,
            nucleus: f.nucleus,
        }
    }
}

impl From<SensorConfig> for ConfigFile {
    fn from(c: SensorConfig) -> Self {
        Self {
            decap: c.pipeline.decap,
            defrag: c.pipeline.defrag,
            flows: c.pipeline.flows,
            community_id: c.pipeline.community_id,
            reassembly: c.pipeline.reassembly,
            dissect: c.pipeline.dissect,
            live: c.live,
            health: c.health,
            output: c.output,
            enroll: c.enroll,
            nucleus: c.nucleus,
        }
    }
}

/// A configuration that cannot be used, with where and why, on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.line())]
pub struct ConfigError {
    /// `FILE:LINE:COLUMN`, `environment variable SENSOR_…` or `flag --…`,
    /// when the problem has a place.
    pub location: Option<String>,
    /// `section.key`, when the problem concerns one key.
    pub key: Option<String>,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl ConfigError {
    fn new(location: Option<String>, key: Option<String>, message: impl Into<String>) -> Self {
        Self {
            location,
            key,
            message: message.into(),
        }
    }

    fn line(&self) -> String {
        let parts = [self.location.as_deref(), self.key.as_deref()];
        let mut out: Vec<&str> = parts.into_iter().flatten().collect();
        out.push(&self.message);
        out.join(": ")
    }
}

/// Where a value came from, for messages about it.
#[derive(Debug, Clone)]
enum Origin {
    /// `FILE:LINE:COLUMN` of the key.
    File(String),
    /// The variable's name.
    Env(String),
    /// The flag, as typed.
    Flag(&'static str),
    /// Not given: computed from other keys (the explanation).
    Derived(&'static str),
}

impl Origin {
    fn location(&self) -> String {
        match self {
            Origin::File(at) => at.clone(),
            Origin::Env(name) => format!("environment variable {name}"),
            Origin::Flag(flag) => format!("flag {flag}"),
            Origin::Derived(why) => why.to_string(),
        }
    }
}

type Origins = HashMap<(String, String), Origin>;

/// Every section with its keys and their default TOML values.
fn schema() -> Result<Table, ConfigError> {
    Table::try_from(ConfigFile::default())
        .map_err(|e| ConfigError::new(None, None, format!("rendering the defaults: {e}")))
}

fn names(table: &Table) -> String {
    table
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `NAME:LINE:COLUMN` (both from 1, column in characters) of a byte offset.
fn position(name: &str, text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    format!("{name}:{line}:{column}")
}

/// Reads the file: checks every section and key exists (pointing at the
/// first unknown one), then deserializes it (pointing at the first bad value).
fn read_file(path: &Path, schema: &Table, origins: &mut Origins) -> Result<Table, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(Some(name.clone()), None, format!("cannot read: {e}")))?;
    let at = |offset: usize| Some(position(&name, &text, offset));
    let doc = toml::de::DeTable::parse(&text).map_err(|e| {
        let location = e.span().and_then(|s| at(s.start));
        ConfigError::new(location, None, e.message().trim())
    })?;

    let mut problems: Vec<(usize, ConfigError)> = Vec::new();
    let mut placed: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (section, body) in doc.get_ref() {
        let (s_name, s_at) = (section.get_ref().as_ref(), section.span().start);
        let Some(keys) = schema.get(s_name).and_then(Value::as_table) else {
            let m = format!(
                "unknown section [{s_name}]; valid sections: {}",
                names(schema)
            );
            problems.push((s_at, ConfigError::new(at(s_at), None, m)));
            continue;
        };
        let Some(table) = body.get_ref().as_table() else {
            let m = format!("must be a table ([{s_name}] followed by its keys)");
            problems.push((s_at, ConfigError::new(at(s_at), Some(s_name.into()), m)));
            continue;
        };
        for (key, value) in table {
            let (k_name, k_at) = (key.get_ref().as_ref(), key.span().start);
            let full = format!("{s_name}.{k_name}");
            if !keys.contains_key(k_name) {
                let m = format!(
                    "unknown key `{k_name}` in [{s_name}]; valid keys: {}",
                    names(keys)
                );
                problems.push((k_at, ConfigError::new(at(k_at), None, m)));
                continue;
            }
            let origin = Origin::File(position(&name, &text, k_at));
            origins.insert((s_name.to_string(), k_name.to_string()), origin);
            placed.push((key.span().start..value.span().end, full));
        }
    }
    if let Some((_, e)) = problems.into_iter().min_by_key(|(at, _)| *at) {
        return Err(e);
    }

    let parsed: ConfigFile = toml::from_str(&text).map_err(|e| {
        let start = e.span().map(|s| s.start);
        let key = start.and_then(|s| placed.iter().find(|(r, _)| r.contains(&s)));
        ConfigError::new(
            start.and_then(at),
            key.map(|(_, k)| k.clone()),
            e.message().trim(),
        )
    })?;
    Table::try_from(parsed).map_err(|e| ConfigError::new(Some(name), None, e.to_string()))
}

/// What a `SENSOR_…` variable is.
enum EnvName<'a> {
    /// `SENSOR_<SECTION>_<KEY>` of a known key.
    Setting(&'a str, &'a str, &'a Value),
    /// `SENSOR_<SECTION>_…` of no known key: a mistake.
    Unknown(&'a str, &'a Table),
    /// Not a setting (another program's variable).
    Other,
}

fn classify<'a>(name: &str, schema: &'a Table) -> EnvName<'a> {
    for (section, keys) in schema {
        let Some(keys) = keys.as_table() else {
            continue;
        };
        let prefix = format!("SENSOR_{}_", section.to_uppercase());
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        return match keys.iter().find(|(k, _)| k.to_uppercase() == rest) {
            Some((k, default)) => EnvName::Setting(section, k, default),
            None => EnvName::Unknown(section, keys),
        };
    }
    EnvName::Other
}

/// Parses an environment value as the type of the key's default.
fn env_value(text: &str, default: &Value) -> Result<Value, String> {
    let t = text.trim();
    match default {
        Value::Integer(_) => t
            .parse()
            .map(Value::Integer)
            .map_err(|_| format!("{text:?} is not an integer")),
        Value::Float(_) => t
            .parse()
            .map(Value::Float)
            .map_err(|_| format!("{text:?} is not a number")),
        Value::Boolean(_) => t
            .parse()
            .map(Value::Boolean)
            .map_err(|_| format!("{text:?} is not true or false")),
        Value::Array(items) => {
            let text_kind = Value::String(String::new());
            let kind = items.first().unwrap_or(&text_kind);
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| env_value(item, kind))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        // A table of strings (`[enroll] tags`): `key=value` pairs separated
        // by commas.
        Value::Table(_) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Ok((k.trim().to_string(), Value::String(v.trim().to_string())))
                }
                _ => Err(format!("{pair:?} is not key=value")),
            })
            .collect::<Result<Table, _>>()
            .map(Value::Table),
        _ => Ok(Value::String(text.to_string())),
    }
}

/// Applies the `SENSOR_…` variables to `table`, checking each value alone so
/// that a bad one is reported under its variable's name.
fn apply_env(
    table: &mut Table,
    env: &[(String, String)],
    schema: &Table,
    origins: &mut Origins,
) -> Result<(), ConfigError> {
    let mut env: Vec<&(String, String)> = env.iter().collect();
    env.sort();
    for (name, text) in env {
        let fail = |key: Option<String>, m: String| {
            ConfigError::new(Some(format!("environment variable {name}")), key, m)
        };
        let (section, key, value) = match classify(name, schema) {
            EnvName::Other => continue,
            EnvName::Unknown(section, keys) => {
                let valid: Vec<String> = keys
                    .keys()
                    .map(|k| format!("SENSOR_{}_{}", section.to_uppercase(), k.to_uppercase()))
                    .collect();
                let m = format!(
                    "no such setting; valid in [{section}]: {}",
                    valid.join(", ")
                );
                return Err(fail(None, m));
            }
            EnvName::Setting(section, key, default) => {
                let full = Some(format!("{section}.{key}"));
                let value = env_value(text, default).map_err(|m| fail(full.clone(), m))?;
                let mut one = Table::new();
                one.insert(key.to_string(), value.clone());
                let mut doc = Table::new();
                doc.insert(section.to_string(), Value::Table(one));
                Value::Table(doc)
                    .try_into::<ConfigFile>()
                    .map_err(|e| fail(full, e.message().trim().to_string()))?;
                (section, key, value)
            }
        };
        if let Some(Value::Table(t)) = table.get_mut(section) {
            t.insert(key.to_string(), value);
        }
        origins.insert(
            (section.to_string(), key.to_string()),
            Origin::Env(name.clone()),
        );
    }
    Ok(())
}

/// The `SENSOR_…` variables of this process. A setting whose value is not
/// UTF-8 is refused; variables with non-UTF-8 names are not settings.
pub fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("SENSOR_")) else {
            continue;
        };
        let Ok(value) = value.into_string() else {
            let location = Some(format!("environment variable {name}"));
            return Err(ConfigError::new(location, None, "value is not UTF-8"));
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

impl SensorConfig {
    /// The effective configuration of `sensor run`: defaults, then the file
    /// (`--config`), then `SENSOR_*` environment variables, then flags.
    pub fn from_run_args(args: &RunArgs) -> anyhow::Result<Self> {
        let env = process_env()?;
        Ok(Self::from_sources(args.config.as_deref(), &env, args)?)
    }

    /// The effective configuration from explicit sources, validated: the
    /// defaults, then `file` if any, then the `SENSOR_<SECTION>_<KEY>`
    /// variables among `env` (other names are ignored, `SENSOR_<SECTION>_…`
    /// names of no key refused), then the flags in `args` (whose `config` is
    /// not read: the file is `file`). When no source sets
    /// `health.tcp_listen`, it is the TCP counterpart of every listen address
    /// (the NLB checks the traffic port by default).
    pub fn from_sources(
        file: Option<&Path>,
        env: &[(String, String)],
        args: &RunArgs,
    ) -> Result<Self, ConfigError> {
        let schema = schema()?;
        let mut origins = Origins::new();
        let mut table = match file {
            Some(path) => read_file(path, &schema, &mut origins)?,
            None => schema.clone(),
        };
        apply_env(&mut table, env, &schema, &mut origins)?;
        let mut cfg: SensorConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new(None, None, e.message().trim()))?;
        for set in args.apply(&mut cfg) {
            let k = (set.section.to_string(), set.key.to_string());
            origins.insert(k, Origin::Flag(set.flag));
        }
        let tcp_listen = ("health".to_string(), "tcp_listen".to_string());
        if let std::collections::hash_map::Entry::Vacant(unset) = origins.entry(tcp_listen) {
            let mut derived = cfg.live.listen_vxlan.clone();
            derived.extend(&cfg.live.listen_geneve);
            cfg.health.tcp_listen = derived;
            unset.insert(Origin::Derived(
                "not set, so taken from live.listen_vxlan and live.listen_geneve; set it to choose",
            ));
        }
        let json = ("output".to_string(), "json".to_string());
        if cfg.nucleus.enabled()
            && let std::collections::hash_map::Entry::Vacant(unset) = origins.entry(json)
        {
            cfg.output.json.clear();
            unset.insert(Origin::Derived(
                "not set, so off: records go to the Nucleus ([nucleus] address)",
            ));
        }
        cfg.validate().map_err(
            |Invalid {
                 section,
                 key,
                 message,
             }| {
                let full = Some(format!("{section}.{key}"));
                match origins.get(&(section.to_string(), key.to_string())) {
                    Some(Origin::Derived(why)) => {
                        ConfigError::new(None, full, format!("{message} ({why})"))
                    }
                    origin => ConfigError::new(origin.map(Origin::location), full, message),
                }
            },
        )?;
        Ok(cfg)
    }

    /// The configuration as a TOML file that loads back to the same value.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self)
            .map_err(|e| ConfigError::new(None, None, format!("rendering: {e}")))?;
        Ok(format!(
            "# Effective configuration of the sensor (defaults, file, SENSOR_* environment).\n\n{body}"
        ))
    }
}

/// `sensor check-config FILE`: loads the file with the environment applied,
/// validates it, and renders the effective configuration as TOML.
pub fn check_config(args: &super::CheckConfigArgs) -> anyhow::Result<String> {
    let env = process_env()?;
    let cfg = SensorConfig::from_sources(Some(&args.file), &env, &RunArgs::default())?;
    Ok(cfg.to_toml()?)
}
