"""envrepo: a git repository as the registry of record for reusable ML environments."""

try:
    # Written by setuptools-scm from the git tag when the package is built or installed.
    from envrepo._version import __version__ as __version__
except ImportError:  # a source tree that was never built or installed
    __version__ = "0+unknown"
