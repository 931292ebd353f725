"""The studies behind the book's findings, and their statistics.

Each study module says which configs it runs and how it reads them
(``objective_study``, ``active_learning_study``, ``mnist_study``,
``posterior_study``); ``objective_followups`` (confirmatory trials, longer
training), ``two_by_two`` (the active-learning study's ensemble x acquisition)
and ``mnist_diagnostics`` (retrained labelled sets) read the registered
additions; ``intervals``, ``paired``, ``class_tilt`` and ``markdown`` are the
statistics and tables they report with. Built on the floors below:
:mod:`dpe_tutorial.method`, :mod:`dpe_tutorial.running`, :mod:`dpe_tutorial.figures`.
"""
