"""The emulators' side of OAuth: registered apps, the consent page, and one-time codes.

Each emulator mounts `ConsentServer.authorize` at its platform's authorize path and asks
`redeem` at its token endpoint; what a redeemed code becomes (a QBO grant for a realm, a Xero
connection to a tenant) stays in the emulator. `drive_consent` is the person clicking "Connect"
on that page, over HTTP, for tests, demos and `remit connections add --auto-consent`.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

CODE_LIFETIME = timedelta(minutes=10)


@dataclass
class RegisteredApp:
    """A developer app: what a token endpoint authenticates with client_secret_basic."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def allows(self, redirect_uri: str) -> bool:
        # No registered URIs means "any" (a developer sandbox app); otherwise an exact match.
        return not self.redirect_uris or redirect_uri in self.redirect_uris


@dataclass
class IssuedCode:
    """An authorization code: one use, bound to the app, the redirect URI and the choice made."""

    code: str
    client_id: str
    redirect_uri: str
    company_id: str
    scope: str
    code_challenge: str | None
    expires_at: datetime
    used: bool = False
    # What the token endpoint issued for it, so a replayed code can revoke that grant (RFC 6749
    # §4.1.2: a code used twice should revoke the tokens it produced).
    grant_ref: str | None = None


class ConsentError(Exception):
    """An OAuth error the token endpoint answers as `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description}, status_code=self.status
        )


Companies = Callable[[], list[tuple[str, str]]]
RedirectExtras = Callable[[str], dict[str, str]]


class ConsentServer:
    """Authorization-code endpoint of an emulated identity provider.

    `companies()` lists what a person may connect (id, name); `redirect_extras(company_id)`
    adds platform parameters to the redirect (QBO's `realmId`).
    """

    def __init__(
        self,
        *,
        product: str,
        company_label: str,
        companies: Companies,
        redirect_extras: RedirectExtras | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.product = product
        self.company_label = company_label
        self.companies = companies
        self.redirect_extras = redirect_extras or (lambda _company: {})
        self.clock = clock
        self.apps: dict[str, RegisteredApp] = {}
        self.codes: dict[str, IssuedCode] = {}

    # -- apps ---------------------------------------------------------------------------------

    def register_app(
        self,
        redirect_uris: list[str] | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> RegisteredApp:
        app = RegisteredApp(
            client_id=client_id or secrets.token_hex(16),
            client_secret=client_secret or secrets.token_urlsafe(24),
            redirect_uris=list(redirect_uris or []),
        )
        self.apps[app.client_id] = app
        return app

    def authenticate(self, client_id: str, client_secret: str) -> RegisteredApp | None:
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            return None
        return app

    async def register_app_endpoint(self, request: Request) -> Response:
        """POST /_emulator/apps {"redirect_uris": [...]}: a developer creating an app."""
        body: dict[str, Any] = {}
        if await request.body():
            body = await request.json()
        uris = body.get("redirect_uris") or []
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            return JSONResponse({"error": "redirect_uris must be a list of URLs"}, 400)
        app = self.register_app(uris)
        return JSONResponse(
            {
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uris": app.redirect_uris,
            },
            status_code=201,
        )

    # -- the consent page ---------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """GET shows the consent page; POST records the person's decision and redirects."""
        if request.method == "GET":
            params = {k: v for k, v in request.query_params.items()}
        else:
            params = {k: str(v) for k, v in (await request.form()).items()}
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        app = self.apps.get(client_id)
        # Errors about the client or redirect URI are shown, never redirected (RFC 6749 §4.1.2.1).
        if app is None:
            return self._page_error(f"Unknown app (client_id {client_id!r}).")
        if not redirect_uri or not app.allows(redirect_uri):
            return self._page_error("The redirect_uri is not registered for this app.")
        state = params.get("state", "")
        if params.get("response_type") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", "state": state})
        method = params.get("code_challenge_method", "")
        if params.get("code_challenge") and method != "S256":
            return _redirect(
                redirect_uri,
                {
                    "error": "invalid_request",
                    "error_description": "code_challenge_method must be S256",
                    "state": state,
                },
            )
        if request.method == "GET":
            return self._page(params)
        if params.get("decision") != "allow":
            return _redirect(
                redirect_uri,
                {"error": "access_denied", "error_description": "declined", "state": state},
            )
        company_id = params.get("company", "")
        if company_id not in dict(self.companies()):
            return self._page(params, problem=f"Choose a {self.company_label} to connect.")
        code = IssuedCode(
            code=secrets.token_urlsafe(32),
            client_id=client_id,
            redirect_uri=redirect_uri,
            company_id=company_id,
            scope=params.get("scope", ""),
            code_challenge=params.get("code_challenge") or None,
            expires_at=self.clock() + CODE_LIFETIME,
        )
        self.codes[code.code] = code
        return _redirect(
            redirect_uri, {"code": code.code, "state": state, **self.redirect_extras(company_id)}
        )

    def redeem(
        self,
        form: dict[str, str],
        client_id: str,
        client_secret: str,
        on_replay: Callable[[IssuedCode], None] | None = None,
    ) -> IssuedCode:
        """Check an authorization_code grant; the code is spent whatever happens next."""
        app = self.authenticate(client_id, client_secret)
        if app is None:
            raise ConsentError("invalid_client", "unknown client or wrong secret", 401)
        issued = self.codes.get(form.get("code", ""))
        if issued is None:
            raise ConsentError("invalid_grant", "the authorization code is not valid")
        if issued.used:
            if on_replay is not None:
                on_replay(issued)
            raise ConsentError("invalid_grant", "the authorization code was already used")
        issued.used = True
        if issued.client_id != app.client_id:
            raise ConsentError("invalid_grant", "the code was issued to another client")
        if issued.expires_at <= self.clock():
            raise ConsentError("invalid_grant", "the authorization code has expired")
        if form.get("redirect_uri", "") != issued.redirect_uri:
            raise ConsentError("invalid_grant", "redirect_uri does not match the authorization")
        if issued.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier or create_s256_code_challenge(verifier) != issued.code_challenge:
                raise ConsentError("invalid_grant", "code_verifier does not match the challenge")
        return issued

    def _page(self, params: dict[str, str], problem: str = "") -> HTMLResponse:
        app_name = html.escape(params.get("client_id", ""))
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in params.items()
            if name not in ("company", "decision")
        )
        companies = self.companies()
        choices = (
            "".join(
                f'<label><input type="radio" name="company" value="{html.escape(cid)}"'
                f"{' checked' if index == 0 else ''}> {html.escape(name)}"
                f" <small>({html.escape(cid)})</small></label><br>"
                for index, (cid, name) in enumerate(companies)
            )
            or f"<p>No {html.escape(self.company_label)} exists yet.</p>"
        )
        scope = html.escape(params.get("scope", ""))
        warning = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connect to {html.escape(self.product)}</title>
