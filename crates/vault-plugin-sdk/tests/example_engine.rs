//! The proof that someone else can write a plugin with this SDK: the
//! `notes` example engine, registered by sha256 and mounted on a real
//! OpenBao (or Vault) dev server, serves its paths through the server.
//! Runs with the project's test harness (`make test`).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::{eventually, per_server, sha256_file, DevServer, Engine, Steps};

/// `target/<profile>/examples/notes` (`make test` builds it first: `cargo
/// build -p vault-plugin-sdk --example notes`).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("examples").join("notes");
    assert!(
        binary.is_file(),
        "{} is missing: cargo build -p vault-plugin-sdk --example notes",
        binary.display()
    );
    binary
}

fn the_example_engine_serves_its_paths_on_a_real_server(engine: Engine) {
    let binary = example_binary();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let steps = Steps::new(format!("sdk-example/{engine}"));
    let server = DevServer::start(engine, &binary);
    server.register_plugin("notes", &sha256_file(&binary), &version);
    server.enable("notes", "notes", &version);

    steps.step("write, read, list, delete through the server");
    let (status, body) = server.put("notes/notes/first", &json!({"text": "hello"}));
    assert_eq!(status, 204, "{body}");
    let (status, body) = server.get("notes/notes/first");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["text"], "hello");
    let (status, body) = server.list("notes/notes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["keys"], json!(["first"]));
    let (status, body) = server.put("notes/notes/second", &json!({"colour": "red"}));
    assert_eq!(status, 400, "unknown field: {body}");
    let (status, _) = server.delete("notes/notes/first");
    assert_eq!(status, 204);
    let (status, _) = server.get("notes/notes/first");
    assert_eq!(status, 404);

    steps.step("the example's own log line reaches the server as hclog");
    // `notes` is both the plugin's name and its crate: the line is the
    // plugin's (INFO, not filtered like a dependency's), and its
    // `@module` is the plugin's name (the crate's root module).
    eventually("the note's log line", Duration::from_secs(10), || {
        let log = server.log_text();
        (log.contains("note written") && log.contains("@module=notes")).then_some(())
    });

    steps.step("the OpenAPI document carries the example's own name");
    let (status, body) = server.get("sys/internal/specs/openapi");
    assert_eq!(status, 200, "{body}");
    let notes = &body["paths"]["/notes/notes/{name}"];
    assert!(notes.is_object(), "{}", body["paths"]);
    // The example sets no operation prefix: its ids start with the plugin's
    // name, which the server sends with its help request.
    assert_eq!(
        notes["get"]["operationId"], "notes-read-notes-name",
        "{notes}"
    );
    steps.step("done");
}
per_server!(the_example_engine_serves_its_paths_on_a_real_server);
