"""Stripe API emulator ("sandbox"): in-memory, seeded, served over real HTTP.

Keys: ``sk_test_sandbox`` (test), ``sk_live_sandbox`` (live), ``rk_test_sandbox`` (restricted:
customers + payment methods read). SCIM token ``scim_sandbox``. Test-control API: ``/_sandbox/*``.
"""

from .app import build_app
from .config import SandboxConfig
from .runner import SandboxHandle, main_sandbox, run_sandbox, serve_in_thread
from .seed import FIXED_IDS, SHARED_PEOPLE
from .state import Sandbox

__all__ = [
    "FIXED_IDS",
    "SHARED_PEOPLE",
    "Sandbox",
    "SandboxConfig",
    "SandboxHandle",
    "build_app",
    "main_sandbox",
    "run_sandbox",
    "serve_in_thread",
]
