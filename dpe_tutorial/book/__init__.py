"""The book's helpers: what the chapters compute and draw, so that the notebooks narrate.

Each module serves one or two chapters (its docstring says which). Built on
the floors below; nothing in the package imports from here.
"""
