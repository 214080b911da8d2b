"""pocketfit: will this model fit on that phone, and how fast will it run there?

The converter (`pocketfit.converter`) exports and verifies artifacts; the runtime
(`pocketfit.runtime`) measures them and checks them against phones. This package holds the
CLI and the small shared core: errors, units and the manifest.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pocketfit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
