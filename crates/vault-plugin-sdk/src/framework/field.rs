//! Field schemas and their validation.
//!
//! Values arrive loosely typed: the CLI sends every `k=v` as a string, API
//! clients send JSON. Each field type accepts both forms (as Vault's Go
//! framework does), and everything else is a 400 that names the field.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{Error, Result};

/// The type of a field, which decides what input is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string; a JSON number is taken as its text.
    String,
    /// A single path segment captured from the URL (`roles/{name}`).
    Name,
    /// `true`/`false`, or a string such as `true`, `1`, `yes`, `f`, `no`.
    Bool,
    /// A whole number, or a string holding one.
    Int,
    /// A number, or a string holding one.
    Float,
    /// Seconds as a number, or a string such as `90`, `90s`, `15m`, `1h30m`, `7d`.
    Duration,
    /// A JSON array of strings, or a comma-separated string.
    StringList,
    /// A JSON object of strings, or `k=v` pairs (comma-separated string or array).
    StringMap,
    /// Any JSON object, or a string holding one (what the CLI sends).
    Object,
}

impl FieldType {
    /// The value that means "nothing set" for this type: `""`, `false`, `0`,
    /// `[]` or `{}`.
    pub fn empty_value(self) -> Value {
        match self {
            Self::String | Self::Name => Value::from(""),
            Self::Bool => Value::from(false),
            Self::Int | Self::Float | Self::Duration => Value::from(0),
            Self::StringList => Value::Array(Vec::new()),
            Self::StringMap | Self::Object => Value::Object(Map::new()),
        }
    }

    /// OpenAPI `type` (and `format`) for help output.
    pub fn openapi(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::String | Self::Name => ("string", None),
            Self::Bool => ("boolean", None),
            Self::Int => ("integer", None),
            Self::Float => ("number", None),
            Self::Duration => ("string", Some("duration")),
            Self::StringList => ("array", None),
            Self::StringMap | Self::Object => ("object", None),
        }
    }
}

/// One field of a path's schema.
#[derive(Debug, Clone)]
pub struct Field {
    /// The body key (or path capture) the field is read from.
    pub name: &'static str,
    /// What input is accepted.
    pub ty: FieldType,
    /// Shown in `path-help` and the OpenAPI document.
    pub description: &'static str,
    /// Shown as the default in help and used for a field the request does
    /// not give by [`FieldData::decode`] (and [`FieldData::defaults`]);
    /// [`FieldData::decode_given`] leaves it out, for partial updates.
    pub default: Option<Value>,
    /// Marked as a password in help output (never echoed by the engine).
    pub sensitive: bool,
    /// Longest accepted string (in bytes), and longest item of a list or map.
    pub max_len: usize,
}

/// Strings longer than this are refused unless a field allows more: nothing
/// an engine stores per role or config needs more, and it bounds storage.
pub const DEFAULT_MAX_LEN: usize = 1024;
/// At most this many items in a list or map field.
pub const MAX_ITEMS: usize = 256;

