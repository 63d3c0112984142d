"""studio-bench: every case on the tiny studio with both references, a table and JSON; and the
startup benchmark, which starts app.py beside a plain gradio page."""

import json
import statistics
import sys

import pytest

from core.bench import (
    CASES,
    format_startup,
    format_table,
    free_port,
    matmul_peak_gflops,
    run_benchmark,
    run_startup_benchmark,
    seconds_until_served,
)

pytestmark = pytest.mark.slow


def test_bench_reports_every_case_with_references(tiny_studio):
    from core.decoders.vocoder import Vocoder

    tiny_studio.pipeline._vocoder = Vocoder(method="griffin-lim", griffin_lim_iters=4)
    report = run_benchmark(tiny_studio, batches=(1, 2), runs=1, steps=2, unlocked_reference=True)
    json.dumps(report)  # serialisable
    cases = {(row["case"], row["batch"]) for row in report["rows"]}
    clients = {("two_clients_text_to_image", 1), ("two_clients_unlocked_reference", 1)}
    assert cases == {(case, batch) for case in (*CASES, "reference_plain_unet_loop") for batch in (1, 2)} | clients
    one = next(row for row in report["rows"] if row["case"] == "text_to_image" and row["batch"] == 1)
    for row in report["rows"]:
        if row["case"].startswith("two_clients"):  # two requests a run, each timed from the same start
            assert len(row["times_s"]) == 2 and row["vs_one_client"] == pytest.approx(row["median_s"] / one["median_s"])
    assert report["matmul_peak_gflops"] > 0
    plain = {row["batch"]: row for row in report["rows"] if row["case"] == "reference_plain_unet_loop"}
    for row in report["rows"]:
        if "times_s" in row:
            assert row["median_s"] == pytest.approx(statistics.median(row["times_s"]))
        assert row["per_item_s"] == pytest.approx(row["median_s"] / row["batch"]) and row["peak_mib"] > 0
        if row["case"] == "text_to_image":  # the ratios are of figures measured in the same run
            assert row["vs_plain_loop"] == pytest.approx(row["median_s"] / plain[row["batch"]]["median_s"])
            assert row["fraction_of_matmul_peak"] == pytest.approx(row["unet_gflops"] / report["matmul_peak_gflops"])
            # the same UNet work over each run's time
            assert row["unet_gflops"] * row["median_s"] == pytest.approx(plain[row["batch"]]["unet_gflops"] * plain[row["batch"]]["median_s"])
    table = format_table(report)
    assert "text_to_image" in table and "reference_plain_unet_loop" in table and "two clients at once" in table


def test_concurrent_seconds_times_each_request_from_the_common_start():
    import threading
    import time

    from core.bench import concurrent_seconds

    lock = threading.Lock()

    def call():
        with lock:  # taking turns: the second request waits for the first
            time.sleep(0.2)

    times = sorted(concurrent_seconds(call, clients=2, runs=1))
    assert times[0] == pytest.approx(0.2, abs=0.1) and times[1] == pytest.approx(0.4, abs=0.1)


def test_matmul_peak_counts_two_flops_per_multiply_add_over_the_fastest_run(monkeypatch):
    import itertools

    import torch

    import core.bench

    durations = itertools.cycle([0.5, 0.25, 1.0])  # seconds of each timed product, in turn
    clock = {"now": 0.0, "started": False}

    def perf_counter():
        if clock["started"]:
            clock["now"] += next(durations)
        clock["started"] = not clock["started"]
        return clock["now"]

    monkeypatch.setattr(core.bench.time, "perf_counter", perf_counter)
    assert matmul_peak_gflops(torch.device("cpu"), size=256, repeats=2) == pytest.approx(2 * 256**3 / 0.25 / 1e9)


def test_startup_benchmark_times_the_app_beside_a_plain_gradio_page():
    report = run_startup_benchmark(runs=1)
    json.dumps(report)
    assert len(report["studio_app_s"]) == len(report["plain_gradio_page_s"]) == 1
    assert report["studio_app_median_s"] > 0 and report["plain_gradio_page_median_s"] > 0
    assert report["vs_plain_page"] == pytest.approx(report["studio_app_median_s"] / report["plain_gradio_page_median_s"])
    assert report["within_target"] == (report["studio_app_median_s"] <= report["target_s"])
    assert "plain gradio page" in format_startup(report)


def test_a_server_that_exits_before_answering_is_reported_with_its_output():
    port = free_port()
    with pytest.raises(RuntimeError, match="exited with status 3(.|\\n)*no model here"):
        seconds_until_served([sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"], port, timeout=60)
