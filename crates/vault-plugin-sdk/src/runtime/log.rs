//! hclog-compatible JSON lines on stderr.
//!
//! The host parses each stderr line that is a JSON object as an hclog record:
//! `@level` (trace|debug|info|warn|error), `@message`, `@timestamp` with
//! exactly six fractional digits, and any other key as a field. A line it
//! cannot parse is logged raw at DEBUG, so the format is kept exact.
//!
//! Which events are the plugin's, and their `@module`, follow from the
//! plugin's name ([`PluginInfo::name`](super::PluginInfo::name), given to
//! [`init`]) by Cargo's own rule: a package or binary named
//! `vault-plugin-secrets-x` is the crate `vault_plugin_secrets_x`, and
//! `tracing` names each event after its module (`vault_plugin_secrets_x::engine::creds`).
//!
//! * Events of that crate and of this SDK are the plugin's: logged from
//!   `PLUGIN_LOG_LEVEL` up, with `@module` the module path inside the crate
//!   (`engine::creds`, `runtime::server`), or the plugin's name for the
//!   crate's root module.
//! * Anything else is a dependency's (h2, hyper, rustls, ...): logged from
//!   WARN up only, with `@module` its full target.
//!
//! The server adds its own logger name to each line
//! (`secrets.<mount>...<binary>`), so `@module` says where inside the plugin
//! a line comes from. A plugin whose name is not its crate's (Cargo's
//! `[[bin]] name` differing from the package) has its own events counted
//! as a dependency's: keep [`PluginInfo::name`](super::PluginInfo::name)
//! the package name.

use std::io::Write;

use serde_json::{Map, Value};
use time::format_description::FormatItem;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const OUR_CRATE: &str = env!("CARGO_CRATE_NAME");

/// Writes events at `max_level` and above; dependencies only from WARN up.
/// Installed by [`init`].
pub struct HclogLayer {
    max_level: Level,
    /// The engine's crate (as tracing names it), whose events count as ours.
    app_crate: String,
    /// `@module` of the engine crate's root module.
    plugin_name: String,
}

impl HclogLayer {
    /// The module path below our crates, or `None` for a dependency's event
    /// (only warnings and errors of those are logged).
    fn module<'a>(&self, target: &'a str) -> Option<&'a str> {
        [OUR_CRATE, self.app_crate.as_str()]
            .into_iter()
            .filter(|c| !c.is_empty())
            .find_map(|c| target.strip_prefix(c))
            .filter(|rest| rest.is_empty() || rest.starts_with("::"))
            .map(|rest| rest.trim_start_matches("::"))
    }

    /// The `@module` of an event with this target (see the module docs).
    fn module_name<'a>(&'a self, target: &'a str) -> &'a str {
        match self.module(target) {
            Some(m) if !m.is_empty() => m,
            Some(_) if target == self.app_crate => &self.plugin_name,
            _ => target,
        }
    }
}

/// Installs the hclog writer; [`serve`](super::serve) calls it with
/// [`PluginInfo::name`](super::PluginInfo::name).
///
/// Reads the level from `PLUGIN_LOG_LEVEL` (trace|debug|info|warn|error,
/// default info). The host filters again by its own level. Events of the
/// SDK and of the engine's crate (`plugin_name` with `_` for `-`, Cargo's
/// crate name) are logged at that level, dependencies' only from warn up.
pub fn init(plugin_name: &str) {
    let max_level = std::env::var("PLUGIN_LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse::<Level>().ok())
        .unwrap_or(Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(HclogLayer {
            max_level,
            app_crate: plugin_name.replace('-', "_"),
            plugin_name: plugin_name.to_owned(),
        })
        .try_init();
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// One hclog record as a JSON line (without the newline).
pub fn record(
    level: &Level,
    module: &str,
    message: &str,
    fields: Map<String, Value>,
    now: time::OffsetDateTime,
) -> String {
    let mut obj = Map::new();
    obj.insert("@level".into(), level_name(level).into());
    obj.insert("@message".into(), message.into());
    obj.insert(
        "@timestamp".into(),
        now.format(TIMESTAMP).unwrap_or_default().into(),
    );
    obj.insert("@module".into(), module.into());
    for (k, v) in fields {
        obj.entry(k).or_insert(v);
    }
    Value::Object(obj).to_string()
}

/// Writes one record straight to stderr, without the subscriber: for
/// start-up refusals, which happen before (or instead of) `init`.
pub fn emit(level: &Level, message: &str, fields: &[(&str, &str)]) {
    let fields = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let line = record(
        level,
        "runtime",
        message,
        fields,
        time::OffsetDateTime::now_utc(),
    );
    write_line(line);
}

/// One `write` per record (stderr is unbuffered: `writeln!` would make
/// two), so lines of concurrent tasks never interleave and cost one syscall.
fn write_line(mut line: String) {
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.into();
        } else {
            self.fields.insert(field.name().into(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let level = metadata.level();
        let ours = self.module(metadata.target()).is_some();
        *level <= self.max_level && (ours || *level <= Level::WARN)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = record(
            meta.level(),
            self.module_name(meta.target()),
            &fields.message,
            fields.fields,
            time::OffsetDateTime::now_utc(),
        );
        write_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_the_sdk_and_the_engine_are_ours() {
        let layer = HclogLayer {
            max_level: Level::INFO,
            app_crate: "vault_plugin_secrets_x".into(),
            plugin_name: "vault-plugin-secrets-x".into(),
        };
        assert_eq!(
            layer.module("vault_plugin_secrets_x::engine::creds"),
            Some("engine::creds")
        );
        assert_eq!(
            layer.module("vault_plugin_sdk::runtime::server"),
            Some("runtime::server")
        );
        assert_eq!(layer.module("vault_plugin_secrets_x_other::a"), None);
        assert_eq!(layer.module("h2::proto"), None);

        assert_eq!(
            layer.module_name("vault_plugin_secrets_x::engine::creds"),
            "engine::creds"
        );
        assert_eq!(
            layer.module_name("vault_plugin_secrets_x"),
            "vault-plugin-secrets-x"
        );
        assert_eq!(layer.module_name("h2::proto"), "h2::proto");
    }

    #[test]
    fn record_has_hclog_shape() {
        let now = time::macros::datetime!(2026-11-27 13:34:32.471123456 UTC);
        let mut fields = Map::new();
        fields.insert("role".into(), "dev".into());
        fields.insert("@level".into(), "error".into());
        let line = record(&Level::WARN, "engine::creds", "issued", fields, now);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "issued");
        assert_eq!(v["@timestamp"], "2026-11-27T13:34:32.471123Z");
        assert_eq!(v["@module"], "engine::creds");
        assert_eq!(v["role"], "dev");
        assert!(!line.contains('\n'));
    }
}
