from __future__ import annotations

import pytest

from rooms import limits


@pytest.fixture(autouse=True)
def fresh_limits():
    """Buckets are per process: one test's commands must not limit the next's."""
    limits.reset_all()
    yield
    limits.reset_all()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2's million rounds cost about half a second a hash on this machine; which hasher
    # is used does not change what the tests check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
