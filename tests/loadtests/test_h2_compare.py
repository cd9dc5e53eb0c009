"""loadtests.h2_compare, small, against make serve's real stack (nginx: TLS, HTTP/2; 2 workers, Redis, PostgreSQL)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadtests.h2_compare import H2Row, run, split_viewers

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]

VIEWERS = 5
COMMANDS = 3
STREAMS_PER_CONNECTION = 2  # 5 viewers: 3 HTTP/2 connections, so streams really share one


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[H2Row], Path]:
    out = tmp_path_factory.mktemp("h2-compare")
    rows = run(VIEWERS, 3.0, COMMANDS, out, streams_per_connection=STREAMS_PER_CONNECTION, repeat=1)
    return rows, out


def test_every_cell_is_measured_once(results):
    rows, _ = results
    assert sorted((row.transport, row.protocol) for row in rows) == [
        ("longpoll", "h2"), ("longpoll", "http/1.1"), ("sse", "h2"), ("sse", "http/1.1")]


def test_every_version_reaches_every_viewer_without_errors(results):
    rows, _ = results
    for row in rows:
        assert row.connected == VIEWERS, row
        assert row.commands == COMMANDS, row
        assert row.delivered == row.expected == VIEWERS * COMMANDS, row
        assert row.missed == 0 and row.errors == 0, row
        assert 0 < row.p50_ms <= row.p99_ms <= row.max_ms < 5000, row


def test_each_protocol_is_negotiated_on_every_connection(results):
    rows, _ = results
    for row in rows:
        if row.protocol == "h2":
            assert (row.alpn, row.http_versions, row.connections) == ("h2", "HTTP/2", 3), row
        else:
            assert (row.alpn, row.http_versions, row.connections) == ("http/1.1", "HTTP/1.1", VIEWERS), row


def test_wire_bytes_are_the_decrypted_bytes_plus_tls(results):
    rows, _ = results
    for row in rows:
        # The kernel's count (tcp_info) holds the TLS records around the decrypted bytes: a little more, never less.
        decrypted, wire = row.decrypted_kib_per_viewer_min, row.wire_in_kib_per_viewer_min
        assert 0 < decrypted < wire < 1.5 * decrypted, row
        assert row.setup_wire_kib_per_viewer > 1.0, row  # a TLS handshake (certificate) and the first state
    polls = {row.protocol: row for row in rows if row.transport == "longpoll"}
    assert polls["http/1.1"].wire_out_kib_per_viewer_min > 0  # a request per version


def test_the_folder_holds_csv_meta_report_and_plot(results):
    rows, out = results
    with open(out / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["commit"] and meta["command"] and meta["load average at start (1/5/15 min)"]
    report = (out / "report.md").read_text()
    assert "## sse, loopback" in report and "## longpoll, loopback" in report and "## Reading" in report
    assert (out / "h2_vs_h1.png").read_bytes().startswith(b"\x89PNG")


def test_http2_viewers_are_split_over_processes_by_whole_connections():
    assert split_viewers(200, 1, 6) == [200]
    assert split_viewers(200, 2, 6) == [102, 98]
    assert split_viewers(5, 3, 2) == [2, 2, 1]
    assert split_viewers(3, 4, 1) == [1, 1, 1]
