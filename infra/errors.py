"""The errors a client can be answered with.

    HelplineError            code        HTTP
    ├── BadRequest           bad_request 400
    ├── Unauthorized         unauthorized 401
    │   └── SessionEnded     unauthorized 401 (the WebSocket then closes, 1008)
    ├── Forbidden            forbidden   403
    ├── NotFound             not_found   404
    ├── Conflict             conflict    409
    ├── TooLarge             bad_request 413
    ├── RateLimited          rate_limited 429
    └── Unavailable          unavailable 503

Pure: the domain cores raise these; the edges (WebSocket, HTTP) turn them into
`{"type":"error",...}` frames or `{"error":{code,message}}` bodies.
"""
from __future__ import annotations


class HelplineError(Exception):
    code = "internal"
    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.message = message or self.code.replace("_", " ")


class BadRequest(HelplineError):
    code, status = "bad_request", 400


class Unauthorized(HelplineError):
    code, status = "unauthorized", 401


class SessionEnded(Unauthorized):
    """The session's account was disabled, changed role, had its epoch bumped or its token revoked, as found
    by the command itself (a help request's own statement): the WebSocket answers, then closes with 1008."""

    def __init__(self, message: str = "session ended: log in again") -> None:
        super().__init__(message)


class Forbidden(HelplineError):
    code, status = "forbidden", 403


class NotFound(HelplineError):
    code, status = "not_found", 404


class Conflict(HelplineError):
    code, status = "conflict", 409


class TooLarge(HelplineError):
    code, status = "bad_request", 413


class RateLimited(HelplineError):
    code, status = "rate_limited", 429


class Unavailable(HelplineError):
    code, status = "unavailable", 503
