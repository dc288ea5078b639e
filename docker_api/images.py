"""Image operations: ``docker.images.<op>(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._util import as_dict, path_segment

if TYPE_CHECKING:
    from .client import DockerClient

__all__ = ["Images"]


class Images:
    def __init__(self, client: DockerClient) -> None:
        self._client = client

    async def inspect(self, reference: str, *, timeout: float | None = None) -> dict[str, Any]:
        """``GET /images/{name}/json``; raises NotFound for an image the engine does not have."""
        # Image references contain "/" and ":", which the engine's router accepts in the path.
        if not reference or reference.startswith("/"):
            raise ValueError(f"invalid image reference {reference!r}")
        quoted = "/".join(path_segment(part) for part in reference.split("/"))
        return as_dict(await self._client.get_json(f"/images/{quoted}/json", timeout=timeout))
