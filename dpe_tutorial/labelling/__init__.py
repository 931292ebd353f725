"""Labelling your own images: the query that suggests what to label next, and the merge back.

``query`` trains an ensemble on the labelled images and ranks the pool;
``query_pool`` and ``query_labels`` read the pool and the labels;
``merge_labels`` adds a filled-in suggestions file to the labels;
``contact_sheet`` draws the suggestions; ``simulated_loop`` runs the loop with a
simulated labeller on MNIST folders and ``loop_study`` compares its picks
over seeds. The command line (:mod:`dpe_tutorial.cli`)
sits on top.
"""
