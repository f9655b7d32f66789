#!/usr/bin/env python
"""The example project's command line; works from any directory, e.g. the repo root."""

import os
import sys
from pathlib import Path


def main() -> None:
    # Python puts this file's directory on sys.path; make it explicit so that the
    # project imports the same way however the script is started.
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
