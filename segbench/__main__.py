"""``python -m segbench``: the ``segbench`` command, e.g. under ``torchrun --nproc_per_node 2 -m segbench run R``."""
import sys

from segbench.cli import main

sys.exit(main())
