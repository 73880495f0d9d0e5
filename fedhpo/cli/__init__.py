"""fedhpo.cli: the ``fedhpo`` command (:func:`fedhpo.cli.main.main`), one small module per
subcommand."""

from __future__ import annotations

import sys


def entry() -> int:
    """The console script: :func:`fedhpo.cli.main.main`, where a Ctrl-C while torch and
    optuna load (seconds) ends as one during a command does, not with a traceback."""
    try:
        from fedhpo.cli.main import main
    except KeyboardInterrupt:
        print("fedhpo: interrupted", file=sys.stderr)
        return 130
    return main()
