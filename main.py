"""Launches the annotator desktop app: `python main.py [FOLDER]`."""

import sys

from annotator.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
