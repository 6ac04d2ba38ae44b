"""Serve the crash theatre as an app: Voila runs `app/theatre.ipynb` on 127.0.0.1, offline.

    python -m aegispay.viz.theatre_app            # what `make demo` runs: port 8866 or a free one

It prints the address and how to stop it, and never opens a browser. The template `theatre`
(in `app/share/voila/templates/`) is Voila's lab template without its stylesheets from a CDN.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PORT = 8866
APP = Path(__file__).resolve().parents[2] / "app"
NOTEBOOK = APP / "theatre.ipynb"


def free_port(preferred: int = DEFAULT_PORT, host: str = "127.0.0.1") -> int:
    """`preferred` when nothing listens on it, else a port the system has free."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host}")


def voila_command(port: int, notebook: Path = NOTEBOOK) -> list[str]:
    """Voila serving the notebook on 127.0.0.1:port with the theatre's template, no browser;
    a kernel is started and the notebook run ahead of the first visit (preheat)."""
    return [
        sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", "--template=theatre", "--theme=light", "--preheat_kernel=True",
    ]  # fmt: skip


def voila_environment(notebook: Path = NOTEBOOK) -> dict[str, str]:
    """This process's environment, with the notebook's `share/` on Jupyter's data path (where
    Voila looks for templates)."""
    shared = str(notebook.parent / "share")
    path = os.pathsep.join(filter(None, (shared, os.environ.get("JUPYTER_PATH"))))
    return {**os.environ, "JUPYTER_PATH": path}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the address, then become Voila (Ctrl-C stops it)."""
    parser = argparse.ArgumentParser(prog="theatre_app", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port, if it is free")
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK, help="the app's notebook")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        print(f"theatre_app: no notebook at {args.notebook}", file=sys.stderr)
        return 2
    port = free_port(args.port)
    print(f"\nAegisPay crash theatre: open http://127.0.0.1:{port}/ in your browser")
    print("(the first page takes a few seconds while the kernel starts); stop it with Ctrl-C\n")
    sys.stdout.flush()
    command = voila_command(port, args.notebook)
    os.execve(command[0], command, voila_environment(args.notebook))


if __name__ == "__main__":
    sys.exit(main())
