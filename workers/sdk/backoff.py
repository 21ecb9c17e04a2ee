"""The SDK's backoff is the shared one (:mod:`jobspine_shared.backoff`); clients use it too."""

from __future__ import annotations

from jobspine_shared.backoff import Backoff, jittered

__all__ = ["Backoff", "jittered"]
