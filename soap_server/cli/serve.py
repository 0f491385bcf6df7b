"""``tfsoap serve`` and ``tfsoap wsdl``: run the server, write the contract."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

from .. import __version__
from ..settings import Settings, load_settings


def add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve every model in a model store over SOAP",
                       description="Serve every model in a model store as PredictService. "
                       "Every flag is also a TFSOAP_<NAME> environment variable.")
    p.add_argument("--config", help="TOML file with settings (or TFSOAP_CONFIG)")
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if kind == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=None, help=f"(default {f.default})")
        else:
            conv = {"int": int, "float": float}.get(kind, str)
            p.add_argument(flag, dest=f.name, type=conv, default=None,
                           help=f"(default {f.default!r})")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..app import start_server
    from ..observability import configure_logging

    cli_values = {f.name: getattr(args, f.name) for f in fields(Settings)}
    settings = load_settings(cli_values, config_file=args.config)
    configure_logging(settings)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    server = start_server(settings)
    print(f"tfsoap {__version__}: PredictService at {server.url} (WSDL: {server.url}?wsdl); "
          f"model store {server.app.registry.repository.root}", flush=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            threading.Thread(target=server.app.registry.reload, daemon=True).start()
        else:
            stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)
    stop.wait()
    server.stop()
    return 0


def add_wsdl(sub: Any) -> None:
    p = sub.add_parser("wsdl", help="write the WSDL of PredictService")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.add_argument("--address", default=None,
                   help="endpoint address to put in the WSDL (default: a placeholder)")
    p.set_defaults(func=cmd_wsdl)


def cmd_wsdl(args: argparse.Namespace) -> int:
    from ..app import contract_wsdl
    from ..soap import PLACEHOLDER_ADDRESS

    doc = contract_wsdl(args.address or PLACEHOLDER_ADDRESS)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_bytes(doc)
    else:
        sys.stdout.buffer.write(doc)
    return 0
