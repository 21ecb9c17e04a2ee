"""REST transport: JSON views over the job repository, health, readiness and metrics."""
