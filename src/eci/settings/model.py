"""The settings files as pydantic models: what a valid file is, and nothing else.

Both files are strict: a value of the wrong JSON type is an error (``"true"`` is not a
boolean, ``"docker:cli"`` is not a list), an unknown key is an error, and the admin file must
say which version of the format it is written in. The models are frozen, so a loaded
configuration can be handed around without anyone changing it behind the proxy's back.

Parsing bytes into these models, with errors that name the JSON path, is ``parse.py``'s job;
merging admin and user settings is ``effective.py``'s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from eci.dockerapi.imageref import InvalidReference, parse_pattern

__all__ = [
    "AdminSettings",
    "CommandList",
    "DockerSocketMount",
    "EnhancedContainerIsolation",
    "ImageList",
    "UserSettings",
]

#: The pydantic error type of every check written in this module; ``ctx["reason"]`` is the
#: finished, human sentence (``parse.py`` shows it as is).
ECI_ERROR_TYPE = "eci_invalid"

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)


def _invalid(reason: str) -> PydanticCustomError:
    return PydanticCustomError(ECI_ERROR_TYPE, "{reason}", {"reason": reason})


def _array_to_tuple(value: Any) -> Any:
    """Accept a JSON array (a Python list) where a tuple is declared.

    Strict mode only takes a tuple; the parsed JSON holds lists. Only ``list`` is converted, so
    a string still fails as "not a list" instead of being split into characters.
    """
    return tuple(value) if type(value) is list else value


def _check_image(value: str) -> str:
    if not value:
        raise _invalid("an image entry must not be empty")
    if any(ch.isspace() for ch in value):
        raise _invalid(f"an image entry must not contain whitespace, got {value!r}")
    try:
        parse_pattern(value)
    except InvalidReference as exc:
        reason = f"expected name[:tag], name:*, name@sha256:<digest> or *: {exc}"
        raise _invalid(reason) from None
    return value


def _check_command(value: str) -> str:
    if not value:
        raise _invalid("a command entry must not be empty")
    if any(ch.isspace() for ch in value):
        raise _invalid(
            f"a command entry is one Docker CLI command name such as 'push' or 'container*' "
            f"and must not contain whitespace, got {value!r}"
        )
    return value


def _check_version(value: Any) -> Any:
    # Literal[2] alone lets 2.0 through (2.0 == 2); the version must be the integer 2.
    if type(value) is float:
        raise _invalid(f"expected 2, got {value!r}")
    return value


_NON_EMPTY_NO_SPACE = {"type": "string", "minLength": 1, "pattern": "^\\S+$"}

Image = Annotated[
    str,
    AfterValidator(_check_image),
    WithJsonSchema(
        {
            **_NON_EMPTY_NO_SPACE,
            "description": "name[:tag] (tag defaults to latest), name:* (any tag), "
            "name@sha256:<digest>, or * (every image: dangerous)",
        }
    ),
]
Command = Annotated[
    str,
    AfterValidator(_check_command),
    WithJsonSchema(
        {
            **_NON_EMPTY_NO_SPACE,
            "description": "a Docker CLI command (push, build, ps, ...) or a group "
            "(container*, image*, volume*, network*, build*, system*)",
        }
    ),
]


class ImageList(BaseModel):
    """Images whose containers may mount the Docker socket."""

    model_config = _CONFIG

    images: Annotated[tuple[Image, ...], BeforeValidator(_array_to_tuple)] = Field(
        default=(),
        description="Images allowed to mount the Docker socket; empty means none.",
    )
    allowDerivedImages: bool = Field(
        default=True,
        description="Also allow local images built FROM an allowed image.",
    )


class CommandList(BaseModel):
    """Which Docker API commands a container holding the socket may use."""

    model_config = _CONFIG

    type: Literal["deny", "allow"] = Field(
        default="deny",
        description="deny: the listed commands are blocked; allow: only they are permitted.",
    )
    commands: Annotated[tuple[Command, ...], BeforeValidator(_array_to_tuple)] = Field(
        default=(),
        description="Docker CLI command names or groups.",
    )


class DockerSocketMount(BaseModel):
    """Who may mount the Docker socket into an isolated container, and what they may do."""

    model_config = _CONFIG

    imageList: ImageList = Field(default=ImageList())
    commandList: CommandList = Field(default=CommandList())


class EnhancedContainerIsolation(BaseModel):
    """The admin's ECI section."""

    model_config = _CONFIG

    value: bool = Field(description="Turn Enhanced Container Isolation on (true) or off.")
    locked: bool = Field(
        default=False,
        description="true: users cannot change value; false: value is only the default "
        "and the user's settings file decides.",
    )
    dockerSocketMount: DockerSocketMount = Field(default=DockerSocketMount())
    idRangesPerUser: int | None = Field(
        default=None,
        ge=1,
        description="The most user-id ranges (one per running container) one non-root "
        "user may hold, so nobody takes the whole pool; absent: an eighth of the "
        "pool (512 of the default 4096). Root's containers are not counted.",
    )
    containerOwnership: bool = Field(
        default=True,
        description="true: only the user who created a container (or root) may exec into, "
        "attach to, start, stop, copy from or into, commit, export, update, remove or share "
        "it, or mount or remove that user's volumes; false: every member of group docker "
        "may, as in plain Docker.",
    )


class AdminSettings(BaseModel):
    """The admin settings file (default /etc/eci/admin-settings.json)."""

    model_config = _CONFIG

    configurationFileVersion: Annotated[Literal[2], BeforeValidator(_check_version)] = Field(
        description="Format version of this file; must be 2."
    )
    enhancedContainerIsolation: EnhancedContainerIsolation | None = Field(
        default=None,
        description="Absent: the user's settings decide, and ECI is off by default.",
    )


class UserSettings(BaseModel):
    """A user's own settings file (default ~/.config/eci/settings.json)."""

    model_config = _CONFIG

    enhancedContainerIsolation: bool | None = Field(
        default=None,
        description="Turn ECI on or off, unless the admin settings lock it.",
    )
