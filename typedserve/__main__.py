"""``python -m typedserve``: the same as the ``typedserve`` command."""

from typedserve.cli import main

raise SystemExit(main())