<style>body{{font-family:sans-serif;max-width:36em;margin:3em auto}}.problem{{color:#b00}}</style>
</head><body>
<h1>Connect to {html.escape(self.product)}</h1>
<p>The app <code>{app_name}</code> asks for access: <code>{scope}</code>.</p>
{warning}
<form method="post" id="consent">
{hidden}
<fieldset><legend>Choose a {html.escape(self.company_label)}</legend>{choices}</fieldset>
<p><button type="submit" name="decision" value="allow">Connect</button>
<button type="submit" name="decision" value="deny">Cancel</button></p>
</form></body></html>"""
        return HTMLResponse(page, status_code=200 if not problem else 400)

    def _page_error(self, message: str) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><body><h1>{html.escape(self.product)}</h1>"
            f"<p>{html.escape(message)}</p></body></html>",
            status_code=400,
        )


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    parts = urlsplit(redirect_uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)


# ---------------------------------------------------------------------------------------------
# A person using the page, over HTTP
# ---------------------------------------------------------------------------------------------


class _FormReader(HTMLParser):
    """The first form's action, its hidden fields and the values of its `company` choices."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.choices: list[str] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form:
            if values.get("type") == "hidden":
                self.hidden[values.get("name", "")] = values.get("value", "")
            elif values.get("type") == "radio" and values.get("name") == "company":
                self.choices.append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


@dataclass(frozen=True)
class ConsentPage:
    action: str
    hidden: dict[str, str]
    choices: list[str]


async def read_consent_page(http: httpx.AsyncClient, authorize_url: str) -> ConsentPage:
    response = await http.get(authorize_url)
    if response.status_code != 200:
        raise ValueError(f"the consent page answered {response.status_code}: {response.text[:300]}")
    reader = _FormReader()
    reader.feed(response.text)
    action = urljoin(str(response.url), reader.action or "")
    return ConsentPage(action, reader.hidden, reader.choices)


async def drive_consent(
    http: httpx.AsyncClient,
    authorize_url: str,
    *,
    company_id: str | None = None,
    allow: bool = True,
) -> str:
    """Open the consent page, pick `company_id` (or the first offered), press Connect or
    Cancel, and return the URL the browser would be redirected to (not followed)."""
    page = await read_consent_page(http, authorize_url)
    if company_id is not None and company_id not in page.choices:
        raise ValueError(f"the consent page does not offer {company_id!r}: {page.choices}")
    chosen = company_id or (page.choices[0] if page.choices else "")
    form = {**page.hidden, "company": chosen, "decision": "allow" if allow else "deny"}
    response = await http.post(page.action, data=form, follow_redirects=False)
    location = response.headers.get("location")
    if response.status_code not in (302, 303) or not location:
        raise ValueError(f"the consent form answered {response.status_code}: {response.text[:300]}")
    return location
