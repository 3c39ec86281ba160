"""``python -m blowtorch``: the ``blowtorch`` command."""

from blowtorch.cli import main

raise SystemExit(main())
