"""The ``tfsoap`` command line: thin; parses arguments, builds settings, calls the library.

- ``serve``: ``serve`` and ``wsdl`` (the server and its contract);
- ``client``: ``predict`` and ``models`` (a running server through ``tfsoap_client``, or a store);
- ``tools``: ``freeze``, ``convert-keras``, ``convert-savedmodel``, ``inspect`` (the work is
  ``model_store.tools``);
- ``users``: ``users add``, ``users list``, ``users remove`` (the users file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__
from ..settings import SettingsError
from . import client, serve, tools, users


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfsoap", description="Serve TensorFlow models over "
                                     "SOAP, and get trained models into servable shape.")
    parser.add_argument("--version", action="version", version=f"tfsoap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_serve(sub)
    serve.add_wsdl(sub)
    client.add_predict(sub)
    client.add_models(sub)
    tools.register(sub)
    users.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        parser.exit(2, f"tfsoap: error: {exc}\n")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
