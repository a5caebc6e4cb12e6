"""annotator: paint one mask, get that class proposed on every image of a folder."""

__version__ = "0.1.0"
