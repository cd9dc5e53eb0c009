# `make run` serves vsync on its embedded defaults; `make test` runs the whole suite.
# Both create .venv and install on first use, and do nothing extra when nothing changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000
N ?= 2
BASE_PORT ?= 8001
REDIS_PORT ?= 6390

.PHONY: run test lint migrate cluster bench superuser demo-video

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

# The test, benchmark and browser tools only for those who run them.
$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py runserver $(HOST):$(PORT)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest

superuser: migrate
	$(PY) manage.py createsuperuser

cluster: migrate
	$(PY) -m vsync.launcher --processes $(N) --base-port $(BASE_PORT) --redis-port $(REDIS_PORT)

bench: $(DEV_STAMP) migrate
	$(PY) -m loadtests run --standard

demo-video:
	rooms/media/demo/make_demo.sh
