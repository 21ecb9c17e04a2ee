"""``scripts/bench peer``: jobspine against saq, a job queue a user could pick instead.

The modules that run in saq's own virtualenv (:mod:`.saq_side`) and the one they share with
jobspine's side (:mod:`.observe`) use the standard library only.
"""
