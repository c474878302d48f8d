"""``xpnet info`` and ``xpnet download``: the machine and the data cache.

``info`` shows versions, the backends (and why one is unavailable), their devices, the BLAS
libraries and their threads, and what is in the data cache. ``download`` fetches and
verifies MNIST or Fashion-MNIST into the cache or ``--data-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
from typing import Any

from .._version import __version__
from ..backends import BackendError, backend_status, get_backend, versions
from ..datasets import cache_dir, download
from ..ops import ops_for
from ._args import EXIT_OK
from ._output import console, kv_table, print_fitted, print_json, styled, table

__all__ = ["cmd_info", "cmd_download"]


def cmd_info(args: argparse.Namespace) -> int:
    """Run ``xpnet info``: what xpnet can use on this machine."""
    info = _gather()
    if args.json:
        print_json(info)
    else:
        _show(info)
    return EXIT_OK


def _devices(status: dict[str, str | None]) -> dict[str, list[str]]:
    """The devices of every usable backend (torch: the CPU and, when there is one, CUDA)."""
    devices: dict[str, list[str]] = {}
    for name, why in status.items():
        if why is not None:
            continue
        try:
            devices[name] = [get_backend(name).device_name]
        except BackendError as exc:  # pragma: no cover - probe said yes
            devices[name] = [f"unavailable: {exc}"]
        if name == "torch":
            with contextlib.suppress(BackendError):
                devices[name].append(get_backend("torch", "cuda").device_name)
    return devices


def _gather() -> dict[str, Any]:
    """Everything ``xpnet info`` reports, as JSON-ready data."""
    from threadpoolctl import threadpool_info

    status = backend_status()
    devices = _devices(status)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count()  # not Linux
    cache = cache_dir()
    data: dict[str, dict[str, Any]] = {}
    for name in ("mnist", "fashion-mnist"):
        folder = cache / name
        files = sorted(p.name for p in folder.glob("*ubyte*")) if folder.is_dir() else []
        data[name] = {"folder": str(folder), "files": files}
    return {
        "versions": {"xpnet": __version__, "python": platform.python_version(), **versions()},
        "platform": platform.platform(),
        "cpus": {"count": os.cpu_count(), "usable": affinity},
        "backends": {name: {"available": why is None, "reason": why,
                            "devices": devices.get(name, [])} for name, why in status.items()},
        "auto_backend": "cupy" if status.get("cupy") is None else "numpy",
        # the BLAS/OpenMP libraries in use and their threads (threadpoolctl, a dependency)
        "blas": [{"library": i.get("internal_api"), "api": i.get("user_api"),
                  "threads": i.get("num_threads"), "version": i.get("version"),
                  "threading": i.get("threading_layer")} for i in threadpool_info()],
        "cpu_speedups": ops_for(get_backend("numpy")).speedups(),  # see xpnet.ops
        "data_cache": {"dir": str(cache), "env": "XPNET_DATA_DIR", "datasets": data},
    }


def _show(info: dict[str, Any]) -> None:
    """Print ``info`` as tables and lines that fit the terminal's width."""
    con = console(stderr=False)
    cpus = info["cpus"]
    print_fitted(con, f"xpnet {info['versions']['xpnet']} on Python "
                      f"{platform.python_version()}, {info['platform']}, {cpus['usable']} "
                      f"of {cpus['count']} CPUs usable", indent=2)
    con.print(kv_table("packages", info["versions"].items()))
    b = table(f"backends (auto picks {info['auto_backend']})", ("backend", {"style": "bold"}),
              "status", "devices / reason")
    for name, row in info["backends"].items():
        ok = row["available"]
        b.add_row(name, styled(("available", "green") if ok else ("unavailable", "red")),
                  ", ".join(row["devices"]) if ok else row["reason"])
    con.print(b)
    columns = ("library", "api", "threads", "version")
    bl = table("BLAS", *columns)
    for row in info["blas"]:
        bl.add_row(*[str(row.get(c, "")) for c in columns])
    con.print(bl)
    for key, row in info["cpu_speedups"].items():
        print_fitted(con, f"{key:<22}{'on ' if row['on'] else 'off'}  {row['why']}",
                     indent=27)
    cache = info["data_cache"]
    print_fitted(con, f"data cache  {cache['dir']}  (set XPNET_DATA_DIR to move it)",
                 indent=12)
    for name, row in cache["datasets"].items():
        state = f"{len(row['files'])} file(s)" if row["files"] else "not downloaded"
        con.print(f"  {name:<14}{state}")


def cmd_download(args: argparse.Namespace) -> int:
    """Run ``xpnet download``: fetch and SHA-256-check a dataset's files."""
    folder = download(args.name, args.data_dir, progress=not args.quiet)
    print(f"{args.name}: the four files are verified in {folder}")
    return EXIT_OK

