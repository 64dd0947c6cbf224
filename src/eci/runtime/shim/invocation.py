"""The runc command line as dockerd/containerd give it to the shim (pure parsing).

    eci-runtime [--eci-state DIR] [runc global flags] COMMAND [flags] [CONTAINER-ID]

`--eci-state` names the engine (the dispatcher adds it for the Python half);
it is stripped before runc sees the arguments.
"""

from __future__ import annotations

#: runc global flags that take a value (Go flag parsing: `-root` and `--root` are the same).
GLOBAL_WITH_VALUE = frozenset({"--root", "--log", "--log-format", "--criu", "--rootless"})
#: Flags of create/run/delete that take a value, and the boolean ones, in their long spelling.
COMMAND_WITH_VALUE = frozenset(
    {"--bundle", "--pid-file", "--console-socket", "--pidfd-socket", "--preserve-fds"}
)
COMMAND_BOOLEAN = frozenset(
    {"--no-pivot", "--no-new-keyring", "--force", "--detach", "--keep", "--no-subreaper"}
)
ALIASES = {"-b": "--bundle", "-f": "--force", "-d": "--detach"}
DEFAULT_RUNC_ROOT = "/run/runc"
#: the longest container id eci accepts
MAX_CONTAINER_ID = 1024


def valid_container_id(text: str) -> bool:
    """Whether `text` may be a container id. It names directories that eci (the shim, the
    mount supervisor) and runc create and later remove, so it must name one entry, never a
    path: ASCII letters and digits first, then those or '_', '.', '-' (a subset of what runc
    accepts), and no '..' anywhere (so neither '.' nor '..', nor an empty id or a '/')."""
    return (
        0 < len(text) <= MAX_CONTAINER_ID
        and text.isascii()
        and text[0].isalnum()
        and all(c.isalnum() or c in "_.-" for c in text)
        and ".." not in text
    )


class InvocationError(ValueError):
    """A runc command line the shim will not guess about (an unknown flag of create/run)."""


class Invocation:
    """A parsed command line; `backend_argv` is what runc gets (everything but --eci-state)."""

    __slots__ = ("backend_argv", "command", "container_id", "eci_state", "globals", "options")

    def __init__(
        self,
        backend_argv: tuple[str, ...],
        eci_state: str | None,
        command: str,
        globals: dict[str, str],
        options: dict[str, str],
        container_id: str | None,
    ) -> None:
        self.backend_argv = backend_argv
        self.eci_state = eci_state
        self.command = command
        self.globals = globals
        self.options = options
        self.container_id = container_id

    @property
    def root(self) -> str:
        return self.globals.get("--root", DEFAULT_RUNC_ROOT)

    @property
    def log(self) -> str | None:
        return self.globals.get("--log")

    @property
    def bundle(self) -> str:
        return self.options.get("--bundle") or "."


def _flag(arg: str) -> tuple[str, str | None]:
    """('--name', value-or-None) for -name, --name, -name=v, --name=v (and -b style aliases)."""
    name, sep, value = arg.partition("=")
    if not name.startswith("--") and len(name) > 2:
        name = "-" + name  # Go accepts -root for --root
    name = ALIASES.get(name, name)
    return name, (value if sep else None)


def parse(argv: list[str]) -> Invocation:
    backend: list[str] = []
    eci_state: str | None = None
    globals_: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, value = _flag(arg)
        if name == "--eci-state":
            if value is None:
                i += 1
                value = argv[i] if i < len(argv) else ""
            eci_state = value
            i += 1
            continue
        backend.append(arg)
        if name in GLOBAL_WITH_VALUE and value is None and i + 1 < len(argv):
            i += 1
            value = argv[i]
            backend.append(value)
        globals_[name] = value if value is not None else ""  # the last one wins, as in runc
        i += 1
    rest = argv[i:]
    backend.extend(rest)
    command = rest[0] if rest else ""
    options: dict[str, str] = {}
    positional: list[str] = []
    j = 1
    while j < len(rest):
        arg = rest[j]
        if arg == "--":
            positional.extend(rest[j + 1 :])
            break
        if arg.startswith("-") and len(arg) > 1:
            name, value = _flag(arg)
            if name in COMMAND_WITH_VALUE and value is None and j + 1 < len(rest):
                j += 1
                value = rest[j]
            elif (
                name not in COMMAND_WITH_VALUE
                and name not in COMMAND_BOOLEAN
                and command in ("create", "run")
            ):
                raise InvocationError(f"eci runtime: unknown {command} flag {arg!r}")
            options[name] = value if value is not None else ""
        else:
            positional.append(arg)
        j += 1
    return Invocation(
        tuple(backend),
        eci_state,
        command,
        globals_,
        options,
        positional[-1] if positional else None,
    )
