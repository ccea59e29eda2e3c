//! OpenAPI 3 documents generated from path schemas, for `path-help` and the
//! host's `sys/internal/specs/openapi`.

use serde_json::{json, Map, Value};

use super::field::{Field, FieldType};
use super::path::{OperationProperties, Path};
use super::request::Operation;

/// What operation ids (and so the request schemas' names) start with, as in
/// the Go SDK: it keeps them apart from other engines' in the server's
/// merged document.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdPrefix<'a> {
    /// The engine's own (Go's `OperationPrefix`): starts every id.
    pub engine: &'a str,
    /// The server's (the plugin's name, sent with the help request): starts
    /// the ids the engine gives no prefix and no verb of their own.
    pub server: &'a str,
}

/// A document describing `paths`. The host merges it into its own, prefixing
/// each path with the mount.
pub fn document<'a>(
    title: &str,
    version: &str,
    description: &str,
    prefix: IdPrefix<'_>,
    paths: impl Iterator<Item = &'a Path>,
) -> Value {
    let mut out = Map::new();
    let mut schemas = Map::new();
    for path in paths {
        let (item, schema) = path_item(path, prefix);
        if let Some((name, schema)) = schema {
            schemas.insert(name, schema);
        }
        out.insert(path.openapi_path(), item);
    }
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": title,
            "description": description.trim(),
            "version": version,
            "license": {"name": "MPL-2.0", "url": "https://www.mozilla.org/en-US/MPL/2.0/"},
        },
        "paths": out,
        "components": {"schemas": schemas},
    })
}

