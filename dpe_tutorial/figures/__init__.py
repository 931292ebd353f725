"""Figures and tables of runs, read from results folders: what the book shows and ``plot`` saves.

Built on :mod:`dpe_tutorial.running` (results folders) and the palette here;
matplotlib, pandas and numpy only, no Keras.
"""
