//! OpenAPI 3 documents generated from path schemas, for `path-help` and the
//! host's `sys/internal/specs/openapi`.

use serde_json::{json, Map, Value};

use super::field::{Field, FieldType};
use super::path::{OperationProperties, Path};
use super::request::Operation;

/// A document describing `paths`. The host merges it into its own, prefixing
/// each path with the mount.
pub fn document<'a>(
    title: &str,
    version: &str,
    description: &str,
    paths: impl Iterator<Item = &'a Path>,
) -> Value {
    let mut out = Map::new();
    let mut schemas = Map::new();
    for path in paths {
        let (item, schema) = path_item(path);
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

fn path_item(path: &Path) -> (Value, Option<(String, Value)>) {
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
    let schema_name = format!("{}Request", pascal_case(&id));
    let mut schema = None;
    let ops = |o: &Operation| path.operations.iter().any(|(op, _)| op == o);
    if ops(&Operation::Read) {
        item.insert("get".into(), operation(path, &Operation::Read, &id, None));
    }
    if ops(&Operation::List) {
        let mut op = operation(path, &Operation::List, &id, None);
        op["parameters"] = json!([{"name": "list", "description": "Must be set to `true`", "in": "query", "required": true, "schema": {"type": "string", "enum": ["true"]}}]);
        item.insert("get".into(), op);
    }
    if ops(&Operation::Create) || ops(&Operation::Update) {
        // One POST for both: update's properties when it has a handler.
        let write = if ops(&Operation::Update) {
            Operation::Update
        } else {
            Operation::Create
        };
        let body = (!body_fields.is_empty()).then(|| object_schema(&body_fields));
        item.insert("post".into(), operation(path, &write, &id, body.as_ref()));
        schema = body.map(|b| (schema_name.clone(), b));
    }
    if ops(&Operation::Delete) {
        item.insert(
            "delete".into(),
            operation(path, &Operation::Delete, &id, None),
        );
    }
    (Value::Object(item), schema)
}

/// The OpenAPI operation for `op` on `path`; `id` is the path's part of the
/// default operation id.
fn operation(path: &Path, op: &Operation, id: &str, body_schema: Option<&Value>) -> Value {
    let props = path.operation_properties(op);
    let mut out = json!({
        "summary": props.summary.unwrap_or(path.synopsis),
        "description": props.description.unwrap_or(path.description),
        "operationId": operation_id(op, props, id),
        "tags": ["secrets"],
        "responses": {"200": {"description": "OK"}},
    });
    if let Some(schema) = body_schema {
        // Inline, not a `$ref` to the component: the servers drop `$ref`
        // when they merge a plugin's document into theirs (the body schema
        // would read `{}`).
        out["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": schema}},
        });
    }
    out
}

/// `<verb>-<suffix>`: the operation's verb (`write` for create and update)
/// and the path's id unless the properties say otherwise. A verb given
/// without a suffix stands alone, as in the Go SDK.
fn operation_id(op: &Operation, props: &OperationProperties, id: &str) -> String {
    let verb = props.operation_verb.unwrap_or(match op {
        Operation::Create | Operation::Update => "write",
        other => other.as_str(),
    });
    let suffix = match (props.operation_suffix, props.operation_verb) {
        (Some(suffix), _) => suffix,
        (None, Some(_)) => "",
        (None, None) => id,
    };
    [verb, suffix]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("-")
}

fn object_schema(fields: &[&Field]) -> Value {
    let mut props = Map::new();
    for f in fields {
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
        props.insert(f.name.to_string(), p);
    }
    json!({"type": "object", "properties": props})
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
    use super::*;

    #[test]
    fn operation_ids_follow_the_go_sdk_rules() {
        let none = OperationProperties::new();
        assert_eq!(
            operation_id(&Operation::Update, &none, "roles-name"),
            "write-roles-name"
        );
        assert_eq!(operation_id(&Operation::List, &none, "roles"), "list-roles");
        let verb = OperationProperties::new().operation_verb("Rotate");
        assert_eq!(
            operation_id(&Operation::Update, &verb, "rotate-root"),
            "rotate"
        );
        let suffix = OperationProperties::new().operation_suffix("role");
        assert_eq!(
            operation_id(&Operation::Read, &suffix, "roles-name"),
            "read-role"
        );
        let both = verb.operation_suffix("root");
        assert_eq!(operation_id(&Operation::Create, &both, "x"), "rotate-root");
    }
}
