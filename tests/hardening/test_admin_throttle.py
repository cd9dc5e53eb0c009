"""Admin login throttling (issue 11, row 11): 5 wrong passwords lock the login out, the right one included."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def admin_user() -> User:
    from axes.utils import reset

    reset()
    return User.objects.create_superuser("admin", "admin@example.com", PASSWORD)


def login(client: Client, password: str, address: str = "198.51.100.20") -> int:
    response = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": password},
                           REMOTE_ADDR=address)
    return response.status_code


def test_five_failures_then_even_the_right_password_is_refused(admin_user: User) -> None:
    client = Client()
    for _ in range(4):
        assert login(client, "wrong") == 200  # the form again, with an error
    assert login(client, "wrong") == 429  # the fifth failure locks
    assert login(client, PASSWORD) == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_address_and_a_success_before_it_resets_the_count(admin_user: User) -> None:
    client = Client()
    for _ in range(4):
        assert login(client, "wrong") == 200
    assert login(client, PASSWORD) == 302  # in, and the count starts again
    other = Client()
    for _ in range(4):
        assert login(other, "wrong") == 200
    assert login(Client(), PASSWORD, address="198.51.100.21") == 302  # another address is not locked
