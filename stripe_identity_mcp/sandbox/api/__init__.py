"""Stripe's ``/v1`` handlers, a module per resource, each with its route table (``ROUTES``).

``app.py`` collects the tables; ``front.py`` answers everything around a handler (auth, rate
limits, idempotency, faults, ``Stripe-Version``, the request log). A handler takes the request's
`context.Ctx` and path parameters and returns (status, body) or raises ``StripeError``.
"""
