"""The metric arithmetic: version tracking, percentiles, windows, per-viewer-minute rates, merging."""

from __future__ import annotations

import json
import math

from loadtests.metrics import (
    Recorder,
    VersionTracker,
    Window,
    http_head_bytes,
    merge_dumps,
    per_viewer_minute,
    percentile,
    phases_of,
    summarise,
    viewer_seconds,
    ws_frame_bytes,
)


def test_first_version_is_not_a_propagation():
    tracker = VersionTracker()
    assert tracker.observe(5) == "first"
    assert tracker.missed == 0


def test_skipped_versions_count_as_missed():
    tracker = VersionTracker()
    tracker.observe(5)
    assert tracker.observe(6) == "new"
    assert tracker.observe(9) == "new"
    assert tracker.missed == 2


def test_an_older_version_is_out_of_order_and_does_not_move_back():
    tracker = VersionTracker()
    tracker.observe(5)
    tracker.observe(7)
    assert tracker.observe(6) == "old"
    assert tracker.out_of_order == 1
    assert tracker.last_version == 7


def test_the_same_version_again_is_a_duplicate():
    tracker = VersionTracker()
    tracker.observe(5)
    assert tracker.observe(5) == "duplicate"
    assert (tracker.duplicates, tracker.out_of_order) == (1, 0)


def test_percentile_interpolates_like_numpy():
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert math.isclose(percentile(list(range(101)), 99), 99.0)


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 50))


def test_only_new_versions_give_latency():
    rec = Recorder()
    assert rec.delivery(1_000_250.0, 1_000_000.0, "first") is None
    assert rec.delivery(1_000_250.0, 1_000_000.0, "new") == 250.0
    assert rec.delivery(1_000_250.0, 1_000_000.0, "duplicate") is None
    assert rec.latencies == [(1_000_250.0, 250.0)]


def test_viewer_seconds_clips_to_the_window_and_counts_open_viewers_to_its_end():
    viewers = [[0.0, 10.0], [5.0, math.nan], [20.0, 30.0]]
    assert viewer_seconds(viewers, 2.0, 12.0) == 8.0 + 7.0 + 0.0


def test_window_keeps_whole_buckets_only():
    window = Window.inside(10.2, 14.9)
    assert (window.first_bucket, window.end_bucket, window.seconds) == (11, 14, 3.0)
    assert Window.inside(10.2, 10.9) is None


def test_bytes_per_viewer_minute():
    buckets = {10: 600, 11: 600, 12: 99_999}  # the last bucket is outside the window
    viewers = [[0.0, 100.0], [0.0, 100.0]]
    # 1,200 bytes over 2 viewers x 2 s = 4 viewer-seconds: 300 B/s, 18,000 per viewer-minute
    assert per_viewer_minute(buckets, viewers, Window(10, 12)) == 18_000.0
    assert math.isnan(per_viewer_minute(buckets, viewers, None))


def test_phases_idle_after_the_last_viewer_joined_busy_from_the_first_command():
    rec = Recorder()
    rec.viewer_started("a", 100.0)
    rec.viewer_started("b", 101.5)
    rec.commands = [(106.0, 200), (107.0, 200), (110.0, 200)]
    phases = phases_of(rec)
    assert (phases.idle.first_bucket, phases.idle.end_bucket) == (103, 106)
    assert (phases.busy.first_bucket, phases.busy.end_bucket) == (106, 111)


def test_summary_of_a_busy_window():
    rec = Recorder()
    for viewer in ("a", "b"):
        rec.viewer_started(viewer, 100.0)
    rec.commands = [(105.0 + i * 0.5, 200) for i in range(10)] + [(105.2, 429)]
    for i in range(10):
        for _ in ("a", "b"):
            rec.delivery((105.0 + i * 0.5) * 1000 + 10 + i, (105.0 + i * 0.5) * 1000, "new")
            rec.traffic(105.0 + i * 0.5, 500, 1)
    rec.close_viewers(112.0)
    summary = summarise(rec)
    assert summary.samples == 20
    assert summary.p50_ms == 14.5
    assert summary.max_ms == 19.0
    assert summary.messages_per_s == 4.0  # 20 deliveries over the 5 s busy window (105..110)
    assert summary.commands_per_s == 2.0
    assert summary.command_errors == 1
    assert summary.bytes_per_viewer_min_busy == 500 * 20 / (2 * 5) * 60
    assert summary.requests_per_viewer_min_busy == 20 / (2 * 5) * 60


def test_dumps_from_several_processes_merge_by_addition(tmp_path):
    one, two = Recorder(), Recorder()
    one.viewer_started("1-0", 1.0)
    two.viewer_started("2-0", 1.0)
    one.traffic(5.0, 100, 1)
    two.traffic(5.5, 50, 1)
    one.delivery(5000.0, 4990.0, "new")
    two.delivery(5000.0, 4980.0, "new")
    two.out_of_order = 1
    one.commands.append((4.9, 200))
    one.dump(tmp_path / "stats-1.json")
    two.dump(tmp_path / "stats-2.json")
    merged = merge_dumps(sorted(tmp_path.glob("stats-*.json")))
    assert sorted(lat for _, lat in merged.latencies) == [10.0, 20.0]
    assert merged.bytes_in[5] == 150
    assert merged.requests[5] == 2
    assert set(merged.viewers) == {"1-0", "2-0"}
    assert merged.out_of_order == 1
    assert json.loads((tmp_path / "stats-1.json").read_text())["commands"] == [[4.9, 200]]


def test_http_head_bytes_counts_crlf_and_separators():
    # "HTTP/1.1 200 OK\r\n" + "ETag: \"1\"\r\n" + "\r\n"
    assert http_head_bytes(len("HTTP/1.1 200 OK"), [("ETag", '"1"')]) == 17 + 11 + 2


def test_ws_frame_bytes_follow_rfc6455_length_encoding():
    assert ws_frame_bytes(125) == 127
    assert ws_frame_bytes(126) == 130
    assert ws_frame_bytes(70_000) == 70_010


def test_a_saturated_server_with_one_command_still_gets_a_busy_window():
    rec = Recorder()
    rec.viewer_started("a", 100.0)
    rec.commands = [(106.5, 200)]
    rec.close_viewers(112.0)
    phases = phases_of(rec)
    assert (phases.busy.first_bucket, phases.busy.end_bucket) == (107, 112)


def test_an_idle_run_has_an_idle_window_to_the_end_and_no_busy_window():
    rec = Recorder()
    rec.viewer_started("a", 100.0)
    rec.viewer_started("b", 100.5)
    rec.traffic(110.0, 300, 1)
    rec.close_viewers(161.2)
    phases = phases_of(rec)
    assert (phases.idle.first_bucket, phases.idle.end_bucket) == (102, 161)
    assert phases.busy is None
    summary = summarise(rec)
    assert summary.idle_s == 59.0
    assert math.isclose(summary.requests_per_viewer_min_idle, 1 / (2 * 59) * 60)
