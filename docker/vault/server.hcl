# Non-dev Vault configuration for the vault-litellm image, a starting point:
#
#   docker run -d --name vault --cap-add IPC_LOCK -p 8200:8200 -v vault-data:/vault/file \
#     ghcr.io/<owner>/vault-litellm:<version> server -config=/vault/litellm/server.hcl
#   docker exec -it vault vault operator init        # once; then unseal
#   docker exec -it vault vault operator unseal
#   docker exec -it -e VAULT_TOKEN=<root token> vault register-litellm
#   docker exec -it -e VAULT_TOKEN=<root token> vault vault secrets enable -plugin-version=v<version> litellm
#
# (The image's entrypoint also passes -config=/vault/config, empty by default.)

ui           = true
api_addr     = "http://127.0.0.1:8200"
cluster_addr = "http://127.0.0.1:8201"

# Where the plugin binary lives (installed as "litellm"; see register-litellm).
plugin_directory = "/vault/plugins"

# Vault would otherwise tell the plugin to mlock its memory (VAULT_PLUGIN_MLOCK_ENABLED), which
# fails without CAP_IPC_LOCK in the plugin process; integrated/file storage recommend this anyway.
disable_mlock = true

storage "file" {
  path = "/vault/file"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  # Plain HTTP: only behind a TLS-terminating proxy or on a trusted network. For TLS:
  #   tls_cert_file = "/vault/tls/tls.crt"
  #   tls_key_file  = "/vault/tls/tls.key"
  tls_disable = true
}
