"""The host devices a container may have: pseudo-devices, pty slaves, FUSE and TUN, all of
which work inside a user namespace.

The proxy refuses any other ``--device`` by path; the runtime shim keeps only these in the
spec by number (a path can lie: ``--device /dev/vda:/dev/null``), whatever the proxy let
through (``--privileged`` hands over the host's whole /dev). Stdlib-free: the runtime
imports it.
"""

#: device path -> (type, major, minor)
ALLOWED_DEVICES = {
    "/dev/null": ("c", 1, 3),
    "/dev/zero": ("c", 1, 5),
    "/dev/full": ("c", 1, 7),
    "/dev/random": ("c", 1, 8),
    "/dev/urandom": ("c", 1, 9),
    "/dev/tty": ("c", 5, 0),
    "/dev/console": ("c", 5, 1),
    "/dev/ptmx": ("c", 5, 2),
    "/dev/fuse": ("c", 10, 229),
    "/dev/net/tun": ("c", 10, 200),
}
#: the pty slaves (/dev/pts/N): any minor; not a path one can ask for with ``--device``
PTY_SLAVES = ("c", 136, None)

#: what ``--device`` may name
ALLOWED_DEVICE_PATHS = frozenset(ALLOWED_DEVICES)
#: (type, major, minor) of every allowed device; minor None: any minor
ALLOWED_DEVICE_NUMBERS = frozenset({*ALLOWED_DEVICES.values(), PTY_SLAVES})
