"""Settings read the environment; production refuses the development secret key."""

from __future__ import annotations

import subprocess
import sys

from tests.support.servers import ROOT, server_env

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.{})"


def read_setting(tmp_path, name: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(name)], cwd=ROOT, env=server_env(tmp_path, **env),
                          capture_output=True, text=True)


def test_production_refuses_the_development_secret_key(tmp_path):
    result = read_setting(tmp_path, "DEBUG", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_secret_key(tmp_path):
    result = read_setting(tmp_path, "DEBUG", DEBUG="false", SECRET_KEY="s" * 50)
    assert result.returncode == 0
    assert result.stdout.strip() == "False"


def test_redis_url_selects_the_redis_channel_layer(tmp_path):
    result = read_setting(tmp_path, "CHANNEL_LAYERS['default']['BACKEND']", REDIS_URL="redis://127.0.0.1:1/0")
    assert "channels_redis" in result.stdout


def test_without_redis_url_the_layer_is_in_memory(tmp_path):
    result = read_setting(tmp_path, "CHANNEL_LAYERS['default']['BACKEND']")
    assert result.stdout.strip() == "channels.layers.InMemoryChannelLayer"


def test_database_url_selects_postgresql(tmp_path):
    result = read_setting(tmp_path, "DATABASES['default']['ENGINE']",
                          DATABASE_URL="postgres://u:p@127.0.0.1:5432/vsync")
    assert result.stdout.strip() == "django.db.backends.postgresql"


def test_allowed_hosts_come_from_the_environment(tmp_path):
    result = read_setting(tmp_path, "ALLOWED_HOSTS", ALLOWED_HOSTS="a.example, b.example")
    assert result.stdout.strip() == "['a.example', 'b.example']"
