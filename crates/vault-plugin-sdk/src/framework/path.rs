//! Paths: a URL pattern, its fields, and a handler per operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::error::Result;
use super::field::{Field, FieldType};
use super::request::{Operation, Request};
use super::response::Response;

/// What a [`Callback`] returns: a boxed, sendable future of a [`Result`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;
/// An async callback bound to the engine's state.
pub type Callback<I, T> = Arc<dyn Fn(I) -> BoxFuture<T> + Send + Sync>;
/// Handles one operation on a path.
pub type Handler = Callback<Request, Option<Response>>;

/// Binds an `async fn(Arc<S>, I) -> Result<T>` to shared state.
pub fn callback<S, I, T, F, Fut>(state: &Arc<S>, f: F) -> Callback<I, T>
where
    S: Send + Sync + 'static,
    I: 'static,
    F: Fn(Arc<S>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let state = Arc::clone(state);
    Arc::new(move |input| Box::pin(f(Arc::clone(&state), input)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(&'static str),
}

/// What one operation on a path is, besides its handler: where it may run
/// and how the OpenAPI document presents it. The Go SDK's
/// `framework.OperationProperties` (with `DisplayAttributes`' operation
/// verb and suffix). `Default` is an operation that runs on any node and is
/// documented with the path's help text.
///
/// ```
/// use vault_plugin_sdk::framework::OperationProperties;
/// let props = OperationProperties::new()
///     .forward_performance_standby()
///     .forward_performance_secondary()
///     .summary("Rotate the root credential.")
///     .operation_verb("rotate")
///     .operation_suffix("root");
/// assert!(props.forward_performance_standby);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationProperties {
    /// Never run this operation on a performance standby (a read-enabled HA
    /// standby): the framework answers it with [`Error::ReadOnly`] before
    /// validating the body or calling the handler, and the server forwards
    /// it to the active node. Set it on any operation that writes storage,
    /// creates a lease, or has a side effect outside the server, which
    /// would otherwise run once on the standby and again on the active
    /// node.
    ///
    /// [`Error::ReadOnly`]: super::error::Error::ReadOnly
    pub forward_performance_standby: bool,
    /// The same on a performance-replication secondary (Vault Enterprise):
    /// forwarded to the primary cluster, unless the mount is local to the
    /// secondary (`SystemView::local_mount`), whose data lives there.
    pub forward_performance_secondary: bool,
    /// One line for the OpenAPI operation's `summary`; the path's synopsis
    /// when `None`.
    pub summary: Option<&'static str>,
    /// The OpenAPI operation's `description`; the path's description when
    /// `None`.
    pub description: Option<&'static str>,
    /// The verb of the OpenAPI `operationId` (`<prefix>-<verb>-<suffix>`;
    /// the prefix: [`Backend::operation_prefix`](super::Backend::operation_prefix)), e.g.
    /// `rotate`; by default the operation's own (`read`, `list`, `write`,
    /// `delete`). Client generators name their methods after the id.
    pub operation_verb: Option<&'static str>,
    /// The rest of the `operationId`, e.g. `root`; by default the path's
    /// pattern in kebab case, or nothing when only a verb was given (as the
    /// Go SDK does).
    pub operation_suffix: Option<&'static str>,
}

impl OperationProperties {
    /// Runs anywhere, documented by the path's help text.
    pub const fn new() -> Self {
        Self {
            forward_performance_standby: false,
            forward_performance_secondary: false,
            summary: None,
            description: None,
            operation_verb: None,
            operation_suffix: None,
        }
    }

    /// Sets [`Self::forward_performance_standby`].
    pub const fn forward_performance_standby(mut self) -> Self {
        self.forward_performance_standby = true;
        self
    }

    /// Sets [`Self::forward_performance_secondary`].
    pub const fn forward_performance_secondary(mut self) -> Self {
        self.forward_performance_secondary = true;
        self
    }

    /// Sets [`Self::summary`].
    pub const fn summary(mut self, summary: &'static str) -> Self {
        self.summary = Some(summary);
        self
    }

    /// Sets [`Self::description`].
    pub const fn description(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    /// Sets [`Self::operation_verb`].
    pub const fn operation_verb(mut self, verb: &'static str) -> Self {
        self.operation_verb = Some(verb);
        self
    }

    /// Sets [`Self::operation_suffix`].
    pub const fn operation_suffix(mut self, suffix: &'static str) -> Self {
        self.operation_suffix = Some(suffix);
        self
    }

    /// Whether any rule needs the replication state at all.
    pub(crate) fn forwards(&self) -> bool {
        self.forward_performance_standby || self.forward_performance_secondary
    }
}

/// One path of an engine, e.g. `roles/{name}`.
pub struct Path {
    /// As given to [`Path::new`]; also the path's line in the root help.
    pub pattern: &'static str,
    segments: Vec<Segment>,
    /// The body and path fields, in the order of the OpenAPI schema.
    pub fields: Vec<Field>,
    /// One handler per operation; a later entry for the same operation is
    /// ignored.
    pub operations: Vec<(Operation, Handler)>,
    /// Properties of operations registered with [`Path::on_with`]; an
    /// operation not listed here has [`OperationProperties::default`].
    pub properties: Vec<(Operation, OperationProperties)>,
    /// Tells create from update; without it every write is an update.
    pub existence_check: Option<Callback<Request, bool>>,
    /// One line: the root help's entry and the OpenAPI summary.
    pub synopsis: &'static str,
    /// What `path-help` shows below the synopsis; the OpenAPI description.
    pub description: &'static str,
}

impl Path {
    /// `pattern` is `/`-separated; `{name}` captures one segment into the
    /// field `name` (declared automatically as a path field). A trailing `/`
    /// (`roles/`) marks a list path, matched with or without the slash.
    pub fn new(pattern: &'static str) -> Self {
        let mut fields = Vec::new();
        let segments = pattern
            .trim_end_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => {
                        fields.push(Field::new(name, FieldType::Name, "Name, part of the path."));
                        Segment::Capture(name)
                    }
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        Self {
            pattern,
            segments,
            fields,
            operations: Vec::new(),
            properties: Vec::new(),
            existence_check: None,
            synopsis: "",
            description: "",
        }
    }

    /// Adds a body field; a request with a body key that is no field is a 400.
    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// Adds several body fields (a shared list, say).
    pub fn fields(mut self, fields: impl IntoIterator<Item = Field>) -> Self {
        self.fields.extend(fields);
        self
    }

    /// Serves `operation` with `handler`, on any node and documented by the
    /// path's help (see [`Path::on_with`] for more).
    pub fn on(mut self, operation: Operation, handler: Handler) -> Self {
        self.operations.push((operation, handler));
        self
    }

    /// Like [`Path::on`], with the operation's [`OperationProperties`]:
    /// where it may run and how OpenAPI shows it.
    pub fn on_with(
        mut self,
        operation: Operation,
        handler: Handler,
        properties: OperationProperties,
    ) -> Self {
        self.properties.push((operation.clone(), properties));
        self.on(operation, handler)
    }

    /// The same handler for create and update (writes are upserts).
    pub fn on_write(self, handler: Handler) -> Self {
        self.on(Operation::Create, Arc::clone(&handler))
            .on(Operation::Update, handler)
    }

    /// [`Path::on_write`] with the same properties for create and update.
    pub fn on_write_with(self, handler: Handler, properties: OperationProperties) -> Self {
        self.on_with(Operation::Create, Arc::clone(&handler), properties.clone())
            .on_with(Operation::Update, handler, properties)
    }

    /// Sets [`Path::existence_check`]: whether the item a write names exists
    /// (so the server checks the `create` or the `update` capability).
    pub fn exists(mut self, check: Callback<Request, bool>) -> Self {
        self.existence_check = Some(check);
        self
    }

    /// Sets [`Path::synopsis`] and [`Path::description`].
    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> Self {
        self.synopsis = synopsis;
        self.description = description;
        self
    }

    /// Matches a request path, returning the captured segments.
    pub fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let parts: Vec<&str> = path
            .trim_end_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut captures = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Capture(name) if is_valid_name(part) => {
                    captures.push((*name, part.to_string()))
                }
                _ => return None,
            }
        }
        Some(captures)
    }

    /// The handler registered for `op` (no create-to-update fallback here).
    pub fn handler(&self, op: &Operation) -> Option<&Handler> {
        self.operations
            .iter()
            .find(|(o, _)| o == op)
            .map(|(_, h)| h)
    }

    /// The properties `op` was registered with (defaults for [`Path::on`]).
    pub fn operation_properties(&self, op: &Operation) -> &OperationProperties {
        static DEFAULT: OperationProperties = OperationProperties::new();
        self.properties
            .iter()
            .find(|(o, _)| o == op)
            .map_or(&DEFAULT, |(_, p)| p)
    }

    /// The OpenAPI path, `/roles/{name}`.
    pub fn openapi_path(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Capture(c) => {
                    out.push('{');
                    out.push_str(c);
                    out.push('}');
                }
            }
        }
        if self.pattern.ends_with('/') {
            out.push('/');
        }
        out
    }
}

