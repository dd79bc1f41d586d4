"""envrepo: a git repository as the registry of record for reusable ML environments."""

__version__ = "0.1.0"
