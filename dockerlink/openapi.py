"""The OpenAPI 3 description of every route, served at ``/openapi.json``.

Written by hand from the API contract; a test checks that it names exactly the registered routes.
"""

from __future__ import annotations

from typing import Any

from . import __version__

__all__ = ["openapi_document"]

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _TEXT}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_COMMON_ERRORS = {
    "400": _error("a parameter or the body is invalid; the message names it"),
    "401": _error("missing or wrong bearer token"),
    "403": _error(
        "no token is set and the request is a browser's for another site (Host, Origin or "
        "Sec-Fetch-Site); see allowed_hosts and cors_origins"
    ),
    "503": _error("the Docker engine is unreachable or timed out"),
}
_CONTAINER_ERRORS = {
    **_COMMON_ERRORS,
    "404": _error("no such container"),
    "412": _error("the container was not created by dockerlink"),
}
_NO_CONTENT = {"204": {"description": "done"}}


def _query(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_ID = _query(
    "id",
    {"type": "string", "pattern": "^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$", "maxLength": 128},
    "full id, unique id prefix, or name",
    required=True,
)
_GRACE = _query(
    "t",
    {"type": "integer", "minimum": 0, "maximum": 300},
    "seconds before the engine kills (default: stop_timeout)",
)
_GIT_PATH = _query(
    "path",
    {"type": "string", "pattern": "^/", "maxLength": 4096},
    "absolute path of the repository (default: the container's working directory)",
)

_LIMITS = {
    "memory": {"type": "number", "exclusiveMinimum": 0, "description": "GiB (at least 6 MiB)"},
    "cpulimit": {"type": "number", "exclusiveMinimum": 0, "description": "CPUs"},
}
_RESTART = {
    "type": "string",
    "enum": ["no", "on-failure", "unless-stopped"],
    "description": "the engine's restart policy (on-failure: at most restart_max_retries)",
}
_CONTAINER = {
    "type": "object",
    "required": ["name", "dockerlink", "host_port_root", "ports", "state"],
    "properties": {
        "name": {"type": "string"},
        "dockerlink": {"type": "string"},
        "host_port_root": {"type": ["integer", "null"]},
        "ports": {"type": "object", "additionalProperties": {"type": "object"}},
        "state": {"type": "string"},
        "started_at": {"type": ["integer", "null"]},
        "exit_code": {"type": "integer"},
        "memory": {"type": "number"},
        "cpulimit": {"type": "number"},
        "restart": {"type": "string"},
        "restart_count": {"type": "integer", "minimum": 0},
    },
}
_SAMPLE = {
    "type": "object",
    "properties": {
        "memory": {
            "type": "object",
            "properties": {"used": {"type": "number"}, "limit": {"type": "number"}},
        },
        "cpu": {
            "type": "object",
            "properties": {"usage_percent": {"type": "number"}, "limit": {"type": "number"}},
        },
        "net": {
            "type": "object",
            "properties": {
                key: {"type": "number"} for key in ("up", "down", "delta_up", "delta_down")
            },
        },
    },
}


def _git(
    summary: str, success: dict[str, Any], extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_ID, _GIT_PATH, *(extra or [])],
        "responses": {
            **success,
            **_CONTAINER_ERRORS,
            "409": _error("the container is not running"),
            "412": _error("git failed (its output), or the container is not dockerlink's"),
            "504": _error("git did not finish within git_timeout (what it printed)"),
        },
    }


