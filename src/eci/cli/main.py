"""`eci`: the admin's face of eci.

Every command works on one engine, chosen by --state-dir (or ECI_STATE_DIR; default /var/lib/eci).
Errors eci raises on purpose (EciError) are printed as one clear message with exit code 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from eci.engine.layout import EngineLayout
from eci.engine.report import StatusReport
from eci.engine.state import EngineState
from eci.errors import EciError

app = typer.Typer(
    help="Enhanced Container Isolation for Docker Engine on Linux.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
settings_app = typer.Typer(help="Show effective settings and their schema.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", envvar="ECI_STATE_DIR", help="Engine state dir (default /var/lib/eci)."
    ),
]
AdminFile = Annotated[
    Path | None,
    typer.Option(
        "--admin-settings",
        help="admin-settings.json [$ECI_ADMIN_SETTINGS or /etc/eci/admin-settings.json].",
    ),
]
UserFile = Annotated[
    Path | None,
    typer.Option(
        "--user-settings", help="User settings [$ECI_USER_SETTINGS or ~/.config/eci/settings.json]."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
WithRegistry = Annotated[
    bool | None,
    typer.Option(
        "--registry/--no-registry",
        help="Run a loopback registry as dockerd's docker.io mirror (a stand-in for Docker Hub "
        "without internet; `eci images` fills it). Default: what the engine had, else none.",
    ),
]


def _fail(exc: EciError) -> typer.Exit:
    err.print(f"[bold red]eci:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _running_engine(state_dir: Path | None) -> tuple[EngineLayout, EngineState]:
    """The engine's layout and state, or exit 1 saying how to start it."""
    from eci.engine import engine

    layout = EngineLayout.for_state_dir(state_dir)
    state = engine.running_state(layout)
    if state is None:
        raise _fail(EciError("the eci engine is not running; run `eci up` first"))
    return layout, state


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


@app.command()
def up(
    state_dir: StateDir = None,
    admin_settings: AdminFile = None,
    user_settings: UserFile = None,
    registry: WithRegistry = None,
) -> None:
    """Start the embedded engine (idempotent). Settings are validated before anything starts."""
    from eci.engine import engine
    from eci.host.settings_files import load_effective_settings

    layout = EngineLayout.for_state_dir(state_dir)
    try:
        settings = load_effective_settings(admin_settings, user_settings)
        state, what = engine.up(layout, settings, registry)
    except EciError as exc:
        raise _fail(exc) from None
    for warning in settings.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    eci = "on" if state.eci_enabled else "OFF"
    out.print(f"eci engine {what}: ECI {eci} ({settings.eci_source.describe()})", highlight=False)
    if state.registry_address:
        out.print(f"  registry (docker.io mirror): {state.registry_address}", highlight=False)
    out.print(f"  export DOCKER_HOST=unix://{layout.user_socket}", highlight=False)


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop what `eci up` started (by pid); leave no process, mount or interface behind."""
    from eci.engine import engine

    report = engine.down(EngineLayout.for_state_dir(state_dir))
    stopped = ", ".join(report.stopped) or "nothing was running"
    out.print(f"eci engine down: stopped {stopped}", highlight=False)
    if report.killed_container_processes:
        out.print(f"  killed {report.killed_container_processes} orphaned container process(es)")
    if report.stray_shims:
        out.print(f"  stopped {report.stray_shims} leftover containerd shim(s)")
    if report.released_ranges:
        out.print(f"  released {report.released_ranges} id range(s) of dead containers")
    if report.detached_mounts:
        out.print(f"  detached {len(report.detached_mounts)} leftover mount(s)")


@app.command()
def status(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Report pids, sockets and the settings source of the engine."""
    from eci.engine import engine

    report = engine.status(EngineLayout.for_state_dir(state_dir))
    if as_json:
        _print_json(report.to_json())
    else:
        _print_status(report)
    if not report.running:
        raise typer.Exit(3)


def _print_status(report: StatusReport) -> None:
    """One line per process and socket, names in one column as wide as the longest."""
    out.print(
        f"eci engine: {'running' if report.running else 'not running'} (state {report.state_dir})",
        highlight=False,
    )
    width = max(map(len, [*report.processes, *report.sockets, "registry"]))
    for name, proc in report.processes.items():
        alive = "running" if proc.alive else "DEAD"
        out.print(f"  {name:<{width}} pid {proc.pid:<8} {alive}", highlight=False)
    for name, path in report.sockets.items():
        out.print(f"  socket {name:<{width}} {path}", highlight=False)
    recorded = report.recorded
    if recorded is None:
        return
    if recorded.registry:
        mirror = f"{recorded.registry} (docker.io mirror, read-only)"
        out.print(f"  {'registry':<{width}} {mirror}", highlight=False)
    out.print(
        f"  ECI {'on' if recorded.eci_applied else 'OFF'} (source: {recorded.eci_source})",
        highlight=False,
    )


