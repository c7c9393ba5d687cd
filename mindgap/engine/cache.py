"""Objects built once per model (its flat graph, EB plans, compiled functions), in one place; dropped with the model."""

import weakref

_CACHES = weakref.WeakKeyDictionary()


def per_model(model, key, make):
    """``make()`` the first time for (``model``, ``key``), the same object afterwards."""
    cache = _CACHES.setdefault(model, {})
    if key not in cache:
        cache[key] = make()
    return cache[key]
