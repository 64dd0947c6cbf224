"""runtime room."""

import os

#: the runtime's Python entry point (`python3 -I -S SHIM …`): the shim, its server, extraction
SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
#: the interpreter the runtime's Python runs on: the system's, stdlib only (no venv)
PYTHON = "/usr/bin/python3"
