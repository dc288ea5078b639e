"""The single-file binary's entry point (scripts/build-binary): the dockerlink command."""

import sys

from dockerlink.cli import main

sys.exit(main())