@app.command("audit-log")
def audit_log(
    state_dir: StateDir = None,
    as_json: AsJson = False,
    last: Annotated[int, typer.Option("--last", "-n", help="Show only the last N refusals.")] = 0,
) -> None:
    """Show the requests the proxy refused and the Docker sockets it granted (time, peer
    uid/pid, route, rule, reason)."""
    path = EngineLayout.for_state_dir(state_dir).audit_log
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        raise _fail(EciError(f"cannot read the audit log {path}: {exc}")) from exc
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"time": "?", "reason": f"unreadable line {number} of {path}"})
    records = records[-last:] if last > 0 else records
    if as_json:
        _print_json(records)
        return
    if not records:
        out.print(f"no refusals recorded in {path}", highlight=False)
        return
    for r in records:  # one line per refusal: readable in any terminal, and greppable
        out.print(
            f"{r.get('time', '?')} uid={r.get('uid', '?')} pid={r.get('pid', '?')} "
            f"{r.get('method', '')} {r.get('route', '')} [{r.get('rule', '')}] "
            f"{r.get('reason', '')}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command()
def env(state_dir: StateDir = None) -> None:
    """Print the shell line that points the Docker CLI at eci: eval "$(eci env)"."""
    layout = EngineLayout.for_state_dir(state_dir)
    sys.stdout.write(f"export DOCKER_HOST=unix://{layout.user_socket}\n")


@app.command()
def images(state_dir: StateDir = None) -> None:
    """Build the local test images (busybox, docker:cli, a Ryuk stand-in) into the engine's
    registry and pull them from it (real registry digests). Needs `eci up --registry`."""
    import docker

    from eci.images.builder import build
    from eci.images.catalog import TEST_IMAGES
    from eci.images.registry import Registry

    layout, state = _running_engine(state_dir)
    if not state.registry_address:
        raise _fail(
            EciError(
                "the engine runs no registry, and `eci images` puts the test images there; "
                "start it with one: `eci down`, then `eci up --registry`"
            )
        )
    writer = Registry.unix(layout.registry_writer_socket)
    client = docker.DockerClient(base_url=f"unix://{layout.raw_socket}")
    try:
        for recipe in TEST_IMAGES:
            what = build(client, recipe, writer)
            digests = client.api.inspect_image(recipe.name)["RepoDigests"]
            out.print(f"{recipe.name:<26} {what:<11} {' '.join(digests)}", highlight=False)
    except EciError as exc:
        raise _fail(exc) from None
    finally:
        client.close()


@app.command()
def verify(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Run the verification table against the engine; exit 1 if a built check fails."""
    import docker

    from eci.verify.checks import Status, Target, run_table

    layout, state = _running_engine(state_dir)
    client = docker.DockerClient(base_url=f"unix://{layout.user_socket}")
    try:
        results = run_table(Target(client, layout, state.eci_enabled))
    finally:
        client.close()
    failed = [r for r in results if r.status is Status.FAIL]
    if as_json:
        _print_json(
            [
                {
                    "check": r.check.name,
                    "capability": r.check.feature,
                    "expected": r.check.with_eci if state.eci_enabled else r.check.without,
                    "status": r.status.value,
                    "observed": r.observed,
                }
                for r in results
            ]
        )
    else:
        mode = "ECI on" if state.eci_enabled else "ECI OFF (expecting the 'without' column)"
        table = Table(title=f"eci verify — {mode}", title_justify="left")
        for column in ("check", "with eci", "without", "observed", "result"):
            table.add_column(column, overflow="fold")
        style = {Status.PASS: "green", Status.FAIL: "bold red", Status.NOT_YET: "dim"}
        for r in results:
            table.add_row(
                r.check.name,
                r.check.with_eci,
                r.check.without,
                r.observed,
                f"[{style[r.status]}]{r.status.value}[/]",
            )
        Console(width=max(out.width, 140)).print(table)
        counts = {s: sum(r.status is s for r in results) for s in Status}
        out.print(
            f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
            f"{counts[Status.NOT_YET]} not yet built",
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


@settings_app.command("show")
def settings_show(
    admin_settings: AdminFile = None,
    user_settings: UserFile = None,
    state_dir: StateDir = None,
    as_json: AsJson = False,
) -> None:
    """Effective settings and where each comes from (as `eci up` would apply them now)."""
    from eci.engine.state import load_state
    from eci.host.settings_files import load_effective_settings

    try:
        settings = load_effective_settings(admin_settings, user_settings)
    except EciError as exc:
        raise _fail(exc) from None
    data = settings.to_json()
    try:
        running = load_state(EngineLayout.for_state_dir(state_dir).state_file)
    except PermissionError:  # root's and group docker's (docs/engine.md): nothing to compare
        running = None
    stale = running is not None and running.settings != data
    if as_json:
        _print_json({**data, "differsFromRunningEngine": stale})
        return
    eci = "on" if settings.eci_enabled else "OFF"
    out.print(f"Enhanced Container Isolation: {eci}", highlight=False)
    out.print(f"  source: {settings.eci_source.describe()}", highlight=False)
    out.print(f"  admin settings: {settings.admin_file or '(none)'}", highlight=False)
    out.print(f"  user settings:  {settings.user_file or '(none)'}", highlight=False)
    mount = settings.docker_socket_mount
    images = ", ".join(mount.imageList.images) or "(none)"
    out.print(
        f"  docker socket mount images: {images} "
        f"(derived images {'allowed' if mount.imageList.allowDerivedImages else 'refused'})",
        highlight=False,
    )
    commands = ", ".join(mount.commandList.commands) or "(none)"
    out.print(f"  docker socket commands: {mount.commandList.type} {commands}", highlight=False)
    ownership = (
        "on (only a container's creator or root may act on it)"
        if settings.container_ownership
        else "OFF (every docker-group user may act on every container)"
    )
    out.print(f"  container ownership: {ownership}", highlight=False)
    for warning in settings.warnings:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if stale:
        out.print(
            "[yellow]note:[/] the running engine applied different settings; "
            "run `eci up` to apply these",
            highlight=False,
        )


@settings_app.command("schema")
def settings_schema(user: Annotated[bool, typer.Option("--user")] = False) -> None:
    """Print the JSON Schema of admin-settings.json (or of the user settings file)."""
    from eci.settings.schema import admin_settings_schema, user_settings_schema

    _print_json(user_settings_schema() if user else admin_settings_schema())
