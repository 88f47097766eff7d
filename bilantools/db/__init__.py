"""Everything that talks to PostgreSQL: targets, the sandbox, history, lock, runner."""
