# Non-dev OpenBao server configuration for the bao-litellm image (loaded together with
# /openbao/config/plugins.hcl by `server -config=/openbao/config`). A starting point: put TLS in
# front of it or enable it below, and keep /openbao/data on a volume.
#
#   docker run -d --name bao -p 8200:8200 -v bao-data:/openbao/data \
#     ghcr.io/<owner>/bao-litellm:<version> server -config=/openbao/config
#   docker exec -it bao bao operator init      # once; then unseal with the printed keys
#   docker exec -it bao bao operator unseal
#   docker exec -it -e BAO_TOKEN=<root token> bao bao secrets enable litellm
#
# To use your own file instead: mount it over /openbao/config/server.hcl.

ui           = true
api_addr     = "http://127.0.0.1:8200"
cluster_addr = "http://127.0.0.1:8201"

# Integrated storage (Raft), single node; OpenBao 2.x has no "file" storage. For a cluster give
# each node its own node_id and add retry_join { leader_api_addr = "..." } blocks.
storage "raft" {
  path    = "/openbao/data"
  node_id = "bao-litellm-1"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  # Plain HTTP: only behind a TLS-terminating proxy or on a trusted network. For TLS, mount the
  # certificate and key and replace the line below with:
  #   tls_cert_file = "/openbao/tls/tls.crt"
  #   tls_key_file  = "/openbao/tls/tls.key"
  tls_disable = true
}