fn path_item(path: &Path, prefix: IdPrefix<'_>) -> (Value, Option<(String, Value)>) {
    let id = operation_id_base(path);
    let mut item = Map::new();
    item.insert("description".into(), json!(path.synopsis));
    let params: Vec<Value> = path
        .fields
        .iter()
        .filter(|f| f.ty == FieldType::Name)
        .map(|f| json!({"name": f.name, "description": f.description, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if !params.is_empty() {
        item.insert("parameters".into(), Value::Array(params));
    }
    if path.existence_check.is_some() {
        // Writes tell create from update: policies may grant either.
        item.insert("x-vault-createSupported".into(), json!(true));
    }
    let body_fields: Vec<&Field> = path
        .fields
        .iter()
        .filter(|f| f.ty != FieldType::Name)
        .collect();
    let mut schema = None;
    let ops = |o: &Operation| path.operations.iter().any(|(op, _)| op == o);
    // A path that takes no writes reads its fields from the query string
    // (`LIST keys/?after=...&limit=...`), as Go's `Query` fields.
    let query: Vec<Value> = if ops(&Operation::Create) || ops(&Operation::Update) {
        Vec::new()
    } else {
        body_fields
            .iter()
            .map(|f| json!({"name": f.name, "description": f.description, "in": "query", "schema": field_schema(f)}))
            .collect()
    };
    let operation = |op: &Operation, body: Option<&Value>| {
        let mut out = operation(path, op, prefix, &id, body);
        if !query.is_empty() {
            out["parameters"] = json!(query);
        }
        out
    };
    if ops(&Operation::Read) {
        item.insert("get".into(), operation(&Operation::Read, None));
    }
    if ops(&Operation::List) {
        let mut op = operation(&Operation::List, None);
        let mut params = vec![
            json!({"name": "list", "description": "Must be set to `true`", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}),
        ];
        params.extend(query.iter().cloned());
        op["parameters"] = json!(params);
        item.insert("get".into(), op);
    }
    let body = (!body_fields.is_empty()).then(|| object_schema(&body_fields));
    if ops(&Operation::Create) || ops(&Operation::Update) {
        // One POST for both: update's properties when it has a handler.
        let write = if ops(&Operation::Update) {
            Operation::Update
        } else {
            Operation::Create
        };
        let post = operation(&write, body.as_ref());
        // Named after the operation, as the Go SDK names request schemas.
        let schema_name = format!(
            "{}Request",
            pascal_case(post["operationId"].as_str().unwrap_or_default())
        );
        item.insert("post".into(), post);
        schema = body.clone().map(|b| (schema_name, b));
    }
    if ops(&Operation::Patch) {
        item.insert("patch".into(), operation(&Operation::Patch, body.as_ref()));
    }
    if ops(&Operation::Delete) {
        item.insert("delete".into(), operation(&Operation::Delete, None));
    }
    (Value::Object(item), schema)
}

/// The OpenAPI operation for `op` on `path`; `id` is the path's part of the
/// default operation id.
fn operation(
    path: &Path,
    op: &Operation,
    prefix: IdPrefix<'_>,
    id: &str,
    body_schema: Option<&Value>,
) -> Value {
    let props = path.operation_properties(op);
    let mut out = json!({
        "summary": props.summary.unwrap_or(path.synopsis),
        "description": props.description.unwrap_or(path.description),
        "operationId": operation_id(op, props, prefix, id),
        "tags": ["secrets"],
        "responses": {"200": {"description": "OK"}},
    });
    if let Some(schema) = body_schema {
        // Inline, not a `$ref` to the component: the servers drop `$ref`
        // when they merge a plugin's document into theirs (the body schema
        // would read `{}`).
        // The servers take a PATCH only as a JSON merge patch.
        let media = if *op == Operation::Patch {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        out["requestBody"] = json!({
            "required": true,
            "content": {media: {"schema": schema}},
        });
    }
    out
}

/// `<prefix>-<verb>-<suffix>`: the [`IdPrefix`], the operation's verb
/// (`write` for create and update) and the path's id unless the properties
/// say otherwise. A verb given without a suffix stands alone, as in the Go
/// SDK.
fn operation_id(
    op: &Operation,
    props: &OperationProperties,
    prefix: IdPrefix<'_>,
    id: &str,
) -> String {
    let verb = props.operation_verb.unwrap_or(match op {
        Operation::Create | Operation::Update => "write",
        other => other.as_str(),
    });
    let suffix = match (props.operation_suffix, props.operation_verb) {
        (Some(suffix), _) => suffix,
        (None, Some(_)) => "",
        (None, None) => id,
    };
    let prefix = match (prefix.engine, props.operation_verb) {
        ("", None) => prefix.server,
        ("", Some(_)) => "",
        (engine, _) => engine,
    };
    [prefix, verb, suffix]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("-")
}

fn object_schema(fields: &[&Field]) -> Value {
    let props: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_string(), field_schema(f)))
        .collect();
    json!({"type": "object", "properties": props})
}

fn field_schema(f: &Field) -> Value {
    let (ty, format) = f.ty.openapi();
    let mut p = json!({"type": ty, "description": f.description});
    if let Some(format) = format {
        p["format"] = json!(format);
    }
    if f.sensitive {
        p["format"] = json!("password");
    }
    match f.ty {
        FieldType::StringList => p["items"] = json!({"type": "string"}),
        FieldType::StringMap => p["additionalProperties"] = json!({"type": "string"}),
        _ => {}
    }
    if let Some(d) = &f.default {
        p["default"] = d.clone();
    }
    p
}

fn operation_id_base(path: &Path) -> String {
    let s: String = path
        .pattern
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let parts: Vec<&str> = s.split('-').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "root".into()
    } else {
        parts.join("-")
    }
}

fn pascal_case(s: &str) -> String {
    s.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::framework::{callback, Request, Response, Result};

    async fn nothing(_: Arc<()>, _: Request) -> Result<Option<Response>> {
        Ok(None)
    }

    #[test]
    fn fields_go_in_the_query_the_body_or_a_merge_patch() {
        let state = Arc::new(());
        let items = Path::new("items/")
            .field(Field::new("after", FieldType::String, "Paging."))
            .on(Operation::List, callback(&state, nothing));
        let things = Path::new("things/{name}")
            .field(Field::new("size", FieldType::Int, "How big."))
            .on(Operation::Read, callback(&state, nothing))
            .on(Operation::Update, callback(&state, nothing))
            .on(Operation::Patch, callback(&state, nothing));
        let doc = document(
            "t",
            "v",
            "d",
            IdPrefix::default(),
            [&items, &things].into_iter(),
        );
        let list = &doc["paths"]["/items/"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["list", "after"], "{list}");
        assert_eq!(list["parameters"][1]["in"], "query");
        // A path with writes takes its fields in the body.
        let read = &doc["paths"]["/things/{name}"]["get"];
        assert!(read.get("parameters").is_none(), "{read}");
        let post = &doc["paths"]["/things/{name}"]["post"];
        assert!(
            post["requestBody"]["content"]["application/json"]["schema"]["properties"]["size"]
                .is_object()
        );
        // A patch is a JSON merge patch of the same fields.
        let patch = &doc["paths"]["/things/{name}"]["patch"]["requestBody"]["content"];
        assert!(
            patch["application/merge-patch+json"]["schema"]["properties"]["size"].is_object(),
            "{patch}"
        );
    }

    #[test]
    fn operation_ids_follow_the_go_sdk_rules() {
        let none = OperationProperties::new();
        let verb = OperationProperties::new().operation_verb("Rotate");
        let suffix = OperationProperties::new().operation_suffix("role");
        let both = verb.clone().operation_suffix("root");
        let bare = IdPrefix::default();
        let server = IdPrefix {
            engine: "",
            server: "vault-plugin-secrets-litellm",
        };
        let engine = IdPrefix {
            engine: "litellm",
            server: "vault-plugin-secrets-litellm",
        };
        for (op, props, prefix, path, want) in [
            (
                Operation::Update,
                &none,
                bare,
                "roles-name",
                "write-roles-name",
            ),
            (Operation::List, &none, bare, "roles", "list-roles"),
            (
                Operation::Update,
                &none,
                server,
                "roles-name",
                "vault-plugin-secrets-litellm-write-roles-name",
            ),
            (
                Operation::Update,
                &none,
                engine,
                "roles-name",
                "litellm-write-roles-name",
            ),
            (Operation::Update, &verb, bare, "rotate-root", "rotate"),
            // The server's prefix is left out where the engine names the verb.
            (Operation::Update, &verb, server, "rotate-root", "rotate"),
            (
                Operation::Update,
                &verb,
                engine,
                "rotate-root",
                "litellm-rotate",
            ),
            (
                Operation::Read,
                &suffix,
                engine,
                "roles-name",
                "litellm-read-role",
            ),
            (Operation::Create, &both, engine, "x", "litellm-rotate-root"),
        ] {
            assert_eq!(
                operation_id(&op, props, prefix, path),
                want,
                "{op:?} {path}"
            );
        }
    }
}
