"""The benchmark suite of jobspine against the raw libraries (``scripts/bench``)."""
