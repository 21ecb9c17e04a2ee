"""The command line of a ``scripts/bench`` subcommand."""

from __future__ import annotations

import argparse


def parser(subcommand: str, doc: str | None) -> argparse.ArgumentParser:
    """``scripts/bench SUBCOMMAND``'s parser; its help starts with the first line of ``doc``
    (the module's docstring)."""
    return argparse.ArgumentParser(
        prog=f"scripts/bench {subcommand}", description=doc.splitlines()[0] if doc else None
    )


__all__ = ["parser"]
