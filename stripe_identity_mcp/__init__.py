"""stripe_identity_mcp: an MCP server for Stripe's three user concepts."""

__version__ = "0.1.0"
