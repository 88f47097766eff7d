"""Fleets: one command over many databases, in waves (see `rollout`)."""
