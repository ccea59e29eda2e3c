use std::process::ExitCode;
use std::sync::Arc;

use vault_plugin_secrets_litellm::{engine, runtime, PLUGIN};

/// musl's allocator (mallocng) returns a group of small blocks to the kernel
/// as soon as the group empties, so each request mapped and unmapped pages
/// again: a fifth of the plugin's CPU per issue. dlmalloc keeps freed memory
/// for reuse (the glibc build keeps glibc's allocator, which does the same);
/// measured in `make bench`: the same RSS. x86_64 only (4 KiB pages).
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    runtime::serve(PLUGIN, Arc::new(engine::factory))
}
