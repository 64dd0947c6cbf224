"""The runc command line as dockerd/containerd give it to the shim (pure parsing).

    eci-runtime [--eci-state DIR] [runc global flags] COMMAND [flags] [CONTAINER-ID]

`--eci-state` comes from the runtime's `runtimeArgs` in daemon.json and names the engine;
it is stripped before runc sees the arguments.
"""

from __future__ import annotations

#: runc global flags that take a value (as separate argument when not written `--flag=value`).
GLOBAL_WITH_VALUE = frozenset({"--root", "--log", "--log-format", "--criu", "--rootless"})
#: Flags of create/run/delete that take a value.
COMMAND_WITH_VALUE = frozenset(
    {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds", "--criu"}
)
DEFAULT_RUNC_ROOT = "/run/runc"


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
        return self.options.get("--bundle") or self.options.get("-b") or "."


def _split(arg: str) -> tuple[str, str | None]:
    if arg.startswith("--") and "=" in arg:
        name, value = arg.split("=", 1)
        return name, value
    return arg, None


def parse(argv: list[str]) -> Invocation:
    backend: list[str] = []
    eci_state: str | None = None
    globals_: dict[str, str] = {}
    i = 0
    while i < len(argv):
        name, value = _split(argv[i])
        if name == "--eci-state":
            if value is None:
                i += 1
                value = argv[i] if i < len(argv) else ""
            eci_state = value
            i += 1
            continue
        if not name.startswith("-"):
            break
        backend.append(argv[i])
        if name in GLOBAL_WITH_VALUE and value is None and i + 1 < len(argv):
            i += 1
            value = argv[i]
            backend.append(value)
        globals_[name] = value if value is not None else ""
        i += 1
    rest = argv[i:]
    backend.extend(rest)
    command = rest[0] if rest else ""
    options: dict[str, str] = {}
    positional: list[str] = []
    j = 1
    while j < len(rest):
        name, value = _split(rest[j])
        if name.startswith("-") and len(name) > 1:
            if name in COMMAND_WITH_VALUE and value is None and j + 1 < len(rest):
                j += 1
                value = rest[j]
            options[name] = value if value is not None else ""
        else:
            positional.append(rest[j])
        j += 1
    return Invocation(
        tuple(backend),
        eci_state,
        command,
        globals_,
        options,
        positional[-1] if positional else None,
    )
