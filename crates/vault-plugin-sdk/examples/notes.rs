//! A whole Vault/OpenBao secrets engine in a few lines: notes kept in the
//! mount's storage. `cargo build --example notes`, put the binary in the
//! server's plugin directory, register it by sha256, and:
//!
//! ```sh
//! bao secrets enable -path=notes notes
//! bao write notes/notes/first text=hello
//! bao read notes/notes/first
//! bao list notes/notes
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vault_plugin_sdk::framework::storage::{get_json, put_json};
use vault_plugin_sdk::framework::{
    callback, Backend, Error, Field, FieldType, Operation, Path, Request, Response, Result,
};
use vault_plugin_sdk::runtime::{serve, PluginInfo};

const PLUGIN: PluginInfo = PluginInfo {
    // The binary's (and so the crate's) name: this crate's log lines are
    // then the plugin's (`@module` is their module path), not a dependency's.
    name: "notes",
    version: concat!("v", env!("CARGO_PKG_VERSION")),
    usage: "A Vault/OpenBao plugin that keeps notes; register it with the server.",
};

/// The engine has no state of its own: everything lives in storage.
struct Notes;

/// What `notes/{name}` takes: the name from the path, the text from the body.
#[derive(Deserialize)]
struct NoteInput {
    name: String,
    text: Option<String>,
}

/// A stored note, and what a read answers.
#[derive(Serialize, Deserialize)]
struct Note {
    text: String,
}

fn key(req: &Request) -> String {
    format!("notes/{}", req.fields.str("name").unwrap_or_default())
}

async fn read(_: Arc<Notes>, req: Request) -> Result<Option<Response>> {
    let note: Option<Note> = get_json(req.storage.as_ref(), &key(&req)).await?;
    note.map(|note| Response::from_output(&note)).transpose()
}

async fn write(_: Arc<Notes>, req: Request) -> Result<Option<Response>> {
    let input: NoteInput = req.fields.decode()?;
    let text = input
        .text
        .ok_or_else(|| Error::invalid("field \"text\" is required"))?;
    put_json(req.storage.as_ref(), &key(&req), &Note { text }).await?;
    tracing::info!(name = %input.name, "note written");
    Ok(None)
}

async fn delete(_: Arc<Notes>, req: Request) -> Result<Option<Response>> {
    req.storage.delete(&key(&req)).await?;
    Ok(None)
}

async fn list(_: Arc<Notes>, req: Request) -> Result<Option<Response>> {
    Ok(Some(Response::list(req.storage.list("notes/").await?)))
}

fn main() -> ExitCode {
    serve(
        PLUGIN,
        Arc::new(|_mount_options| {
            let notes = Arc::new(Notes);
            Ok(Backend::new("Keeps short notes.")
                .named(PLUGIN.name, PLUGIN.version)
                .path(
                    Path::new("notes/")
                        .on(Operation::List, callback(&notes, list))
                        .help("List the notes.", "Names of all notes."),
                )
                .path(
                    Path::new("notes/{name}")
                        .field(Field::new("text", FieldType::String, "The note."))
                        .on(Operation::Read, callback(&notes, read))
                        .on_write(callback(&notes, write))
                        .on(Operation::Delete, callback(&notes, delete))
                        .help("One note.", "Read, write or delete a note."),
                ))
        }),
    )
}
