"""The migration engine in rooms: result types, planning, limits, the executors that
send a run's SQL, and the translation of their failures. `bilantools.db.runner.Runner`
coordinates them for one connection."""
