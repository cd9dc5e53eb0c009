# `make run` serves vsync on its embedded defaults; `make test` runs the whole suite;
# `make serve` runs the production stack (vsync/deploy/serve.py) on this machine.
# They create .venv and install on first use (Debian packages too: vsync/deploy/system-packages.sh),
# and do nothing extra when nothing changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# make serve's default port differs from make run's: read PORT before it gets run's default.
SERVE_PORT := $(if $(PORT),$(PORT),8443)
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
N ?= 2
BASE_PORT ?= 8001
REDIS_PORT ?= 6390

TEST_PACKAGES := chromium redis-server postgresql ffmpeg fonts-dejavu-core nginx openssl
SERVE_PACKAGES := nginx postgresql redis-server openssl

.PHONY: run test lint typecheck test-packages serve serve-packages migrate cluster bench superuser demo-video

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

# mypy strict over the modules listed in pyproject.toml ([tool.mypy] files).
typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

test-packages:
	@bash vsync/deploy/system-packages.sh $(TEST_PACKAGES)

# The suite in two runs: everything but the browser tests on TEST_WORKERS pytest-xdist workers (4: 4.0 min, 3: 4.3 min)
# (most of their time is spent waiting on the servers they start), then the browser tests alone:
# they judge sync to a few ms, and two cores shared with other tests would only measure the load.
TEST_WORKERS ?= 4
test: test-packages lint typecheck
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not e2e" $(PYTEST_ARGS)
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

serve-packages:
	@bash vsync/deploy/system-packages.sh $(SERVE_PACKAGES)

# nginx (TLS, HTTP/2) on HOST:PORT (default 127.0.0.1:8443) before WORKERS uvicorn processes,
# Redis and PostgreSQL under .data/ unless REDIS_URL/DATABASE_URL are set; Ctrl-C stops it all.
serve: serve-packages $(STAMP)
	HOST=$(HOST) PORT=$(SERVE_PORT) WORKERS=$(WORKERS) $(PY) -m vsync.deploy.serve

superuser: migrate
	$(PY) manage.py createsuperuser

cluster: migrate
	$(PY) -m vsync.launcher --processes $(N) --base-port $(BASE_PORT) --redis-port $(REDIS_PORT)

# The standard sweep: redis-server for the scale-out rows, nginx and PostgreSQL for HTTP/2 against HTTP/1.1.
bench: serve-packages $(DEV_STAMP) migrate
	$(PY) -m loadtests run --standard

demo-video:
	rooms/media/demo/make_demo.sh