/// Names in paths: letters, digits, `_`, `-` and `.`, not starting with `.`;
/// at most 128 characters. Keeps storage keys and key aliases clean.
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_capture_matching() {
        let p = Path::new("roles/{name}");
        assert_eq!(
            p.matches("roles/dev"),
            Some(vec![("name", "dev".to_string())])
        );
        assert_eq!(
            p.matches("roles/dev/"),
            Some(vec![("name", "dev".to_string())])
        );
        assert_eq!(p.matches("roles"), None);
        assert_eq!(p.matches("roles/a/b"), None);
        assert_eq!(p.matches("creds/dev"), None);
        assert_eq!(p.matches("roles/bad name"), None);
        assert_eq!(p.matches("roles/..x"), None);
        assert_eq!(p.fields[0].name, "name");
        assert_eq!(p.openapi_path(), "/roles/{name}");
    }

    #[test]
    fn list_paths_match_with_or_without_slash() {
        let p = Path::new("roles/");
        assert_eq!(p.matches("roles/"), Some(vec![]));
        assert_eq!(p.matches("roles"), Some(vec![]));
        assert_eq!(p.openapi_path(), "/roles/");
    }

    #[test]
    fn names() {
        assert!(is_valid_name("dev-team_1.v2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("ünï"));
        assert!(!is_valid_name(&"x".repeat(129)));
    }
}