impl Field {
    /// An optional field with no default, at most [`DEFAULT_MAX_LEN`] bytes.
    pub fn new(name: &'static str, ty: FieldType, description: &'static str) -> Self {
        Self {
            name,
            ty,
            description,
            default: None,
            sensitive: false,
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// Allows strings (and list or map items) up to `max_len` bytes.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The value of this field when a request does not give it: the one
    /// place a default is written (help, OpenAPI and [`FieldData::decode`]
    /// read it from here).
    pub fn default_value(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Marks a secret (API keys, passwords): a password in OpenAPI, and its
    /// value never appears in a validation error.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Parses one raw value for this field, within its size limits.
    pub fn parse(&self, raw: &Value) -> Result<FieldValue> {
        let value = self.parse_type(raw)?;
        let too_long = |s: &String| s.len() > self.max_len;
        let (longest_ok, count) = match &value {
            FieldValue::Str(s) => (!too_long(s), 1),
            FieldValue::List(l) => (!l.iter().any(too_long), l.len()),
            FieldValue::Map(m) => (!m.iter().any(|(k, v)| too_long(k) || too_long(v)), m.len()),
            _ => (true, 1),
        };
        if !longest_ok {
            return Err(Error::invalid(format!(
                "field {:?}: longer than {} bytes",
                self.name, self.max_len
            )));
        }
        if count > MAX_ITEMS {
            return Err(Error::invalid(format!(
                "field {:?}: more than {MAX_ITEMS} items",
                self.name
            )));
        }
        Ok(value)
    }

    fn parse_type(&self, raw: &Value) -> Result<FieldValue> {
        let bad = |expected: &str| {
            // Errors reach the caller, the audit log and debug logs: the
            // value of a sensitive field is never part of one.
            let got = if self.sensitive {
                json_kind(raw).to_string()
            } else {
                describe(raw)
            };
            Error::invalid(format!(
                "field {:?}: expected {expected}, got {got}",
                self.name
            ))
        };
        Ok(match self.ty {
            FieldType::String | FieldType::Name => match raw {
                Value::String(s) => FieldValue::Str(s.clone()),
                Value::Number(n) => FieldValue::Str(n.to_string()),
                _ => return Err(bad("a string")),
            },
            FieldType::Bool => match raw {
                Value::Bool(b) => FieldValue::Bool(*b),
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "t" | "yes" => FieldValue::Bool(true),
                    "false" | "0" | "f" | "no" => FieldValue::Bool(false),
                    _ => return Err(bad("true or false")),
                },
                _ => return Err(bad("true or false")),
            },
            FieldType::Int => {
                let n = match raw {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                FieldValue::Int(n.ok_or_else(|| bad("an integer"))?)
            }
            FieldType::Float => {
                let f = match raw {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match f {
                    Some(f) if f.is_finite() => FieldValue::Float(f),
                    _ => return Err(bad("a number")),
                }
            }
            FieldType::Duration => {
                let d = match raw {
                    Value::Number(n) => n.as_u64().map(Duration::from_secs),
                    Value::String(s) => parse_duration(s),
                    _ => None,
                };
                let d = d.ok_or_else(|| {
                    bad("a non-negative duration such as 3600, \"90s\", \"15m\", \"1h30m\" or \"7d\"")
                })?;
                if d > MAX_DURATION {
                    return Err(Error::invalid(format!(
                        "field {:?}: at most {}s (about 292 years, the longest duration the \
                         server holds), got {}s",
                        self.name,
                        MAX_DURATION.as_secs(),
                        d.as_secs()
                    )));
                }
                FieldValue::Duration(d)
            }
            FieldType::StringList => match raw {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::String(s) if !s.trim().is_empty() => {
                                out.push(s.trim().to_string())
                            }
                            Value::String(_) => {}
                            _ => return Err(bad("a list of strings")),
                        }
                    }
                    FieldValue::List(out)
                }
                Value::String(s) => FieldValue::List(split_list(s)),
                _ => return Err(bad("a list of strings")),
            },
            FieldType::Object => {
                let parsed;
                let object = match raw {
                    Value::Object(map) => map,
                    Value::String(s) => {
                        parsed =
                            serde_json::from_str::<Value>(s).map_err(|_| bad("a JSON object"))?;
                        parsed.as_object().ok_or_else(|| bad("a JSON object"))?
                    }
                    _ => return Err(bad("a JSON object")),
                };
                if object.len() > MAX_ITEMS
                    || Value::Object(object.clone()).to_string().len() > 64 * 1024
                {
                    return Err(Error::invalid(format!(
                        "field {:?}: larger than {MAX_ITEMS} keys or 64 KiB",
                        self.name
                    )));
                }
                FieldValue::Object(object.clone())
            }
            FieldType::StringMap => {
                let mut out = BTreeMap::new();
                let pairs: Vec<String> = match raw {
                    Value::Object(map) => {
                        for (k, v) in map {
                            let v = match v {
                                Value::String(s) => s.clone(),
                                Value::Number(_) | Value::Bool(_) => v.to_string(),
                                _ => return Err(bad("an object of string values")),
                            };
                            out.insert(k.clone(), v);
                        }
                        Vec::new()
                    }
                    Value::String(s) => split_list(s),
                    Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| bad("key=value strings"))
                        })
                        .collect::<Result<_>>()?,
                    _ => return Err(bad("an object of string values or key=value pairs")),
                };
                for pair in pairs {
                    let (k, v) = pair
                        .split_once('=')
                        .filter(|(k, _)| !k.trim().is_empty())
                        .ok_or_else(|| bad("key=value pairs"))?;
                    out.insert(k.trim().to_string(), v.trim().to_string());
                }
                FieldValue::Map(out)
            }
        })
    }
}

