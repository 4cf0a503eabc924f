"""OpenRouter's official Python SDK (`openrouter` from PyPI) as the client of
a real `keywarden serve`: every call is parsed by the SDK's own models, so a
missing or mistyped field fails here as it would in a user's program.

Usage: python openrouter_keys.py BASE_URL MANAGEMENT_KEY ORDINARY_KEY
Prints one line per step; exits non-zero on the first failure."""

import hashlib
import sys
from datetime import datetime, timedelta, timezone

import openrouter
from openrouter import OpenRouter, errors

base, management_key, ordinary_key = sys.argv[1:4]
# No retries: a 5xx must fail the test at once, not back off for an hour.
NO_RETRY = openrouter.utils.RetryConfig(
    "none", openrouter.utils.BackoffStrategy(1, 1, 1.0, 1), False
)


def client(key):
    return OpenRouter(api_key=key, server_url=base, retry_config=NO_RETRY)


def step(name):
    print(f"ok: {name}", flush=True)


def sha256(key):
    return hashlib.sha256(key.encode()).hexdigest()


def refused(call, error_type, code):
    try:
        call()
    except error_type as e:
        assert e.status_code == code, (e.status_code, e.body)
        assert e.data.error.code == code, e.data
        return e.data.error.message
    raise AssertionError(f"expected {error_type.__name__} ({code})")


admin = client(management_key)
ordinary = client(ordinary_key)

# GET /api/v1/key with an ordinary key: the full shape, parsed by the SDK.
me = ordinary.api_keys.get_current_key_metadata().data
assert me.is_management_key is False, me
assert me.label.startswith("sk-or-v1-"), me.label
assert me.limit == 20.0 and me.limit_remaining == 20.0, me
assert me.usage == 0 and me.usage_daily == 0 and me.byok_usage == 0, me
assert me.limit_reset is None, me
assert [b.scope for b in me.budgets] == ["key_limit"], me.budgets
assert me.effective_budget.limit_usd == 20.0, me.effective_budget
assert me.expires_at is not None and me.expires_at.tzinfo is not None, me.expires_at
step("get_current_key_metadata (ordinary key)")

# ... and with the management key.
me = admin.api_keys.get_current_key_metadata().data
assert me.is_management_key is True, me
assert me.budgets == [] and me.effective_budget is None, me
step("get_current_key_metadata (management key)")

# An ordinary key may not use the management API: 403 in OpenRouter's body.
try:
    ordinary.api_keys.list()
    raise AssertionError("an ordinary key listed keys")
except errors.OpenRouterError as e:
    assert e.status_code == 403, (e.status_code, e.body)
    assert "Only management keys can perform this operation" in e.body, e.body
step("list refused to an ordinary key (403)")

listed = admin.api_keys.list().data
hashes = [k.hash for k in listed]
assert sha256(ordinary_key) in hashes, hashes
assert sha256(management_key) in hashes, hashes
step(f"list ({len(listed)} keys)")

expires = (datetime.now(timezone.utc) + timedelta(days=7)).replace(microsecond=0)
created = admin.api_keys.create(
    name="made by the SDK", limit=5.0, limit_reset="daily", expires_at=expires
)
new_key = created.key
new_hash = created.data.hash
assert new_hash == sha256(new_key), (new_hash, sha256(new_key))
assert created.data.name == "made by the SDK" and created.data.limit == 5.0, created.data
assert created.data.limit_reset == "daily" and created.data.disabled is False, created.data
assert created.data.expires_at == expires, (created.data.expires_at, expires)
step("create")

fresh = client(new_key)
me = fresh.api_keys.get_current_key_metadata().data
assert me.limit_remaining == 5.0 and me.limit_reset == "daily", me
step("the new key works")

got = admin.api_keys.get(hash=new_hash).data
assert got.name == "made by the SDK" and got.hash == new_hash, got
assert new_hash in [k.hash for k in admin.api_keys.list().data]
step("get")

updated = admin.api_keys.update(hash=new_hash, disabled=True, name="renamed").data
assert updated.disabled is True and updated.name == "renamed", updated
refused(lambda: fresh.api_keys.get_current_key_metadata(),
        errors.UnauthorizedResponseError, 401)
assert new_hash not in [k.hash for k in admin.api_keys.list().data]
assert new_hash in [k.hash for k in admin.api_keys.list(include_disabled=True).data]
step("update disabled=true: the key answers 401")

updated = admin.api_keys.update(hash=new_hash, disabled=False, limit=7.5).data
assert updated.disabled is False and updated.limit == 7.5, updated
me = fresh.api_keys.get_current_key_metadata().data
assert me.limit == 7.5, me
step("update disabled=false: the key answers 200")

deleted = admin.api_keys.delete(hash=new_hash)
assert deleted.DELETED is True, deleted
refused(lambda: fresh.api_keys.get_current_key_metadata(),
        errors.UnauthorizedResponseError, 401)
refused(lambda: admin.api_keys.get(hash=new_hash), errors.NotFoundResponseError, 404)
step("delete: the key answers 401, get answers 404")

refused(lambda: client("sk-or-v1-" + "0" * 64).api_keys.list(),
        errors.UnauthorizedResponseError, 401)
step("unknown key on the management API (401)")
print("all steps passed")
