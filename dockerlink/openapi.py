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


def _json_body(properties: dict[str, Any], **rules: Any) -> dict[str, Any]:
    """A required JSON-object request body with exactly ``properties`` (plus schema ``rules``)."""
    schema = {"type": "object", **rules, "additionalProperties": False, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_COMMON_ERRORS = {
    "400": _error("a parameter or the body is invalid; the message names it"),
    "401": _error("missing or wrong bearer token"),
    "403": _error(
        "no token is set and the request is a browser's for another site (Host, Origin or "
        "Sec-Fetch-Site); see allowed_hosts and cors_origins"
    ),
    "500": _error("the engine could not do it (its message follows)"),
    "503": _error("the Docker engine is unreachable or timed out"),
}
_CONTAINER_ERRORS = {
    **_COMMON_ERRORS,
    "404": _error("no such container"),
    "412": _error("the container was not created by dockerlink"),
}
_NO_CONTENT = {"204": {"description": "done"}}
_EVENT = {
    "type": "object",
    "required": ["time", "id", "name", "type", "event_id"],
    "properties": {
        "time": {"type": "number", "description": "unix seconds (the engine's time)"},
        "id": {"type": "string", "description": "full container id"},
        "name": {"type": "string", "description": "without the leading /"},
        "type": {
            "type": "string",
            "enum": ["create", "start", "stop", "die", "oom", "restart", "update", "destroy"],
        },
        "exit_code": {"type": ["integer", "null"], "description": "die"},
        "oom_killed": {"type": "boolean", "description": "die"},
        "crash": {
            "type": ["boolean", "null"],
            "description": "die: true when nobody asked it to stop (null: not seen, from inspect)",
        },
        "source": {"type": "string", "description": "die: inspect, when recorded after a gap"},
        "policy": {"type": "boolean", "description": "restart: by the engine's restart policy"},
        "restart_count": {"type": "integer", "description": "restart by the policy"},
        "event_id": {"type": "string", "description": "unique; webhook receivers dedupe by it"},
    },
}


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
                    "requestBody": _json_body(
                        {
                            "name": {
                                "type": "string",
                                "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$",
                                "maxLength": 128,
                            },
                            "host_port_root": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 65535,
                                "description": "at least min_host_port (default "
                                "1024) and at most 65536 - port_area_size; its block may not "
                                "hold dockerlink's port",
                            },
                            **_LIMITS,
                            "ports": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {"type": "string", "pattern": "^[0-9]{1,5}/(tcp|udp)$"},
                            },
                            "image": {"type": "string"},
                            "commands": {"type": "array", "items": {"type": "string"}},
                            "restart": _RESTART,
                        },
                        required=["name", "host_port_root", "memory", "cpulimit"],
                    ),
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
                        "500": _error(
                            "hook_on_create failed (the container was removed), or the engine "
                            "could not create it"
                        ),
                    },
                },
                "patch": {
                    "summary": "change the memory and CPU limits (live) and the restart policy",
                    "parameters": [_ID],
                    "requestBody": _json_body({**_LIMITS, "restart": _RESTART}, minProperties=1),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["Warnings"],
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
            "/v1/container/events": {
                "get": {
                    "summary": "lifecycle events, oldest first (one container's, or every one's)",
                    "description": "create, start, stop, die (exit_code, oom_killed, crash), oom, "
                    "restart, update, destroy, recorded from the engine's event stream and kept "
                    "30 days (at most 1000 per container). A container removed since is still "
                    "found by its id or name while it has events.",
                    "parameters": [
                        {**_ID, "required": False, "description": "a container (default: all)"},
                        _query("since", {"type": "number", "minimum": 0}, "unix seconds (0: all)"),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 1000},
                            "the newest N events (default 100)",
                        ),
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _EVENT}),
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
            "/v1/container/terminal": {
                "get": {
                    "summary": "a shell in the container (WebSocket; see the README)",
                    "description": "Upgrades to a WebSocket (subprotocol dockerlink.terminal; "
                    "the token may come as the subprotocol bearer.<base64url>): an interactive "
                    "login shell as exec_user with a TTY. Binary frames carry raw bytes both "
                    'ways; a text frame {"type": "resize", "cols": C, "rows": R} resizes. '
                    "The answers below come before the upgrade.",
                    "parameters": [_ID],
                    "responses": {
                        "101": {"description": "switching to the WebSocket"},
                        **_CONTAINER_ERRORS,
                        "409": _error("container is not running"),
                        "426": _error("the request is not a WebSocket upgrade"),
                        "429": _error("terminal_max_sessions sessions are open"),
                    },
                }
            },
            "/terminal": {
                "get": {
                    "summary": "the terminal page (no auth: it asks for the token itself)",
                    "security": [],
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "an HTML page loading only dockerlink's own files",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        "400": _COMMON_ERRORS["400"],
                    },
                }
            },
            "/static/{path}": {
                "get": {
                    "summary": "the terminal page's files (no auth)",
                    "security": [],
                    "parameters": [
                        {
                            "name": "path",
                            "in": "path",
                            "required": True,
                            "description": "terminal.js, vendor/xterm.js, vendor/addon-fit.js "
                            "or vendor/xterm.css",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the file",
                            "content": {
                                "text/javascript": {"schema": {"type": "string"}},
                                "text/css": {"schema": {"type": "string"}},
                            },
                        },
                        "404": _error("not one of the page's files"),
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
            **_ssh_paths(),
        },
    }


#: The SSH bridge's container name, in the path.
_SSH_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the container's name (not an id)",
    "schema": {"type": "string", "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", "maxLength": 128},
}
_SSH_LOOKUP_ERRORS = {
    "400": _error("the name is not a container name"),
    "404": _error("no such container, or ssh_bridge is off"),
    "412": _error("the container was not created by dockerlink, or does not publish its SSH port"),
    "503": _COMMON_ERRORS["503"],
}


