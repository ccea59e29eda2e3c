#!/bin/sh
# register-litellm [NAME]: registers the baked-in plugin in Vault's catalog (non-dev servers; a dev
# server started with -dev-plugin-dir has done it already). Needs VAULT_ADDR and a token with
# sudo on sys/plugins/catalog (VAULT_TOKEN or `vault login`).
set -eu
name=${1:-litellm}
plugin=/vault/plugins/litellm
sha=$(cut -d' ' -f1 /vault/litellm/litellm.sha256)
version=$("$plugin" --version | awk '{print $NF}')
vault plugin register -sha256="$sha" -command=litellm -version="$version" secret "$name"
echo "registered secret plugin '$name' $version (sha256 $sha); now: vault secrets enable -plugin-version=$version $name"
