//! Paths: a URL pattern, its fields, and a handler per operation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::error::Result;
use super::field::{Field, FieldType};
use super::request::{Operation, Request};
use super::response::Response;

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

/// One path of an engine, e.g. `roles/{name}`.
pub struct Path {
    pub pattern: &'static str,
    segments: Vec<Segment>,
    pub fields: Vec<Field>,
    pub operations: Vec<(Operation, Handler)>,
    /// Tells create from update; without it every write is an update.
    pub existence_check: Option<Callback<Request, bool>>,
    pub synopsis: &'static str,
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
            existence_check: None,
            synopsis: "",
            description: "",
        }
    }

    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    pub fn fields(mut self, fields: impl IntoIterator<Item = Field>) -> Self {
        self.fields.extend(fields);
        self
    }

    pub fn on(mut self, operation: Operation, handler: Handler) -> Self {
        self.operations.push((operation, handler));
        self
    }

    /// The same handler for create and update (writes are upserts).
    pub fn on_write(self, handler: Handler) -> Self {
        self.on(Operation::Create, Arc::clone(&handler))
            .on(Operation::Update, handler)
    }

    pub fn exists(mut self, check: Callback<Request, bool>) -> Self {
        self.existence_check = Some(check);
        self
    }

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

    pub fn handler(&self, op: &Operation) -> Option<&Handler> {
        self.operations
            .iter()
            .find(|(o, _)| o == op)
            .map(|(_, h)| h)
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
