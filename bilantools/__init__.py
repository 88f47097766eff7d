"""bilantools: migrate, back up, verify, inspect and roll back the BilanCompetence.AI schema.

The public Python API is `bilantools.commands` (one function per user-level operation);
the CLI and the notebook widgets are thin faces over it.
"""

from bilantools.errors import BilanToolsError

__version__ = "0.1.0"
__all__ = ["BilanToolsError", "__version__"]
