"""Migrations on disk: discovery, headers, checksums, statements, ordering.

Nothing here talks to a database.
"""