/// A validated field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Of [`FieldType::String`] and [`FieldType::Name`].
    Str(String),
    /// Of [`FieldType::Bool`].
    Bool(bool),
    /// Of [`FieldType::Int`].
    Int(i64),
    /// Of [`FieldType::Float`].
    Float(f64),
    /// Of [`FieldType::Duration`].
    Duration(Duration),
    /// Of [`FieldType::StringList`].
    List(Vec<String>),
    /// Of [`FieldType::StringMap`].
    Map(BTreeMap<String, String>),
    /// Of [`FieldType::Object`].
    Object(Map<String, Value>),
}

impl FieldValue {
    /// The value as JSON in the shape serde expects for the matching Rust
    /// type (a duration as `{"secs", "nanos"}`, which `std::time::Duration`
    /// deserializes from), so that [`FieldData::decode`] fills typed structs.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Str(s) => Value::from(s.as_str()),
            Self::Bool(b) => Value::from(*b),
            Self::Int(i) => Value::from(*i),
            Self::Float(f) => Value::from(*f),
            Self::Duration(d) => {
                serde_json::json!({"secs": d.as_secs(), "nanos": d.subsec_nanos()})
            }
            Self::List(l) => Value::from(l.clone()),
            Self::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ),
            Self::Object(o) => Value::Object(o.clone()),
        }
    }
}

/// The validated fields of one request: path captures and body fields that
/// were actually given, and the schema's defaults for the others.
#[derive(Debug, Clone, Default)]
pub struct FieldData {
    values: HashMap<&'static str, FieldValue>,
    defaults: HashMap<&'static str, FieldValue>,
}

