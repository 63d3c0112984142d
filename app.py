"""Fusion Studio: build the studio for a preset, build the page, launch it."""

from __future__ import annotations

import argparse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Fusion Studio web app.")
    parser.add_argument("--preset", default="embedded", help="a preset name or a saved studio folder")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a Space)")
    parser.add_argument("--port", type=int, default=7860)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from core import load_studio
    from studio.ui import build_ui

    studio = load_studio(args.preset, device=args.device)
    demo = build_ui(studio)
    demo.queue(max_size=32).launch(
        server_name=args.host, server_port=args.port, ssr_mode=False, max_file_size="50mb"
    )


if __name__ == "__main__":
    main()
