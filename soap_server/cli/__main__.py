"""``python -m soap_server.cli``: the ``tfsoap`` command."""

import sys

from . import main

sys.exit(main())
