"""runtime room: the programs dockerd and eci run for containers (see docs/development.md).

`linux/` wraps the kernel, `shim/` rewrites and runs containers (the `sysbox-runc` shim and its
server), `confine/` keeps a running container inside its walls (mount supervisor, seccomp,
sysinfo), `cp/` unpacks `docker cp` archives inside a container. Each runs as
`python3 -I -S entry.py …` on the system's interpreter, stdlib only.
"""

import os

#: the runtime's Python entry point (`python3 -I -S ENTRY …`): the shim, its server, extraction
ENTRY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "entry.py")
#: the interpreter the runtime's Python runs on: the system's, stdlib only (no venv)
PYTHON = "/usr/bin/python3"