def _ssh_paths() -> dict[str, Any]:
    """The panels' shell tab (public: the container's own sshd authenticates)."""
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "/v1/ssh/{name}/wetty": {
            "get": {
                "summary": "the terminal page of the panels' shell tab (no auth)",
                "description": "The page connects to ./socket and loads its files from "
                "./static/, so it works at https://ssh.<name>.<domain>/wetty behind nginx. "
                "Its frame-ancestors come from ssh_frame_ancestors.",
                "security": [],
                "parameters": [_SSH_NAME],
                "responses": {
                    "200": {"description": "the terminal page", "content": html},
                    **_SSH_LOOKUP_ERRORS,
                },
            }
        },
        "/v1/ssh/{name}/static/{path}": {
            "get": {
                "summary": "the terminal page's files: xterm.js, its CSS, the page's script",
                "security": [],
                "parameters": [
                    {**_SSH_NAME, "schema": {"type": "string"}},
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "the file", "content": {"*/*": {}}},
                    "404": _error("no such file, or ssh_bridge is off"),
                },
            }
        },
        "/v1/ssh/{name}/socket": {
            "get": {
                "summary": "WebSocket: a terminal logged in to the container's sshd (no auth)",
                "description": "Prompts 'login as: ' and 'password: ' in the terminal, then "
                "bridges an SSH session to 127.0.0.1:<host_port_root + 22>. Binary frames carry "
                'raw bytes both ways; a text frame {"type": "resize", "cols": C, "rows": R} '
                "resizes. After 5 failed logins in 5 minutes, the container's logins are "
                "refused for 5 minutes (close code 1008).",
                "security": [],
                "parameters": [_SSH_NAME],
                "responses": {
                    "101": {"description": "switched to the WebSocket protocol"},
                    **_SSH_LOOKUP_ERRORS,
                    "409": _error("container is not running"),
                    "429": _error("ssh_max_sessions sockets are open, or 8 for this container"),
                },
            }
        },
    }
