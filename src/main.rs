use std::process::ExitCode;
use std::sync::Arc;

use vault_plugin_secrets_litellm::{engine, runtime, PLUGIN};

// musl's allocator gives emptied groups of blocks straight back to the
// kernel; the SDK's bounded cache keeps a few freed buffers for the next
// request (see `vault_plugin_sdk::alloc`).
#[global_allocator]
static ALLOCATOR: vault_plugin_sdk::alloc::CachingSystem =
    vault_plugin_sdk::alloc::CachingSystem::new();

fn main() -> ExitCode {
    runtime::serve(PLUGIN, Arc::new(engine::factory))
}
