"""``mlwarden probe``: a bounded, polite pen-test of a live Open Inference Protocol v2 endpoint.

One module per family of weaknesses (transport, access, quotas, inputs, disclosure,
latency), each a function over one :class:`~.session.ProbeSession` that owns the request
budget, the rate and the deadline; :mod:`.runner` runs them in order and turns what they
found into the ``endpoint.*`` check results of a report. Nothing here loads a model.
"""
