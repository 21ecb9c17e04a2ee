"""Limits of the contract's "Limits, sessions and abuse": call rates (token buckets, in
process or in Redis), sockets per user, and the refusal every limit raises."""

from __future__ import annotations

from server.limits.buckets import LocalRateLimiter, RateLimiter, RedisRateLimiter
from server.limits.refusal import rate_limited

__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter", "rate_limited"]
