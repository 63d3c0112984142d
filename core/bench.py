"""``studio-bench``: how fast the studio generates, against references measured in the same run.

For the chosen preset it times text→image, image→audio, image→caption and (text+image)→image
at each batch size (median of ``--runs`` runs after one warm-up) and records peak memory. In
the same run it measures two references, so results read as ratios on a noisy shared machine:

- the same image UNet and scheduler driven by a plain diffusers denoising loop with random
  condition tokens: ``pipeline / plain`` is the pipeline's overhead (encoders, fusion, the
  embedding decoder, the autoencoder);
- the machine's matrix-product peak (fp32 ``torch.mm`` of 2048x2048): the UNet's achieved
  GFLOP/s is reported as a fraction of it.

``studio-bench --startup N`` instead times how long ``python app.py`` takes to answer its first
page request, N times, alternating with the same measure of a one-textbox gradio page (what
any gradio app pays to import and serve), and compares the median with the 20 s target for
``make run`` on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CASES = ("text_to_image", "image_to_audio", "image_to_caption", "mixed_to_image")
STARTUP_TARGET_S = 20.0  # `make run` ready within 20 s on 2 cores
APP = Path(__file__).resolve().parents[1] / "app.py"
PLAIN_PAGE = (  # the reference: a one-textbox gradio page, launched the way app.py launches
    "import sys\nimport gradio as gr\nwith gr.Blocks() as demo:\n    gr.Textbox()\n"
    "demo.launch(server_name='127.0.0.1', server_port=int(sys.argv[1]))\n"
)


class PeakMemory:
    """Peak resident memory of this process (CPU, sampled) or peak allocated memory (CUDA) in MiB."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        import psutil

        process = psutil.Process()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, process.memory_info().rss / 2**20)
                time.sleep(0.01)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()


def median_seconds(run: Callable[[], object], runs: int, device: torch.device) -> tuple[float, float, list[float]]:
    """Median wall time of ``runs`` calls after one warm-up, and the peak memory (MiB) meanwhile."""
    run()
    times = []
    with PeakMemory(device) as memory:
        for _ in range(runs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times), memory.peak, times


def concurrent_seconds(call: Callable[[], object], clients: int, runs: int) -> list[float]:
    """Per-request wall times of ``clients`` threads that call at the same moment, ``runs`` times
    over (a request's time includes its wait for the others)."""
    times: list[float] = []
    for _ in range(runs):
        barrier = threading.Barrier(clients)

        def client(barrier=barrier):
            barrier.wait()
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return times


