"""Fusion Studio: build the studio for a preset, build the page, launch it.

    python app.py                      # http://127.0.0.1:7860 (a Space sets GRADIO_SERVER_NAME)
    python app.py --mcp                # also serve Gradio's MCP server at /gradio_api/mcp/
    python app.py --history ~/studio-history --history-max-mb 200
    python app.py --public             # each visitor sees only their own history (on by default on a Space)
"""

from __future__ import annotations

import argparse
import os
import threading
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Fusion Studio web app.")
    parser.add_argument("--preset", default="embedded", help="a preset name or a saved studio folder")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument(
        "--history", default=default_history(),
        help="the history folder (default: $FUSION_STUDIO_HISTORY, else /data/fusion-studio/history on a Space with persistent storage, else the user data folder)",
    )
    parser.add_argument("--history-max-items", type=int, default=500, help="keep at most this many results")
    parser.add_argument("--history-max-mb", type=float, default=1000, help="keep at most this many MB of results")
    parser.add_argument("--visitor-max-items", type=int, default=100, help="with --public: keep at most this many results per visitor")
    parser.add_argument("--visitor-max-mb", type=float, default=200, help="with --public: keep at most this many MB of results per visitor")
    parser.add_argument(
        "--public", action=argparse.BooleanOptionalAction, default=bool(os.environ.get("SPACE_ID")),
        help="keep each visitor's history private and never show a server path (default: on where $SPACE_ID is set, as on a Space)",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="generations run at once")
    parser.add_argument("--queue-size", type=int, default=16, help="requests that may wait; more are refused")
    parser.add_argument("--mcp", action="store_true", help="also serve Gradio's MCP server")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    start = time.perf_counter()
    args = parse_args(argv)
    # torch and the encoders load on one core while gradio imports on the other
    loaded: dict = {}
    loader = threading.Thread(target=lambda: loaded.update(studio=_load_studio(args)), name="load-studio")
    loader.start()
    import gradio  # noqa: F401  (imported here, beside the loading thread)

    from studio.history import History
    from studio.service import StudioService
    from studio.ui import build_ui, launch_options

    per_visitor = {"max_items_per_owner": args.visitor_max_items, "max_bytes_per_owner": int(args.visitor_max_mb * 1e6)} if args.public else {}
    history = History(args.history, max_items=args.history_max_items, max_bytes=int(args.history_max_mb * 1e6), **per_visitor)
    loader.join()
    if "studio" not in loaded:
        raise SystemExit("The studio failed to load; see the error above.")
    service = StudioService(loaded["studio"], history)
    service.start_indexing()
    demo = build_ui(service, concurrency_limit=args.concurrency, public=args.public)
    demo.queue(max_size=args.queue_size, default_concurrency_limit=args.concurrency)
    mode = "private per visitor" if args.public else "one user"
    print(f"History: {history.folder} ({len(history)} items, {mode}). Started in {time.perf_counter() - start:.1f} s.")
    demo.launch(server_name=args.host, server_port=args.port, mcp_server=args.mcp, **launch_options(service, public=args.public))


def default_history() -> str | None:
    """``$FUSION_STUDIO_HISTORY``, else a Space's persistent storage (``/data``) where it has one."""
    if os.environ.get("FUSION_STUDIO_HISTORY"):
        return os.environ["FUSION_STUDIO_HISTORY"]
    if os.environ.get("SPACE_ID") and os.path.isdir("/data") and os.access("/data", os.W_OK):
        return "/data/fusion-studio/history"
    return None  # the user data folder (studio.history.default_folder)


def _load_studio(args: argparse.Namespace):
    from core import load_studio

    return load_studio(args.preset, device=args.device)


if __name__ == "__main__":
    main()
