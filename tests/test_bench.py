"""studio-bench on the tiny studio: every case, both references, a table and JSON."""

import json

import pytest

from core.bench import CASES, format_table, matmul_peak_gflops, run_benchmark

pytestmark = pytest.mark.slow


def test_bench_reports_every_case_with_references(tiny_studio):
    from core.decoders.vocoder import Vocoder

    tiny_studio.pipeline._vocoder = Vocoder(method="griffin-lim", griffin_lim_iters=4)
    report = run_benchmark(tiny_studio, batches=(1, 2), runs=1, steps=2)
    json.dumps(report)  # serialisable
    cases = {(row["case"], row["batch"]) for row in report["rows"]}
    assert cases == {(case, batch) for case in (*CASES, "reference_plain_unet_loop") for batch in (1, 2)}
    assert report["matmul_peak_gflops"] > 0
    for row in report["rows"]:
        assert row["median_s"] > 0 and row["peak_mib"] > 0
        if row["case"] == "text_to_image":
            assert row["vs_plain_loop"] > 0 and row["fraction_of_matmul_peak"] > 0
    table = format_table(report)
    assert "text_to_image" in table and "reference_plain_unet_loop" in table


def test_matmul_peak_is_positive():
    import torch

    assert matmul_peak_gflops(torch.device("cpu"), size=256, repeats=2) > 0
