# May replace the master key of the mount "litellm/" and nothing else: `base_url`,
# `ca_cert`, `tls_skip_verify`, ... are refused (403), so the stored key cannot be redirected
# to another server.
#
#   bao write litellm/config master_key=sk-new-...
path "litellm/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "master_key" = []
  }
}
