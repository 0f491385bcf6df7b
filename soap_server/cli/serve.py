"""``tfsoap serve`` and ``tfsoap wsdl``: run the server, write the contract."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from .. import __version__
from ..settings import Settings, SettingsError, load_settings
from .settings_help import help_for


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
                           default=None, help=help_for(f))
        else:
            conv = {"int": int, "float": float}.get(kind, str)
            p.add_argument(flag, dest=f.name, type=conv, default=None, help=help_for(f))
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from model_store import bundled_store_path

    from ..app import check_before_workers, serve
    from ..http import scheme_of, url_of
    from ..observability import configure_logging

    cli_values = {f.name: getattr(args, f.name) for f in fields(Settings)}
    settings = load_settings(cli_values, config_file=args.config)
    settings = dataclasses.replace(settings, port=_claim_port(settings.host, settings.port))
    check_before_workers(settings)  # what would stop every worker: one error line, exit 2
    configure_logging(settings)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    url = settings.public_url or url_of(settings.host, settings.port,
                                                scheme_of(settings))
    store = Path(settings.model_store or bundled_store_path()).resolve()
    grpc = f"; TF Serving gRPC at {settings.host}:{settings.grpc_port}" \
        if settings.grpc_port else ""
    print(f"tfsoap {__version__}: PredictService at {url} (WSDL: {url}?wsdl); "
          f"model store {store}; {settings.workers} worker process(es){grpc}", flush=True)
    serve(settings)
    return 0


def _claim_port(host: str, port: int) -> int:
    """The port to listen on (a free one for 0), checked before any worker starts, so that a
    port in use is one error line rather than a crash in every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            return int(s.getsockname()[1])
    except OSError as exc:
        raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


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
