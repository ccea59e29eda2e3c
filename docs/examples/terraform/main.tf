# The LiteLLM secrets engine as code: plugin catalog entry, mount, connection, roles and the
# example policies. Works with Terraform and OpenTofu, against Vault and OpenBao (the Vault
# provider speaks the API both servers share).
#
#   export VAULT_ADDR=https://openbao.example.com:8200 VAULT_TOKEN=...
#   export TF_VAR_litellm_master_key=sk-...     # never in a .tf or .tfvars file in git
#   terraform init && terraform apply -var plugin_sha256=<sha256> -var litellm_url=https://litellm.example.com

terraform {
  required_providers {
    vault = {
      source  = "hashicorp/vault"
      version = ">= 4.0.0"
    }
  }
}

provider "vault" {}

variable "plugin_version" {
  type        = string
  default     = "v0.1.0"
  description = "Version the plugin reports (`vault-plugin-secrets-litellm --version`)."
}

variable "plugin_sha256" {
  type        = string
  description = "sha256 of the plugin binary (the release's .sha256 file), not of an archive."
}

variable "litellm_url" {
  type        = string
  description = "Base URL of the LiteLLM proxy, as the server reaches it."
}

variable "litellm_master_key" {
  type        = string
  sensitive   = true
  description = "LiteLLM master key (or an admin key)."
}

locals {
  # One entry per role, written as it is to litellm/roles/<name>. Every role names its models
  # explicitly. TTLs are in seconds because a read returns seconds: with
  # ignore_absent_fields, `plan` then shows no drift.
  litellm_roles = {
    dev = {
      models           = ["gpt-4o-mini", "claude-3-haiku"]
      key_type         = "llm_api" # model calls only (the default, stated for review)
      max_budget       = 5
      budget_duration  = "30d"
      rpm_limit        = 60
      key_alias_prefix = "vault"
      ttl              = 3600
      max_ttl          = 86400
    }
    ci = {
      models                = ["gpt-4o-mini"]
      max_budget            = 1
      tpm_limit             = 100000
      max_parallel_requests = 4
      metadata              = { team = "platform" }
      key_alias_prefix      = "ci"
      ttl                   = 900
      max_ttl               = 3600
    }
  }
}

# The plugin catalog lives in the root namespace: configure this resource with a provider that
# has no namespace set (see docs/namespaces.md).
resource "vault_plugin" "litellm" {
  type    = "secret"
  name    = "litellm"
  command = "vault-plugin-secrets-litellm"
  version = var.plugin_version
  sha256  = var.plugin_sha256
}

resource "vault_mount" "litellm" {
  path                      = "litellm"
  type                      = vault_plugin.litellm.name
  plugin_version            = vault_plugin.litellm.version
  default_lease_ttl_seconds = 3600
  max_lease_ttl_seconds     = 86400
  description               = "LiteLLM virtual keys"
}

resource "vault_generic_endpoint" "litellm_config" {
  path = "${vault_mount.litellm.path}/config"
  data_json = jsonencode({
    base_url   = var.litellm_url
    master_key = var.litellm_master_key
  })

  # master_key is write-only (a read returns master_key_set), so there is nothing to compare.
  disable_read = true
}

resource "vault_generic_endpoint" "litellm_role" {
  for_each = local.litellm_roles

  path      = "${vault_mount.litellm.path}/roles/${each.key}"
  data_json = jsonencode(each.value)

  # A read returns every role field (defaults included); compare only the ones set here.
  ignore_absent_fields = true

  depends_on = [vault_generic_endpoint.litellm_config]
}

resource "vault_policy" "litellm_admin" {
  name   = "litellm-admin"
  policy = file("${path.module}/../policies/litellm-admin.hcl")
}

resource "vault_policy" "litellm_consumer_dev" {
  name   = "litellm-consumer-dev"
  policy = file("${path.module}/../policies/litellm-consumer-dev.hcl")
}