def openapi_document() -> dict[str, Any]:
    git_text = {"200": {"description": "git's output", "content": _TEXT}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dockerlink",
            "version": __version__,
            "description": "Runs a hosting panel's customer containers on one Docker host.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/container": {
                "get": {
                    "summary": "list containers",
                    "parameters": [
                        {
                            **_ID,
                            "required": False,
                            "explode": True,
                            "schema": {"type": "array", "items": _ID["schema"]},
                        },
                        _query("running", {"type": "boolean"}, "only running (or stopped) ones"),
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["error", "success"],
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "success": {
                                        "type": "object",
                                        "additionalProperties": _CONTAINER,
                                    },
                                },
                            }
                        ),
                        **_COMMON_ERRORS,
                    },
                },
                "put": {
                    "summary": "create a hosting container (not started)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["name", "host_port_root", "memory", "cpulimit"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "name": {
                                            "type": "string",
                                            "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$",
                                            "maxLength": 128,
                                        },
                                        "host_port_root": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 65535,
                                        },
                                        **_LIMITS,
                                        "ports": {
                                            "type": "array",
                                            "items": {
                                                "type": "string",
                                                "pattern": "^[0-9]{1,5}/(tcp|udp)$",
                                            },
                                        },
                                        "image": {"type": "string"},
                                        "commands": {"type": "array", "items": {"type": "string"}},
                                        "restart": _RESTART,
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["Id", "Warnings"],
                                "properties": {
                                    "Id": {"type": "string"},
                                    "Warnings": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        ),
                        **_COMMON_ERRORS,
                        "404": _error("no such image"),
                        "409": _error("the name is taken, or the port block overlaps another's"),
                    },
                },
                "patch": {
                    "summary": "change the memory and CPU limits (live) and the restart policy",
                    "parameters": [_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "minProperties": 1,
                                    "properties": {**_LIMITS, "restart": _RESTART},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "Warnings": {"type": "array", "items": {"type": "string"}}
                                },
                            }
                        ),
                        **_CONTAINER_ERRORS,
                        "409": _error("the engine refused the change"),
                    },
                },
                "delete": {
                    "summary": "remove a stopped container, its volumes and its history",
                    "parameters": [
                        _ID,
                        _query(
                            "deletevolume", {"type": "boolean"}, "remove its volumes (default true)"
                        ),
                    ],
                    "responses": {
                        **_NO_CONTENT,
                        **_CONTAINER_ERRORS,
                        "412": _error("running, or not created by dockerlink"),
                    },
                },
            },
            "/v1/container/start": {
                "post": {
                    "summary": "start",
                    "parameters": [_ID],
                    "responses": {
                        **_NO_CONTENT,
                        **_CONTAINER_ERRORS,
                        "406": _error("Already running"),
                        "409": _error("the engine refused to start it"),
                        "500": _error("the engine could not start it"),
                    },
                }
            },
            "/v1/container/stop": {
                "post": {
                    "summary": "stop",
                    "parameters": [_ID, _GRACE],
                    "responses": {
                        **_NO_CONTENT,
                        **_CONTAINER_ERRORS,
                        "406": _error("Already stopped"),
                    },
                }
            },
            "/v1/container/restart": {
                "post": {
                    "summary": "restart",
                    "parameters": [_ID, _GRACE],
                    "responses": {**_NO_CONTENT, **_CONTAINER_ERRORS, "406": _error("Not running")},
                }
            },
            "/v1/container/stats": {
                "get": {
                    "summary": "resource history, oldest first",
                    "parameters": [
                        _ID,
                        _query("since", {"type": "integer", "minimum": 0}, "unix seconds (0: all)"),
                        _query("scale", {"type": "string"}, "instant (default), day or week"),
                    ],
                    "responses": {
                        "200": _json({"type": "object", "additionalProperties": _SAMPLE}),
                        **_COMMON_ERRORS,
                        "404": _error("unknown container with no history"),
                    },
                }
            },
            "/v1/container/stats/latest": {
                "get": {
                    "summary": "the newest sample of every container sampled in the last 4 hours",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["sample_interval", "latest"],
                                "properties": {
                                    "sample_interval": {
                                        "type": "number",
                                        "description": "seconds between two samples",
                                    },
                                    "latest": {
                                        "type": "object",
                                        "description": "by full container id",
                                        "additionalProperties": {
                                            "allOf": [
                                                _SAMPLE,
                                                {
                                                    "type": "object",
                                                    "required": ["t"],
                                                    "properties": {
                                                        "t": {
                                                            "type": "integer",
                                                            "description": "unix seconds",
                                                        }
                                                    },
                                                },
                                            ]
                                        },
                                    },
                                },
                            }
                        ),
                        **{code: _COMMON_ERRORS[code] for code in ("401", "403")},
                    },
                }
            },
            "/v1/container/logs": {
                "get": {
                    "summary": "the container's output, stdout and stderr in order",
                    "description": "Frame headers removed (a TTY container's output as it is). "
                    "With follow=true the answer stays open and streams new output until the "
                    "client leaves or the container stops.",
                    "parameters": [
                        _ID,
                        _query(
                            "tail",
                            {"type": "integer", "minimum": 0, "maximum": 10000},
                            "the last N lines (default 100; 0 with follow: only what comes next)",
                        ),
                        _query("since", {"type": "number", "minimum": 0}, "unix seconds"),
                        _query("follow", {"type": "boolean"}, "keep streaming new output"),
                        _query("timestamps", {"type": "boolean"}, "prefix RFC 3339 times"),
                    ],
                    "responses": {
                        "200": {"description": "the output (may be empty)", "content": _TEXT},
                        **_CONTAINER_ERRORS,
                    },
                }
            },
            "/v1/git": {
                "get": _git("git pull", git_text),
                "put": _git("git init", _NO_CONTENT),
            },
            "/v1/git/head": {"get": _git("git log -1", git_text)},
            "/v1/git/branches": {
                "get": _git(
                    "git branch -a, as a list",
                    {"200": _json({"type": "array", "items": {"type": "string"}})},
                    [_query("fetch", {"type": "boolean"}, "git fetch --all --prune first")],
                )
            },
            "/v1/git/branch": {
                "get": _git("the current branch", git_text),
                "post": _git(
                    "git checkout <branch>",
                    git_text,
                    [_query("branch", {"type": "string", "maxLength": 255}, "branch name", True)],
                ),
            },
            "/v1/env": {
                "get": {
                    "summary": "the settings the original service exposed, as text",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    key: {"type": "string"}
                                    for key in ("docker_sock", "port_area_size", "base_image")
                                },
                            }
                        ),
                        "401": _COMMON_ERRORS["401"],
                        "403": _COMMON_ERRORS["403"],
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "whether the engine answers (no auth)",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}, "the engine answers"),
                        "503": _json({"type": "object"}, "degraded: the engine does not answer"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document (no auth)",
                    "security": [],
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics, text format 0.0.4 (no auth if metrics_public)",
                    "description": "Per container (labels id, name): state, memory used and "
                    "limit in bytes, CPU seconds used and limit in cores, network bytes received "
                    "and sent. dockerlink's own: requests by route and status, request "
                    "durations, sampler tick durations and errors, dockerlink_engine_up.",
                    "responses": {
                        "200": {
                            "description": "the metrics",
                            "content": {
                                "text/plain; version=0.0.4": {"schema": {"type": "string"}}
                            },
                        },
                        "401": _COMMON_ERRORS["401"],
                        "403": _COMMON_ERRORS["403"],
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "the dashboard page (no auth: it asks for the token itself)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "a self-contained HTML page",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }
