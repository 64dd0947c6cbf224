"""Entry point run as `python3 -I -S …/eci/runtime/shim.py ARGS` by the eci-runtime dispatcher.

-I -S keeps interpreter start-up to a few milliseconds (no site, no environment); the package
root is put on sys.path by hand, so only eci's stdlib-only runtime modules are importable.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))

from eci.runtime.main import main

sys.exit(main(sys.argv[1:]))
