from __future__ import annotations

import pytest

from rooms import limits
from rooms.media.quota import upload_quota


@pytest.fixture(autouse=True)
def fresh_limits():
    """Buckets are per process: one test's commands (and uploads) must not limit the next's."""
    limits.reset_all()
    upload_quota.clear()
    yield
    limits.reset_all()
    upload_quota.clear()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2's million rounds cost about half a second a hash on this machine; which hasher
    # is used does not change what the tests check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
