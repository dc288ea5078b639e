"""What the domain (hosting, git) refuses or fails at, in its own words.

The domain knows nothing of HTTP: it raises these, and the one table in :mod:`dockerlink.errors`
gives each its answer, next to the engine's errors::

    DomainError
    ├── InvalidRequest      a valid-looking request the engine or settings rule out (400)
    ├── NoSuchContainer     (404)
    ├── NoSuchImage         (404)
    ├── NotManaged          not created by dockerlink, or by a version too old (412)
    ├── WrongState          the power action does not apply in this state (406)
    │   ├── AlreadyRunning
    │   ├── AlreadyStopped
    │   └── NotRunning
    ├── MustBeStopped       deleting a running container (412)
    ├── NotRunningForExec   git in a stopped container (409)
    ├── InUse               a name or a block of host ports taken by another container (409)
    ├── GitFailed           a git command exited non-zero; its output (412)
    ├── GitBusy             another git command held the repository for all of git_timeout (409)
    └── ActionFailed        the engine could not carry the action out (500)
"""

from __future__ import annotations

__all__ = [
    "ActionFailed",
    "AlreadyRunning",
    "AlreadyStopped",
    "DomainError",
    "GitBusy",
    "GitFailed",
    "InUse",
    "InvalidRequest",
    "MustBeStopped",
    "NoSuchContainer",
    "NoSuchImage",
    "NotManaged",
    "NotRunning",
    "NotRunningForExec",
    "WrongState",
    "dropped_note",
]


class DomainError(Exception):
    """A refusal or failure of the domain, with a one-line ``message`` for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    pass


class NoSuchContainer(DomainError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no such container: {ref}")


class NoSuchImage(DomainError):
    def __init__(self, image: str) -> None:
        super().__init__(f"no such image: {image}")


class NotManaged(DomainError):
    def __init__(self, *, too_old: bool = False) -> None:
        message = "this docker has not been created with dockerlink"
        super().__init__(message + (" or is too old" if too_old else ""))


class WrongState(DomainError):
    pass


class AlreadyRunning(WrongState):
    def __init__(self) -> None:
        super().__init__("Already running")


class AlreadyStopped(WrongState):
    def __init__(self) -> None:
        super().__init__("Already stopped")


class NotRunning(WrongState):
    def __init__(self) -> None:
        super().__init__("Not running")


class MustBeStopped(DomainError):
    def __init__(self) -> None:
        super().__init__("docker needs to be stopped before deleting it")


class NotRunningForExec(DomainError):
    def __init__(self) -> None:
        super().__init__("container is not running")


class InUse(DomainError):
    pass


class GitFailed(DomainError):
    pass


class GitBusy(DomainError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"another git command in this container held its repository for {timeout_s:g} s "
            "(git_timeout); try again"
        )


class ActionFailed(DomainError):
    pass


def dropped_note(dropped: int) -> str:
    """How an answer says that output past ``git_output_limit`` was read and dropped."""
    return f"[{dropped} more bytes of output dropped (git_output_limit)]"
