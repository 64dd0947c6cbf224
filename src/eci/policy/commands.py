"""The admin's ``commandList``: which Docker commands a container granted the socket may use.

The proxy sees API requests, not CLI commands, so each entry stands for requests:

* a command (``push``, ``run``, ``ps``, ...) covers the requests that do that command's own
  work, as the Docker CLI makes them (``ROUTES_BY_COMMAND``): ``run`` is create, attach,
  start, wait and resize. Look-ups a command makes first of *other* objects (the container
  inspect before ``exec`` or ``logs``, the list and events of ``stats``) and optional extras
  (the pull of a missing image by ``run``/``create``, signal forwarding by ``run``/``attach``)
  belong to the commands named for them (``inspect``, ``ps``, ``events``, ``pull``, ``kill``):
  denying ``exec`` must not break ``docker inspect``; in allow mode list those too.
* a group ``<name>*`` covers every route of its API area (``GROUP_OF_FAMILY``):
  ``container*`` is /containers/... and /exec/..., ``image*`` /images/..., /commit and
  /distribution/..., ``build*`` /build..., /session and /grpc, ``system*`` /_ping, /events,
  /info, /version, /system/df and /auth.

Entries match case-insensitively (CLI command names are lower case; ``Push`` cannot mean
anything else); an entry that names no command or group matches nothing (``KNOWN_ENTRIES``
lists those that do). ``GET|HEAD /_ping`` always passes: every CLI call starts with it. A
request on no known route is refused in allow mode and left to the other rules in deny mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from eci.dockerapi.request import ApiRequest
from eci.dockerapi.routes import ROUTES
from eci.errors import PolicyDenied, command_blocked_message
from eci.settings.model import CommandList

__all__ = [
    "COMMANDS_BY_ROUTE",
    "GROUP_OF_FAMILY",
    "KNOWN_ENTRIES",
    "ROUTES_BY_COMMAND",
    "check_command",
    "covers",
    "group_of",
]

PING = "system.ping"

#: The group of each route family (a route name's first part), named as the CLI management
#: command for that API area: ``exec.start`` is in ``container*``.
GROUP_OF_FAMILY: Mapping[str, str] = {
    "system": "system",
    "container": "container",
    "exec": "container",
    "image": "image",
    "distribution": "image",
    "build": "build",
    "session": "build",
    "network": "network",
    "volume": "volume",
    "plugin": "plugin",
    "swarm": "swarm",
    "service": "service",
    "task": "service",
    "node": "node",
    "secret": "secret",
    "config": "config",
}

#: ``docker inspect`` tries each kind of object in turn (cli/command/system/inspect.go).
_INSPECTS = tuple(
    f"{kind}.inspect"
    for kind in (
        "container",
        "image",
        "network",
        "node",
        "service",
        "task",
        "volume",
        "plugin",
        "secret",
        "config",
    )
)

#: The requests of each top-level CLI command (checked against docker/cli: cli/command/...).
ROUTES_BY_COMMAND: Mapping[str, tuple[str, ...]] = {
    # containers
    "attach": ("container.attach", "container.attach_ws", "container.wait", "container.resize"),
    "commit": ("image.commit",),
    "cp": (
        "container.archive_head",
        "container.archive_get",
        "container.archive_put",
        "container.copy",
    ),
    "create": ("container.create",),
    "diff": ("container.changes",),
    "exec": ("container.exec_create", "exec.start", "exec.resize", "exec.inspect"),
    "export": ("container.export",),
    "kill": ("container.kill",),
    "logs": ("container.logs",),
    "pause": ("container.pause",),
    "port": ("container.inspect",),
    "ps": ("container.list",),
    "rename": ("container.rename",),
    "restart": ("container.restart",),
    "rm": ("container.delete",),
    "run": (
        "container.create",
        "container.attach",
        "container.start",
        "container.wait",
        "container.resize",
    ),
    "start": ("container.start", "container.attach", "container.wait", "container.resize"),
    "stats": ("container.stats",),
    "stop": ("container.stop",),
    "top": ("container.top",),
    "unpause": ("container.unpause",),
    "update": ("container.update",),
    "wait": ("container.wait",),
    # images and builds
    "build": ("build.build", "build.cancel", "session.session", "session.grpc"),
    "history": ("image.history",),
    "images": ("image.list",),
    "import": ("image.create",),
    "load": ("image.load",),
    "pull": ("image.create",),
    "push": ("image.push",),
    "rmi": ("image.delete",),
    "save": ("image.get_all", "image.get"),
    "search": ("image.search",),
    "tag": ("image.tag",),
    # system
    "events": ("system.events",),
    "info": ("system.info",),
    "inspect": _INSPECTS,
    "login": ("system.auth",),
    "version": ("system.version",),
}


def _commands_by_route() -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {route.name: set() for route in ROUTES}
    for command, routes in ROUTES_BY_COMMAND.items():
        for name in routes:
            found[name].add(command)  # a misspelt route fails here, at import
    return {name: frozenset(commands) for name, commands in found.items()}


#: The commands that issue each route (the inverse of ``ROUTES_BY_COMMAND``).
COMMANDS_BY_ROUTE: Mapping[str, frozenset[str]] = _commands_by_route()

#: Every entry that covers some route; the others match nothing.
KNOWN_ENTRIES: frozenset[str] = frozenset(ROUTES_BY_COMMAND) | frozenset(
    f"{group}*" for group in GROUP_OF_FAMILY.values()
)


def group_of(route_name: str) -> str | None:
    return GROUP_OF_FAMILY.get(route_name.partition(".")[0])


def covers(entry: str, route_name: str) -> bool:
    """Entry ``entry`` of a command list stands for route ``route_name``."""
    name = entry.lower()
    if name.endswith("*"):
        return name[:-1] == group_of(route_name)
    return name in COMMANDS_BY_ROUTE.get(route_name, frozenset())


def _listed(route_name: str | None, entries: Iterable[str]) -> bool:
    return route_name is not None and any(covers(e, route_name) for e in entries)


def check_command(request: ApiRequest, sent_target: str, commands: CommandList) -> None:
    """Raise ``PolicyDenied`` if ``commands`` blocks ``request``; ``sent_target`` is the
    target as the client sent it, which the message quotes."""
    if request.route_name == PING:
        return
    listed = _listed(request.route_name, commands.commands)
    if listed if commands.type == "deny" else not listed:
        raise PolicyDenied("docker-socket-command", command_blocked_message(sent_target))
