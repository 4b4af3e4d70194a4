"""The organism: the default substrate, a small model built here (tasks, build) and loaded only by its pinned
weights hash (pinned)."""
