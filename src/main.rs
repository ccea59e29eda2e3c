use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    vault_plugin_secrets_litellm::runtime::serve(
        "vault-plugin-secrets-litellm",
        Arc::new(vault_plugin_secrets_litellm::engine::factory),
    )
}
