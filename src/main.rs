use std::process::ExitCode;
use std::sync::Arc;

use vault_plugin_secrets_litellm::{engine, runtime, PLUGIN};

fn main() -> ExitCode {
    runtime::serve(PLUGIN, Arc::new(engine::factory))
}