impl FieldData {
    /// Validates a request body (and the path captures) against a schema.
    /// Unknown fields are rejected rather than ignored, so a typo never
    /// silently drops a limit.
    pub fn parse(
        schema: &[Field],
        captures: &[(&'static str, String)],
        body: &Map<String, Value>,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        let mut defaults = HashMap::new();
        let mut unknown: Vec<&str> = body
            .keys()
            .filter(|k| !schema.iter().any(|f| f.name == k.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let allowed: Vec<&str> = schema
                .iter()
                .filter(|f| f.ty != FieldType::Name)
                .map(|f| f.name)
                .collect();
            return Err(Error::invalid(format!(
                "unknown field{} {}; this path accepts: {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if allowed.is_empty() {
                    "no fields".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        for field in schema {
            if field.ty == FieldType::Name && body.contains_key(field.name) {
                return Err(Error::invalid(format!(
                    "field {:?} is part of the path and cannot be set in the body",
                    field.name
                )));
            }
            if let Some((_, v)) = captures.iter().find(|(n, _)| *n == field.name) {
                values.insert(field.name, FieldValue::Str(v.clone()));
            } else if let Some(raw) = body.get(field.name).filter(|raw| !raw.is_null()) {
                values.insert(field.name, field.parse(raw)?);
            }
            if let Some(default) = &field.default {
                // A default that does not parse is a bug in the schema.
                let value = field.parse(default).map_err(|e| {
                    Error::Internal(format!("the schema's default is invalid: {e}"))
                })?;
                defaults.insert(field.name, value);
            }
        }
        Ok(Self { values, defaults })
    }

    /// The request's fields as the typed input struct `T`, each field not
    /// given taking the schema's default (Go's `FieldData.Get`). Fields of
    /// `T` are the schema's names; use `Option` for fields without a default
    /// and `std::time::Duration` for durations. A mismatch between `T` and
    /// the schema is a bug (500), never the caller's fault.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        let not_given = self
            .defaults
            .iter()
            .filter(|(name, _)| !self.values.contains_key(*name));
        Self::decode_from(not_given.chain(self.values.iter()))
    }

    /// [`FieldData::parse`] for a `PATCH` (a JSON merge patch, RFC 7386): a
    /// field set to `null` goes back to its default (or its type's
    /// [`FieldType::empty_value`]) and counts as given, so a partial update
    /// resets it; other fields are as in a write.
    pub fn parse_patch(
        schema: &[Field],
        captures: &[(&'static str, String)],
        body: &Map<String, Value>,
    ) -> Result<Self> {
        let body: Map<String, Value> = body
            .iter()
            .map(|(name, value)| {
                let reset = schema
                    .iter()
                    .find(|f| f.name == name.as_str() && value.is_null())
                    .map(|f| f.default.clone().unwrap_or_else(|| f.ty.empty_value()));
                (name.clone(), reset.unwrap_or_else(|| value.clone()))
            })
            .collect();
        Self::parse(schema, captures, &body)
    }

    /// Like [`FieldData::decode`] with only the fields the request gave:
    /// what a partial update changes (Go's `GetOk`).
    pub fn decode_given<T: DeserializeOwned>(&self) -> Result<T> {
        Self::decode_from(self.values.iter())
    }

    /// The schema's defaults alone, as a typed struct: what a first write
    /// starts from where a partial update keeps the stored value.
    pub fn defaults<T: DeserializeOwned>(&self) -> Result<T> {
        Self::decode_from(self.defaults.iter())
    }

    fn decode_from<'a, T: DeserializeOwned>(
        fields: impl Iterator<Item = (&'a &'static str, &'a FieldValue)>,
    ) -> Result<T> {
        let object: Map<String, Value> = fields
            .map(|(name, value)| ((*name).to_string(), value.to_json()))
            .collect();
        serde_json::from_value(Value::Object(object)).map_err(|e| {
            Error::Internal(format!(
                "the request does not fit the path's input type: {e}"
            ))
        })
    }

    /// Whether the request gave `name` (a path capture always is): tells a
    /// partial update what to leave alone.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A [`FieldType::String`] or [`FieldType::Name`] field; `None` when not
    /// given (or of another type).
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(FieldValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A [`FieldType::Bool`] field, `None` when not given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(FieldValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A [`FieldType::Int`] field, `None` when not given.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(FieldValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// A [`FieldType::Float`] field, `None` when not given.
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(FieldValue::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// A [`FieldType::Duration`] field, `None` when not given.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.values.get(name) {
            Some(FieldValue::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    /// A [`FieldType::StringList`] field, `None` when not given.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        match self.values.get(name) {
            Some(FieldValue::List(l)) => Some(l),
            _ => None,
        }
    }

    /// A [`FieldType::StringMap`] field, `None` when not given.
    pub fn map(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        match self.values.get(name) {
            Some(FieldValue::Map(m)) => Some(m),
            _ => None,
        }
    }

    /// A [`FieldType::Object`] field, `None` when not given.
    pub fn object(&self, name: &str) -> Option<&Map<String, Value>> {
        match self.values.get(name) {
            Some(FieldValue::Object(m)) => Some(m),
            _ => None,
        }
    }
}

/// The longest duration a field takes: what the server's own durations hold
/// (Go's `time.Duration`, nanoseconds in an `i64`, about 292 years). Longer
/// values could not be sent back as a TTL, and sums of them (an expiry, a
/// next rotation) would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(i64::MAX as u64 / 1_000_000_000);

/// Parses `90`, `90s`, `15m`, `1h30m`, `2d`, `1w`; `None` for anything else.
pub fn parse_duration(input: &str) -> Option<Duration> {
    let s = input.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs(total))
}

/// Formats a duration the way Vault prints TTLs (`1h30m0s`, `45s`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The JSON type of a value, without the value.
fn json_kind(raw: &Value) -> &'static str {
    match raw {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe(raw: &Value) -> String {
    let text = raw.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Vec<Field> {
        vec![
            Field::new("name", FieldType::Name, "name"),
            Field::new("s", FieldType::String, ""),
            Field::new("b", FieldType::Bool, ""),
            Field::new("i", FieldType::Int, ""),
            Field::new("f", FieldType::Float, ""),
            Field::new("d", FieldType::Duration, ""),
            Field::new("l", FieldType::StringList, ""),
            Field::new("m", FieldType::StringMap, ""),
        ]
    }

    fn parse(body: Value) -> Result<FieldData> {
        FieldData::parse(
            &schema(),
            &[("name", "dev".into())],
            body.as_object().unwrap(),
        )
    }

    #[test]
    fn a_patch_sets_null_fields_back_to_their_defaults() {
        let mut schema = schema();
        schema.push(Field::new("t", FieldType::Duration, "").default_value(3600));
        let d = FieldData::parse_patch(
            &schema,
            &[("name", "dev".into())],
            json!({"s": null, "l": null, "m": null, "t": null, "i": 5})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        // Given (so a partial update changes them), with the empty value or
        // the schema's default.
        assert_eq!(d.str("s"), Some(""));
        assert_eq!(d.list("l"), Some(&[][..]));
        assert!(d.map("m").is_some_and(BTreeMap::is_empty));
        assert_eq!(d.duration("t"), Some(Duration::from_secs(3600)));
        assert_eq!(d.int("i"), Some(5));
        // Fields the patch leaves out stay out.
        assert_eq!(d.bool("b"), None);
        // A plain write still takes null as "not given".
        let w = parse(json!({"s": null})).unwrap();
        assert_eq!(w.str("s"), None);
        // An unknown field is refused, null or not.
        let err = FieldData::parse_patch(&schema, &[], json!({"nope": null}).as_object().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("unknown field \"nope\""), "{err}");
    }

    #[test]
    fn sensitive_values_never_appear_in_errors() {
        let secret = Field::new("master_key", FieldType::String, "").sensitive();
        for raw in [
            json!({"k": "sk-secret-1234"}),
            json!(["sk-secret-1234"]),
            json!(true),
        ] {
            let err = secret.parse(&raw).unwrap_err().to_string();
            assert!(err.contains("master_key"), "{err}");
            assert!(err.contains("expected a string"), "{err}");
            assert!(!err.contains("sk-secret"), "{err}");
        }
        let long = Field::new("master_key", FieldType::String, "")
            .sensitive()
            .max_len(4);
        let err = long.parse(&json!("sk-secret-1234")).unwrap_err();
        assert!(!err.to_string().contains("sk-secret"), "{err}");
        // Other fields keep showing what was wrong.
        let plain = Field::new("ttl", FieldType::Duration, "");
        let err = plain.parse(&json!("soon")).unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn accepts_json_types() {
        let d = parse(
            json!({"s":"x","b":true,"i":7,"f":1.5,"d":60,"l":["a"," b ",""],"m":{"k":"v","n":1}}),
        )
        .unwrap();
        assert_eq!(d.str("name"), Some("dev"));
        assert_eq!(d.str("s"), Some("x"));
        assert_eq!(d.bool("b"), Some(true));
        assert_eq!(d.int("i"), Some(7));
        assert_eq!(d.float("f"), Some(1.5));
        assert_eq!(d.duration("d"), Some(Duration::from_secs(60)));
        assert_eq!(d.list("l").unwrap(), ["a", "b"]);
        assert_eq!(d.map("m").unwrap().get("n").map(String::as_str), Some("1"));
    }

    #[test]
    fn accepts_cli_strings() {
        let d =
            parse(json!({"b":"false","i":"42","f":"0.25","d":"1h30m","l":"a, b,,c","m":"x=1,y=2"}))
                .unwrap();
        assert_eq!(d.bool("b"), Some(false));
        assert_eq!(d.int("i"), Some(42));
        assert_eq!(d.float("f"), Some(0.25));
        assert_eq!(d.duration("d"), Some(Duration::from_secs(5400)));
        assert_eq!(d.list("l").unwrap(), ["a", "b", "c"]);
        assert_eq!(d.map("m").unwrap().len(), 2);
        let d = parse(json!({"m":["a=b","c=d=e"]})).unwrap();
        assert_eq!(d.map("m").unwrap()["c"], "d=e");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse(json!({"max_budgte": 1, "zzz": 2})).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("unknown fields \"max_budgte\", \"zzz\""),
            "{msg}"
        );
        assert!(msg.contains("this path accepts: s, b, i"), "{msg}");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (body, field) in [
            (json!({"b":"maybe"}), "\"b\""),
            (json!({"i":1.5}), "\"i\""),
            (json!({"i":"ten"}), "\"i\""),
            (json!({"f":"NaN"}), "\"f\""),
            (json!({"f":[1]}), "\"f\""),
            (json!({"d":"-5s"}), "\"d\""),
            (json!({"d":-5}), "\"d\""),
            (json!({"d":"5 parsecs"}), "\"d\""),
            (json!({"l":[1,2]}), "\"l\""),
            (json!({"m":"novalue"}), "\"m\""),
            (json!({"m":{"k":{"nested":true}}}), "\"m\""),
            (json!({"s":{"x":1}}), "\"s\""),
        ] {
            let err = parse(body.clone()).unwrap_err();
            assert!(err.to_string().contains(field), "{body}: {err}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let err = parse(json!({"s": "x".repeat(DEFAULT_MAX_LEN + 1)})).unwrap_err();
        assert!(err.to_string().contains("\"s\": longer than"), "{err}");
        let items: Vec<String> = (0..=MAX_ITEMS).map(|i| i.to_string()).collect();
        let err = parse(json!({"l": items})).unwrap_err();
        assert!(err.to_string().contains("\"l\": more than"), "{err}");
        let err = parse(json!({"m": {"k": "v".repeat(DEFAULT_MAX_LEN + 1)}})).unwrap_err();
        assert!(err.to_string().contains("\"m\""), "{err}");
        let wide = Field::new("pem", FieldType::String, "").max_len(1 << 20);
        assert!(wide.parse(&json!("x".repeat(DEFAULT_MAX_LEN * 4))).is_ok());
    }

    #[test]
    fn path_fields_cannot_come_from_the_body() {
        let err = parse(json!({"name":"other"})).unwrap_err();
        assert!(err.to_string().contains("part of the path"));
    }

    #[test]
    fn null_means_not_given() {
        let d = parse(json!({"s": null})).unwrap();
        assert!(!d.contains("s"));
    }

    #[test]
    fn typed_inputs_take_given_values_and_schema_defaults() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Input {
            name: String,
            s: Option<String>,
            limit: i64,
            ttl: Duration,
            l: Option<Vec<String>>,
        }
        let schema = vec![
            Field::new("name", FieldType::Name, ""),
            Field::new("s", FieldType::String, ""),
            Field::new("limit", FieldType::Int, "").default_value(100),
            Field::new("ttl", FieldType::Duration, "").default_value("1h"),
            Field::new("l", FieldType::StringList, ""),
        ];
        let body = json!({"ttl": "90s", "l": "a,b"});
        let d = FieldData::parse(
            &schema,
            &[("name", "dev".into())],
            body.as_object().unwrap(),
        )
        .unwrap();
        let input: Input = d.decode().unwrap();
        assert_eq!(
            input,
            Input {
                name: "dev".into(),
                s: None,
                limit: 100,
                ttl: Duration::from_secs(90),
                l: Some(vec!["a".into(), "b".into()]),
            }
        );
        #[derive(serde::Deserialize)]
        struct Update {
            limit: Option<i64>,
            ttl: Option<Duration>,
        }
        let given: Update = d.decode_given().unwrap();
        assert_eq!(
            (given.limit, given.ttl),
            (None, Some(Duration::from_secs(90)))
        );
        let defaults: Update = d.defaults().unwrap();
        assert_eq!(
            (defaults.limit, defaults.ttl),
            (Some(100), Some(Duration::from_secs(3600)))
        );
        // A struct that does not match its schema is the engine's bug.
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrong {
            limit: String,
        }
        assert_eq!(d.decode::<Wrong>().unwrap_err().status(), 500);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(
            parse_duration("1w1d1h1m1s"),
            Some(Duration::from_secs(694_861))
        );
        assert_eq!(parse_duration("1.5h"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
    }

    #[test]
    fn durations_beyond_the_servers_range_are_refused_naming_the_field() {
        let most = MAX_DURATION.as_secs();
        assert_eq!(
            parse(json!({"d": most})).unwrap().duration("d"),
            Some(MAX_DURATION)
        );
        for too_long in [
            json!(most + 1),
            json!(u64::MAX),
            json!(u64::MAX.to_string()),
            json!("300000y"),
        ] {
            let err = parse(json!({"d": too_long})).unwrap_err();
            assert_eq!(err.status(), 400, "{err}");
            assert!(err.to_string().contains("field \"d\""), "{err}");
        }
        let err = parse(json!({"d": "107000000w"})).unwrap_err();
        assert!(err.to_string().contains("at most 9223372036s"), "{err}");
    }
}
