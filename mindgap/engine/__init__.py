"""The evidence engine below its users: a Keras graph run layer by layer (graph.py), Excitation Backprop's
rules and marginal winning probabilities (excitation.py), the compiled forward pass (forward.py) and the
per-model cache (cache.py).  ``mindgap.saliency``, ``mindgap.dropout`` and ``mindgap.guided_zoom`` import it;
it imports only keras, tensorflow and mindgap's layers."""
