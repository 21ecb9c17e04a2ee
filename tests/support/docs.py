"""Code blocks of docs/clients.md, read as written, for the tests that run them."""

from __future__ import annotations

import re

from tests.support.processes import ROOT

CLIENTS_DOC = ROOT / "docs" / "clients.md"


def doc_block(section: str, language: str) -> str:
    """The first ``language`` block under the heading ``section`` of docs/clients.md."""
    text = CLIENTS_DOC.read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    block = re.compile(rf"^```{re.escape(language)}\n(.*?)^```$", re.MULTILINE | re.DOTALL)
    match = block.search(text[start:end])
    assert match is not None, f"no {language} block under {section!r} in docs/clients.md"
    return match[1]


__all__ = ["CLIENTS_DOC", "doc_block"]
