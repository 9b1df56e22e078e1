"""The demo app: one photo, Johnson et al. 2016 and Gatys et al. 2015 side by side.

The file a Hugging Face Space runs (README front matter: ``app_file: app.py``), and what
``python app.py`` and ``nst app`` serve. It only builds the page and launches it: the
page, its handlers and the ZeroGPU wrappers are in ``webapp/``, the algorithms in ``nst``.
``NST_ZOO_CATALOGUE`` points the page at another style catalogue.
"""

from __future__ import annotations

# ``spaces`` must come before torch: on ZeroGPU it patches CUDA initialisation.
import spaces  # noqa: F401

# isort: split

import argparse

from webapp import AppConfig, create_app, default_config, launch

__all__ = ["AppConfig", "config", "create_app", "default_config", "demo", "launch", "main"]

config = default_config()
demo = create_app(config)


def main(argv: list[str] | None = None) -> int:
    """``nst app [--host H] [--port P] [--share]``: serve the page until interrupted."""
    parser = argparse.ArgumentParser(prog="nst app", description="Serve the web app.")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also a public gradio.live link")
    args = parser.parse_args(argv)
    launch(demo, config, server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    launch(demo, config)
