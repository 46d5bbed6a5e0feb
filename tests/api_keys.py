"""API keys for the keys-on tests: fixed raw keys, the key list the fleet is started with, and headers."""

from __future__ import annotations

import hashlib
import json

# name → (raw key, extra fields of its entry)
KEYS: dict[str, tuple[str, dict[str, object]]] = {
    "alice": ("mf_test_alice_0123456789abcdef", {"requests_per_minute": 1000, "max_concurrent_jobs": 50}),
    "bob": ("mf_test_bob_0123456789abcdef", {"requests_per_minute": 1000, "max_concurrent_jobs": 50}),
    "ops": ("mf_test_ops_0123456789abcdef", {"admin": True, "requests_per_minute": 0}),
    # For the UI: one job per minute, so a second one meets the rate limit.
    "tiny": ("mf_test_tiny_0123456789abcdef", {"requests_per_minute": 1, "max_concurrent_jobs": 0}),
}


def key_list(keys: dict[str, tuple[str, dict[str, object]]] = KEYS) -> str:
    """The JSON of MESHFORGE_API_KEYS for ``keys``: names and hashes only, as the server holds them."""
    return json.dumps(
        [
            {"name": name, "sha256": hashlib.sha256(raw.encode()).hexdigest(), **extra}
            for name, (raw, extra) in keys.items()
        ]
    )


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}
