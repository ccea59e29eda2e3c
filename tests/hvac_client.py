"""The engine through hvac, the Python Vault client many operators script with: configure,
write a role, read creds, use the key, renew, revoke, all with hvac's own calls and the shapes
it expects. Run by tests/e2e.rs (`hvac_drives_the_whole_lifecycle`) with the interpreter of
e2e/stack.sh's venv (HVAC_PYTHON), against a dev server the test started.

Environment: VAULT_ADDR, VAULT_TOKEN, MOUNT, LITELLM_URL, LITELLM_MASTER_KEY, MODEL, PREFIX.
Prints one line per step; exits non-zero on the first failure.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import hvac

MOUNT = os.environ["MOUNT"]
LITELLM = os.environ["LITELLM_URL"].rstrip("/")
MASTER = os.environ["LITELLM_MASTER_KEY"]
MODEL = os.environ["MODEL"]
PREFIX = os.environ["PREFIX"]


def step(text):
    print(f"[hvac] {text}", flush=True)


def chat(key):
    """HTTP status of a one-message chat completion with `key`."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"{LITELLM}/chat/completions", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def refused(key):
    """Whether LiteLLM refuses `key` (401) within the 15 s tests/e2e.rs allows a revoke to settle."""
    deadline = time.monotonic() + 15
    while chat(key) != 401:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def main():
    client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    assert client.is_authenticated()

    step("config: written, read back without the admin key")
    client.write(f"{MOUNT}/config", base_url=LITELLM, admin_key=MASTER)
    config = client.read(f"{MOUNT}/config")["data"]
    assert config["admin_key_set"] is True, config
    assert MASTER not in json.dumps(config), "the admin key came back"

    step("role: written, listed, read back")
    client.write(f"{MOUNT}/roles/hv", models=[MODEL], ttl="10m", max_ttl="1h",
                 max_budget=2, key_alias_prefix=PREFIX)
    assert "hv" in client.list(f"{MOUNT}/roles")["data"]["keys"]
    role = client.read(f"{MOUNT}/roles/hv")["data"]
    assert role["models"] == [MODEL] and role["ttl"] == 600 and role["max_ttl"] == 3600, role

    step("creds: a lease with the key")
    creds = client.read(f"{MOUNT}/creds/hv")
    lease_id, key = creds["lease_id"], creds["data"]["key"]
    assert lease_id.startswith(f"{MOUNT}/creds/hv/"), creds
    assert creds["renewable"] is True and creds["lease_duration"] == 600, creds
    assert creds["data"]["models"] == [MODEL] and creds["data"]["max_budget"] == 2, creds
    assert chat(key) == 200

    step("the lease as the server sees it, renewed by the increment asked (within max_ttl)")
    lease = client.sys.read_lease(lease_id)["data"]
    assert lease["renewable"] is True, lease
    renewed = client.sys.renew_lease(lease_id, increment=1800)
    assert renewed["lease_id"] == lease_id and renewed["lease_duration"] == 1800, renewed
    assert chat(key) == 200

    step("a narrowed key: write to creds")
    narrowed = client.write(f"{MOUNT}/creds/hv", ttl="2m", max_budget=1)
    assert narrowed["lease_duration"] == 120 and narrowed["data"]["max_budget"] == 1, narrowed

    step("bad input: hvac raises InvalidRequest naming the field")
    try:
        client.write(f"{MOUNT}/roles/bad", models=[MODEL], ttl="2h", max_ttl="1h")
        raise AssertionError("a ttl above max_ttl was accepted")
    except hvac.exceptions.InvalidRequest as e:
        assert "ttl" in str(e), e

    step("revoke: the keys stop working")
    client.sys.revoke_lease(lease_id)
    assert refused(key)
    client.sys.revoke_prefix(f"{MOUNT}/creds/hv")
    assert refused(narrowed["data"]["key"])
    step("done")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the test prints whatever failed
        print(f"[hvac] FAILED: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
