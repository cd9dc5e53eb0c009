"""The chat probe: its delivery check, and a small real run on every transport with a reconnect."""

from __future__ import annotations

import csv
import json

import pytest

from loadtests import chat_probe
from loadtests.chat_report import delivery


def test_delivery_counts_a_lost_a_twice_and_a_late_message():
    checked = delivery([1, 3, 3, 2, 9], wanted={1, 2, 3, 4})
    assert (checked.delivered, checked.lost, checked.duplicated, checked.out_of_order) == (3, 1, 1, 1)


def test_delivery_ignores_messages_of_other_steps():
    checked = delivery([7, 1, 2, 8], wanted={1, 2})
    assert (checked.expected, checked.delivered, checked.lost, checked.duplicated) == (2, 2, 0, 0)


@pytest.mark.timeout(240)
def test_every_transport_delivers_every_message_once_across_a_reconnect(tmp_path):
    out = tmp_path / "chat"
    rows = chat_probe.run(["poll", "longpoll", "sse", "ws"], viewers=4, rates=[4.0], seconds=3.0, out=out, procs=1,
                          drop_share=0.5, drop_gap_s=0.6)
    assert [row.transport for row in rows] == ["poll", "longpoll", "sse", "ws"]
    for row in rows:
        assert row.connected == 4, row.transport
        assert row.messages == 12 and row.post_errors == 0, row.transport
        assert row.reconnected == 2, row.transport
        assert row.expected == 4 * 12 and row.delivered == row.expected, row.transport
        assert row.lost == 0 and row.duplicated == 0 and row.out_of_order == 0, row.transport
        assert row.versions > 0 and row.state_p50_ms == row.state_p50_ms, row.transport  # measured, not NaN
        assert row.chat_bytes_per_message > 0, row.transport
    with open(out / "results.csv", newline="") as handle:
        assert {line["transport"] for line in csv.DictReader(handle)} == {"poll", "longpoll", "sse", "ws"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"] and meta["commit"] and "load average at start" in meta
    report = (out / "report.md").read_text()
    assert all(f"## {name}" in report for name in ("poll", "longpoll", "sse", "ws"))
    assert (out / "log_against_snapshot.png").read_bytes().startswith(b"\x89PNG")
