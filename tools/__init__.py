"""Release tooling (not part of the wheel): manifest generation and the installed-package checks."""
