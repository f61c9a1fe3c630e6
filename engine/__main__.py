"""``python -m engine``: the same as the ``dagwave`` command."""

from engine._cli import main

raise SystemExit(main())
