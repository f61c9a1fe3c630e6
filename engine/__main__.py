"""``python -m dagwave``: the same as the ``dagwave`` command."""

from dagwave.cli._main import main

raise SystemExit(main())
