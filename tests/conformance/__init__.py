"""The conformance suite's recorder and fixtures (``python -m tests.conformance.record``)."""
