"""The command line, a face of `bilantools.commands` (entry point: `bilantools.cli.main.main`).

Modules: `main` (the group, its global options, error printing), `flags` (the invocation's
context and shared flags), `output` (tables, JSON, step lines, prompts), and one module per
family of commands: `inspect`, `run`, `backup`, `runbook`, `sandbox`.
"""
