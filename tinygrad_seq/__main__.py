"""`python -m tinygrad_seq ...`: the same command line as `tinygrad-seq ...`."""
import sys

from .cli import main

sys.exit(main())
