"""The method: the penalty, the priors, the members, the ensemble and its training, the scores.

The lowest floor: it imports nothing else of the package. ``checks`` and
``choices`` (argument checks, allowed values) live here because the method's
own modules use them; ``acquisition``, ``checks`` and ``choices`` need only
numpy, so importing them starts no Keras backend.
"""