def matmul_peak_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """The best of ``repeats`` fp32 ``torch.mm`` timings of ``size``x``size``, in GFLOP/s."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def unet_gflop(unet, batch: int, tokens: torch.Tensor) -> float:
    """GFLOP of one forward of ``unet`` at ``batch`` (counted by torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = unet.config
    sample = torch.randn(batch, config.in_channels, config.sample_size, config.sample_size, device=unet.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(sample, 500, encoder_hidden_states=tokens[:1].expand(batch, -1, -1))
    return counter.get_total_flops() / 1e9


def plain_denoising_loop(pipeline, batch: int, steps: int, guidance: float, seed: int = 0) -> Callable[[], torch.Tensor]:
    """The reference: the pipeline's image UNet and scheduler in the textbook diffusers loop."""
    unet, projector = pipeline.image_unet, pipeline.image_condition
    scheduler = type(pipeline.image_scheduler).from_config(pipeline.image_scheduler.config)
    config = unet.config
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, projector.config.num_tokens, config.cross_attention_dim, generator=generator).to(unet.device)
    null = projector.null(batch).to(unet.device)

    @torch.no_grad()
    def run() -> torch.Tensor:
        latents = torch.randn(batch, config.in_channels, config.sample_size, config.sample_size, generator=generator).to(unet.device)
        scheduler.set_timesteps(steps, device=unet.device)
        for timestep in scheduler.timesteps:
            prediction = unet(torch.cat([latents] * 2), timestep, encoder_hidden_states=torch.cat([null, tokens])).sample
            unconditional, conditional = prediction.chunk(2)
            latents = scheduler.step(unconditional + guidance * (conditional - unconditional), timestep, latents).prev_sample
        return latents

    return run


def example_inputs() -> tuple[Image.Image, tuple[int, np.ndarray]]:
    """A fixed picture and a fixed one-second sound to benchmark with."""
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    sound = (22050, (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.float32))
    return picture, sound


def run_benchmark(studio, batches: tuple[int, ...], runs: int, steps: int | None, unlocked_reference: bool = False) -> dict:
    """Times every case and both references, and two clients at once against one (with
    ``unlocked_reference``, also each computing on its own thread, as before the studio had its
    model thread; run last, as it leaves torch thread pools behind); returns a JSON-serialisable report."""
    pipeline = studio.pipeline
    device = studio.device
    picture, sound = example_inputs()
    image_steps, image_guidance = pipeline.resolve_defaults("image", steps, None)
    audio_steps, audio_guidance = pipeline.resolve_defaults("audio", steps, None)
    cases = {
        "text_to_image": lambda n: studio.generate("image", text="a red fire truck", num=n, steps=image_steps),
        "image_to_audio": lambda n: studio.generate("audio", image=picture, num=n, steps=audio_steps),
        "image_to_caption": lambda n: studio.generate("caption", image=picture, num=n),
        "mixed_to_image": lambda n: studio.generate("image", text="a cat", image=picture, audio=sound, weights={"image": 0.5}, num=n, steps=image_steps),
    }
    from .studio import MODEL_THREAD

    # the references run where the studio's calls run (a second computing thread would slow both)
    peak = MODEL_THREAD.run(matmul_peak_gflops, device)
    tokens = pipeline.image_condition.null(1).detach()
    rows = []
    for batch in batches:
        plain = plain_denoising_loop(pipeline, batch, image_steps, image_guidance)
        plain_seconds, plain_memory, _ = median_seconds(lambda plain=plain: MODEL_THREAD.run(plain), runs, device)
        forwards = image_steps * 2  # classifier-free guidance doubles the batch
        unet_seconds_gflop = MODEL_THREAD.run(unet_gflop, pipeline.image_unet, 2 * batch, tokens) * image_steps
        for name, case in cases.items():
            seconds, memory, times = median_seconds(lambda case=case, batch=batch: case(batch), runs, device)
            row = {"case": name, "batch": batch, "median_s": seconds, "per_item_s": seconds / batch, "peak_mib": memory, "times_s": times}
            if name in ("text_to_image", "mixed_to_image"):
                row["vs_plain_loop"] = seconds / plain_seconds
                row["unet_gflops"] = unet_seconds_gflop / seconds
                row["fraction_of_matmul_peak"] = row["unet_gflops"] / peak
            rows.append(row)
        rows.append({
            "case": "reference_plain_unet_loop", "batch": batch, "median_s": plain_seconds, "per_item_s": plain_seconds / batch,
            "peak_mib": plain_memory, "unet_forwards": forwards, "unet_gflops": unet_seconds_gflop / plain_seconds,
            "fraction_of_matmul_peak": unet_seconds_gflop / plain_seconds / peak,
        })
    one = next(row for row in rows if row["case"] == "text_to_image" and row["batch"] == batches[0])
    clients = {"two_clients_text_to_image": lambda: studio.generate("image", text="a red fire truck", num=batches[0], steps=image_steps)}
    if unlocked_reference:  # as before the model thread: each client computes on its own thread, at once
        generate = type(studio).generate.__wrapped__
        clients["two_clients_unlocked_reference"] = lambda: generate(studio, "image", text="a red fire truck", num=batches[0], steps=image_steps)
    for name, call in clients.items():
        with PeakMemory(device) as memory:
            times = concurrent_seconds(call, clients=2, runs=runs)
        seconds = statistics.median(times)
        rows.append({"case": name, "batch": batches[0], "median_s": seconds, "per_item_s": seconds / batches[0], "peak_mib": memory.peak,
                     "times_s": times, "vs_one_client": seconds / one["median_s"]})
    return {
        "preset": studio.preset, "weights_version": studio.weights_version, "trained": studio.is_trained,
        "device": str(device), "threads": torch.get_num_threads(), "runs": runs,
        "steps": {"image": image_steps, "audio": audio_steps}, "guidance": {"image": image_guidance, "audio": audio_guidance},
        "matmul_peak_gflops": peak, "rows": rows,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(command: list[str], port: int, timeout: float = 120.0, env: dict | None = None, cwd: str | Path | None = None) -> Iterator[float]:
    """Starts ``command``, which serves http://127.0.0.1:``port``/, and yields the seconds until
    that page first answers 200, with the server still running; it is stopped on leaving. Raises
    ``RuntimeError`` with the end of its output if it exits first or does not answer within
    ``timeout``."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            ready = exited = None
            while ready is None and exited is None and time.perf_counter() - start < timeout:
                exited = process.poll()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                        if answer.status == 200:
                            ready = time.perf_counter() - start
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.1)
            if ready is None:
                log.seek(0)
                output = log.read().decode(errors="replace")[-2000:]
                why = f"exited with status {exited}" if exited is not None else f"did not answer within {timeout:.0f} s"
                raise RuntimeError(f"{' '.join(command)[:80]} {why}:\n{output}")
            yield ready
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def seconds_until_served(command: list[str], port: int, timeout: float = 120.0, env: dict | None = None) -> float:
    """The seconds until ``command``'s page first answers (see ``serving``); the server is stopped."""
    with serving(command, port, timeout, env) as seconds:
        return seconds


def run_startup_benchmark(runs: int, preset: str = "embedded", app: Path = APP) -> dict:
    """Times ``python app.py`` to its first answered page, ``runs`` times, alternating with the
    plain gradio page (so both see the same load); medians, their ratio and the target."""
    if not app.is_file():
        raise SystemExit(f"{app} not found: run studio-bench --startup from a checkout of the studio.")
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "GRADIO_ANALYTICS_ENABLED": "False"}
    studio_times, plain_times = [], []
    with tempfile.TemporaryDirectory() as history:
        for _ in range(runs):
            port = free_port()
            plain_times.append(seconds_until_served([sys.executable, "-c", PLAIN_PAGE, str(port)], port, env=env))
            port = free_port()
            command = [sys.executable, str(app), "--preset", preset, "--port", str(port), "--history", history]  # as `make run`
            studio_times.append(seconds_until_served(command, port, env=env))
    studio_median, plain_median = statistics.median(studio_times), statistics.median(plain_times)
    return {
        "preset": preset, "runs": runs, "cores": os.cpu_count(), "target_s": STARTUP_TARGET_S,
        "studio_app_s": studio_times, "plain_gradio_page_s": plain_times,
        "studio_app_median_s": studio_median, "plain_gradio_page_median_s": plain_median,
        "vs_plain_page": studio_median / plain_median, "within_target": studio_median <= STARTUP_TARGET_S,
    }


def format_startup(report: dict) -> str:
    """The startup report as plain text."""
    verdict = "within" if report["within_target"] else "OVER"
    return (
        f"app.py --preset {report['preset']} ({report['cores']} cores), median of {report['runs']} starts to the first answered page:\n"
        f"  studio app         {report['studio_app_median_s']:6.1f} s  ({', '.join(f'{t:.1f}' for t in report['studio_app_s'])})\n"
        f"  plain gradio page  {report['plain_gradio_page_median_s']:6.1f} s  ({', '.join(f'{t:.1f}' for t in report['plain_gradio_page_s'])})\n"
        f"  ratio {report['vs_plain_page']:.2f}x; {verdict} the {report['target_s']:.0f} s target"
    )


def format_table(report: dict) -> str:
    """The report as a plain-text table."""
    header = f"{'case':<28}{'batch':>6}{'median s':>10}{'s/item':>9}{'peak MiB':>10}{'vs plain':>9}{'UNet GF/s':>10}{'of peak':>8}"
    lines = [
        f"preset {report['preset']} ({report['weights_version']}, trained={report['trained']}) on {report['device']}, "
        f"{report['threads']} threads, median of {report['runs']}; steps {report['steps']}, "
        f"matmul peak {report['matmul_peak_gflops']:.1f} GFLOP/s",
        header,
        "-" * len(header),
    ]
    if any("vs_one_client" in row for row in report["rows"]):
        lines[0] += "; *: a request's time with two clients at once, against one client's"
    for row in report["rows"]:
        ratio = f"{row['vs_plain_loop']:.2f}x" if "vs_plain_loop" in row else f"{row['vs_one_client']:.2f}x*" if "vs_one_client" in row else ""
        gflops = f"{row['unet_gflops']:.1f}" if "unet_gflops" in row else ""
        fraction = f"{100 * row['fraction_of_matmul_peak']:.1f}%" if "fraction_of_matmul_peak" in row else ""
        lines.append(
            f"{row['case']:<28}{row['batch']:>6}{row['median_s']:>10.3f}{row['per_item_s']:>9.3f}"
            f"{row['peak_mib']:>10.0f}{ratio:>9}{gflops:>10}{fraction:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="studio-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="embedded", help="a preset name or a saved studio folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case, after one warm-up")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the preset's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--unlocked-reference", action="store_true", help="also time two clients each computing on its own thread, as before the model thread")
    parser.add_argument("--startup", type=int, default=0, metavar="N", help="instead time N starts of app.py, beside a plain gradio page")
    args = parser.parse_args(argv)

    if args.startup:
        report = run_startup_benchmark(args.startup, args.preset)
        print(format_startup(report))
        write_json(report, args.json)
        return

    from . import load_studio

    studio = load_studio(args.preset, device=args.device)
    report = run_benchmark(studio, tuple(args.batches), args.runs, args.steps, args.unlocked_reference)
    report["load_seconds"] = studio.load_seconds
    print(format_table(report))
    write_json(report, args.json)


def write_json(report: dict, path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
