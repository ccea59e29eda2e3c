# Consumer of the LiteLLM role "dev" on the mount "litellm/".
#
#   bao policy write litellm-consumer-dev litellm-consumer-dev.hcl
#
# Mint keys for this one role. Every other path of the mount (config, roles, creds of other
# roles) stays denied (403).
path "litellm/creds/dev" {
  capabilities = ["read"]
}

# Renew and revoke the leases it got (`bao lease renew <lease_id>`, OpenBao/Vault Agent,
# the Vault Secrets Operator). These endpoints take the lease id in the request body, so ACL
# paths cannot tell one role's lease from another's: whoever holds a lease id can renew or revoke
# it. Lease ids are only handed to the token that read the creds.
path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke" {
  capabilities = ["update"]
}

# `bao lease revoke <lease_id>` puts the lease id in the URL instead, which the ACL checks
# against the lease's path: this role's leases only.
path "sys/leases/revoke/litellm/creds/dev/*" {
  capabilities = ["update"]
}
