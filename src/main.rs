use std::process::ExitCode;
use std::sync::Arc;

use vault_plugin_secrets_litellm::{engine, runtime, PLUGIN};

/// Small blocks from dlmalloc, large ones from musl, in the static amd64
/// build (the system allocator elsewhere): see `runtime::PluginAllocator`.
#[global_allocator]
static ALLOCATOR: runtime::PluginAllocator = runtime::PluginAllocator::new();

fn main() -> ExitCode {
    runtime::serve(PLUGIN, Arc::new(engine::factory))
}
