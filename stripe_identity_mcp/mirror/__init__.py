"""The local customer mirror (SQLite): full export once, then Stripe events (sync or webhooks)."""
