"""`python -m krm_functions`: the dispatcher (and the image's entrypoint)."""

import sys

from .cli import main

sys.exit(main())
