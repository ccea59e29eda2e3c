# Administrator of the mount "litellm/": connection, roles and the leases (keys) it issued.
#
#   bao policy write litellm-admin litellm-admin.hcl
#
# `config` holds the write-only admin key (`admin_key`, older name `master_key`): a read returns
# `admin_key_set`, never the key. Still, treat `update` on config like holding the key: the
# engine sends it to whatever `base_url` is configured.
path "litellm/config" {
  capabilities = ["create", "read", "update", "delete"]
}

# Rotate the admin key now; automatic tidy settings, a tidy run and its status.
path "litellm/rotate-root" {
  capabilities = ["update"]
}

path "litellm/config/auto-tidy" {
  capabilities = ["read", "update"]
}

path "litellm/tidy" {
  capabilities = ["update"]
}

path "litellm/tidy-status" {
  capabilities = ["read"]
}

# What the mount issued, and spend per role.
path "litellm/keys" {
  capabilities = ["list"]
}

path "litellm/keys/*" {
  capabilities = ["read", "list"]
}

path "litellm/usage/*" {
  capabilities = ["read"]
}

# Static roles (their keys are read at static-creds/<name>: grant that to their consumers).
path "litellm/static-roles" {
  capabilities = ["list"]
}

path "litellm/static-roles/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}

path "litellm/rotate-role/*" {
  capabilities = ["update"]
}

path "litellm/roles" {
  capabilities = ["list"]
}

path "litellm/roles/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}

# Mint a key with any role (to try a role out). Remove if admins must not hold keys.
path "litellm/creds/*" {
  capabilities = ["read"]
}

# The mount's leases: list them (sudo), look one up, renew or revoke one.
path "sys/leases/lookup/litellm/*" {
  capabilities = ["list", "sudo"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke" {
  capabilities = ["update"]
}

# `bao lease revoke <lease_id>` sends the lease id in the URL.
path "sys/leases/revoke/litellm/*" {
  capabilities = ["update"]
}

# Kill switch: revoke every lease of one role (`bao lease revoke -prefix litellm/creds/<role>`)
# or of the whole mount (`-prefix litellm/`, which the CLI sends as .../revoke-prefix/litellm
# without the slash: hence the second block). revoke-prefix always needs sudo.
path "sys/leases/revoke-prefix/litellm/*" {
  capabilities = ["update", "sudo"]
}

path "sys/leases/revoke-prefix/litellm" {
  capabilities = ["update", "sudo"]
}

# Default and max TTLs of the mount, and its plugin version (upgrades).
path "sys/mounts/litellm/tune" {
  capabilities = ["read", "update"]
}
