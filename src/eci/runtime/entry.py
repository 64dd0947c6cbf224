"""Entry point run as `python3 -I -S …/eci/runtime/entry.py ARGS` by the eci-runtime dispatcher.

-I -S keeps interpreter start-up to a few milliseconds (no site, no environment); the package
root is put on sys.path by hand, so only eci's stdlib-only runtime modules are importable.

    entry.py RUNC-ARGS…                 create/run/delete, whole (no runtime server)
    entry.py --eci-cleanup RUNC-ARGS…   only the cleanup after runc's delete or a failed create
    entry.py --eci-serve STATE-DIR      the runtime server (started by `eci up`)
    entry.py --eci-supervise STATE-DIR  the mount supervisor (started by `eci up`)
    entry.py --eci-extract PID ID PATH COPY-UIDGID NO-OVERWRITE   `docker cp` into a running
                                       container, inside it (run by the proxy; tar on stdin)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))

from eci.runtime.shim.lifecycle import Resources, main

args = sys.argv[1:]
if args[:1] == ["--eci-serve"] and len(args) == 2:
    from eci.runtime.shim.server import serve

    sys.exit(serve(args[1]))
if args[:1] == ["--eci-supervise"] and len(args) == 2:
    from eci.runtime.confine.supervisor import serve as supervise

    sys.exit(supervise(args[1]))
if args[:1] == ["--eci-extract"]:
    from eci.runtime.cp.archive import main as extract

    sys.exit(extract(args[1:]))
# a fresh interpreter: no user namespaces made ahead, errors only where runc logs
if args[:1] == ["--eci-cleanup"]:
    sys.exit(main(args[1:], Resources(), half="cleanup"))
sys.exit(main(args, Resources()))
