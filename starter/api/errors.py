"""The API's typed errors: `{"error": {type, message, param, request_id}}` for every failure."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from accounting.formats import CaptureError
from accounting.formats.problems import format_location

log = logging.getLogger("remit.api")

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found",
    "idempotency_error",
    "conflict",
    "workflow_unavailable",
    "rate_limit_error",
    "api_error",
]

REQUEST_ID_STATE = "remit.request_id"
SKIP_IDEMPOTENCY_STATE = "remit.idempotency_skip"
"""Set on a request whose error must not be stored under its Idempotency-Key (auth failures)."""


class ApiError(Exception):
    """An error the API answers with its typed body; raise it from any route or dependency."""

    def __init__(
        self,
        status_code: int,
        type: ErrorType,
        message: str,
        *,
        param: str | None = None,
        problems: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        replayable: bool = True,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.message = message
        self.param = param
        self.problems = list(problems) if problems else None
        self.headers = headers
        # False for answers about the caller rather than the request (bad key, missing scope):
        # they are not remembered under an Idempotency-Key, so a fixed key can retry.
        self.replayable = replayable


def request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get(REQUEST_ID_STATE)


def error_body(
    type: ErrorType,
    message: str,
    *,
    request_id: str | None,
    param: str | None = None,
    problems: Sequence[dict[str, str]] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": type,
        "message": message,
        "param": param,
        "request_id": request_id,
    }
    if problems:
        error["problems"] = list(problems)
    return {"error": error}


def error_response(request: Request, error: ApiError) -> JSONResponse:
    if not error.replayable:
        request.scope.setdefault("state", {})[SKIP_IDEMPOTENCY_STATE] = True
    return JSONResponse(
        error_body(
            error.type,
            error.message,
            request_id=request_id_of(request),
            param=error.param,
            problems=error.problems,
        ),
        status_code=error.status_code,
        headers=error.headers,
    )


def capture_error(exc: CaptureError) -> ApiError:
    """A refused document: 422 listing every problem with its location in the document."""
    problems = [problem.as_dict() for problem in exc.problems]
    return ApiError(
        422,
        "invalid_request_error",
        str(exc),
        param=exc.problems[0].location,
        problems=problems,
    )


def bad_cursor(listing: str | None = None) -> ApiError:
    """400 for a pagination cursor this API did not hand out (or not for this listing)."""
    where = f" for {listing}" if listing else " by this API"
    return ApiError(
        400,
        "invalid_request_error",
        f"this cursor was not handed out{where}; start again without one",
        param="cursor",
    )


def rpc_error(exc: RPCError, what: str) -> ApiError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return ApiError(404, "not_found", f"no {what}", param="id")
    log.warning("Temporal call for %s failed: %s", what, exc.message)
    return ApiError(
        503,
        "workflow_unavailable",
        "the workflow engine did not answer; try again shortly",
        headers={"Retry-After": "5"},
    )


def _param_of(loc: Sequence[int | str]) -> str:
    # ('body', 'decision') -> decision; ('query', 'pay_on') -> pay_on
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return format_location(parts) if parts else "body"


def _validation_problems(exc: RequestValidationError) -> list[dict[str, str]]:
    problems = []
    for detail in exc.errors():
        message = str(detail.get("msg", "is not valid")).removeprefix("Value error, ")
        if detail.get("type") == "json_invalid":
            message = f"the body is not valid JSON: {detail.get('ctx', {}).get('error', message)}"
        problems.append({"location": _param_of(detail.get("loc", ())), "message": message})
    return problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(CaptureError)
    async def on_capture_error(request: Request, exc: CaptureError) -> JSONResponse:
        return error_response(request, capture_error(exc))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _validation_problems(exc)
        first = problems[0] if problems else {"location": "body", "message": "is not valid"}
        message = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
        return error_response(
            request,
            ApiError(
                422,
                "invalid_request_error",
                message or "the request is not valid",
                param=first["location"],
                problems=problems,
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds: dict[int, ErrorType] = {
            401: "authentication_error",
            403: "permission_error",
            404: "not_found",
            409: "conflict",
        }
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(
            request,
            ApiError(
                exc.status_code,
                kinds.get(exc.status_code, "invalid_request_error"),
                message,
                headers=dict(exc.headers) if exc.headers else None,
            ),
        )

    @app.exception_handler(RPCError)
    async def on_rpc_error(request: Request, exc: RPCError) -> JSONResponse:
        return error_response(request, rpc_error(exc, "such workflow"))
