# OpenBao Agent / Vault Agent: log in with AppRole and keep a LiteLLM key of the role "dev" in
# /run/litellm/litellm.env. The agent renews the lease; when the lease reaches the role's
# max_ttl it reads a new key, rewrites the file and runs `command` (if set).
#
#   bao agent -config=/etc/litellm-agent/agent.hcl      # or: vault agent -config=...
#
# The AppRole's token policies must include litellm-consumer-dev
# (docs/examples/policies/litellm-consumer-dev.hcl).

vault {
  address = "https://openbao.example.com:8200"
}

auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path                   = "/etc/litellm-agent/role-id"
      secret_id_file_path                 = "/etc/litellm-agent/secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

template_config {
  # Give up (and exit non-zero) instead of retrying forever when OpenBao/Vault keeps failing.
  exit_on_retry_failure = true
}

template {
  source      = "/etc/litellm-agent/litellm.env.ctmpl"
  destination = "/run/litellm/litellm.env"
  perms       = "0600"
  # Run after every render, e.g. to restart the app on a new key:
  # command = "systemctl restart my-app"
}
