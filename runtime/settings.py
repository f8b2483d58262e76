"""Settings for every remit process (worker, API, CLI), from REMIT_* environment variables."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator

from store import StoreSettings
from workflows.approval import DEFAULT_DIRECTORY, DEFAULT_POLICY
from workflows.models import TASK_QUEUE

WORKFLOW_TASK_SLOTS = 8
"""Workflow tasks one worker process runs at once (the SDK's default is 100).

Workflow code runs on threads that share one GIL with the activities' event loop, so more
slots add no throughput; they add latency. After a restart every open bill is replayed from
its history, and with 100 slots each replay waits behind 99 others: at 1,000 open bills the
tasks took longer than their 10 s timeout, were retried by the server and replayed again.
Tasks beyond the slots wait in Temporal's queue, where no timeout runs."""


class Settings(StoreSettings):
    temporal_address: str = Field(
        default="127.0.0.1:7233",
        validation_alias=AliasChoices("REMIT_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("REMIT_TEMPORAL_NAMESPACE", "TEMPORAL_NAMESPACE"),
    )
    temporal_tls_cert: Path | None = Field(
        default=None,
        description="client certificate (PEM) for mTLS to a Temporal cluster or Temporal Cloud",
    )
    temporal_tls_key: Path | None = Field(
        default=None, description="the client certificate's private key (PEM)"
    )
    temporal_tls_ca: Path | None = Field(
        default=None, description="the server's CA (PEM), if not a public one"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="the server name to verify, if not the address's host"
    )
    temporal_api_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("REMIT_TEMPORAL_API_KEY", "TEMPORAL_API_KEY"),
        description="a Temporal Cloud API key (TLS is then on)",
    )
    task_queue: str = TASK_QUEUE
    erp_activities_per_second: float | None = Field(
        default=None,
        description="server-side limit on ERP calls across all workers (the ERP task queue's "
        "max_task_queue_activities_per_second); empty: none",
    )
    erp_concurrent_activities: int = Field(
        default=50, ge=1, description="ERP calls one worker process runs at once"
    )
    worker_shutdown_seconds: float = Field(
        default=10,
        ge=0,
        description="on SIGTERM, how long a worker lets running activities finish before it "
        "cancels them (Temporal retries them elsewhere)",
    )
    workflow_task_slots: int = Field(
        default=WORKFLOW_TASK_SLOTS,
        ge=2,
        description="workflow tasks one worker process runs at once (more add latency, not "
        "throughput: workflow code shares one GIL)",
    )
    idempotency_retention_days: float = Field(
        default=7, ge=1, description="days an Idempotency-Key and its answer are kept (≥ 1)"
    )
    webhook_retention_days: float = Field(
        default=30, ge=4, description="days webhook events and delivery logs are kept for replay"
    )
    drift_window_days: int = Field(
        default=30,
        ge=1,
        description="the drift sweep compares bills reconciled these many days back",
    )
    drift_sweep_interval_hours: float = Field(
        default=6, gt=0, description="hours between two drift sweeps (the drift-sweep schedule)"
    )
    request_log_retention_days: float = Field(
        default=30, ge=1, description="days each ERP call is kept in the request log"
    )
    webhook_poll_seconds: float = Field(
        default=1,
        gt=0,
        le=60,
        description="how often a worker looks for webhook deliveries queued elsewhere (the "
        "API's replays, other workers); its own are sent at once",
    )
    webhook_lease_seconds: float = Field(
        default=60,
        gt=10,
        le=3600,
        description="how long a worker holds a webhook delivery it is sending (longer than the "
        "10 s attempt timeout); a crashed worker's deliveries are sent by another after it",
    )
    policy_file: Path = DEFAULT_POLICY
    directory_file: Path = DEFAULT_DIRECTORY
    bank_url: str = "http://127.0.0.1:8300"
    bank_api_key: SecretStr = SecretStr("")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet key that encrypts connection credentials at rest",
    )
    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "AES-256 keys for Temporal payloads, `kid:<base64>` comma-separated; every id listed "
            "decrypts, so old keys stay until no history needs them. Empty: no encryption"
        ),
    )
    encryption_key_id: str | None = Field(
        default=None, description="The key new payloads are encrypted with; default: the first"
    )
    bank_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="the secret the bank signs its payment notices with (the API verifies them)",
    )
    default_connection_id: str | None = Field(
        default=None, description="where the API files a bill whose submit names no connection"
    )
    inbox_session_secret: SecretStr = Field(
        default=SecretStr(""),
        description="signs the approval inbox's sessions; every API process must share it",
    )
    inbox_demo_login: bool = Field(
        default=False,
        description="list a one-time sign-in link per non-admin user on the inbox's sign-in "
        "page (a demo: anyone who can open the page signs in as anyone listed); `remit up "
        "--demo-login` turns it on",
    )
    inbox_admin_groups: list[str] = Field(
        default_factory=lambda: ["operators"],
        description="directory groups whose members are admins: never offered a demo sign-in "
        "link (holders of an admin API key are admins too); they sign in with a link remit "
        "issues to them",
    )
    temporal_ui_url: str | None = Field(
        default=None, description="the Temporal UI's URL, whose origin may call the codec endpoint"
    )
    accept_plaintext_payloads: bool = Field(
        default=False,
        description="with encryption on, still read payloads that are not encrypted (only while "
        "histories recorded before encryption finish: anyone could send those)",
    )
    allowed_hosts: str = Field(
        default="localhost,127.0.0.1,[::1]",
        description="host names the API answers to, comma-separated (`*.example.com` for "
        "subdomains, `*` for any); requests naming another Host get 400, which defeats DNS "
        "rebinding, and state-changing browser requests from another origin get 403",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest request body on most endpoints"
    )
    max_document_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="largest request body where documents are submitted (bills, credits)",
    )
    max_bank_event_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest body of a bank payment notice"
    )
    max_codec_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="largest body the codec endpoint reads (one event's payloads)",
    )
    api_key_rate_limit: str = Field(
        default="600/minute",
        description="requests one API key may make (moving window, `limits` notation such as "
        "`600/minute` or `20/second;600/minute`)",
    )
    client_rate_limit: str = Field(
        default="1200/minute",
        description="API requests one client address may make (moving window)",
    )
    login_rate_limit: str = Field(
        default="10/minute",
        description="inbox sign-in attempts (login form, magic links) one client address may make",
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="where rate-limit counters live (`limits` storage URI): memory:// per "
        "process; redis://host:6379 (with the coredis package) shares them across several "
        "API processes",
    )
    codec_groups: str = Field(
        default="operators",
        description="directory groups whose inbox session may use the codec endpoint "
        "(comma-separated); an API key needs the admin or codec scope",
    )
    codec_oidc_issuer: str | None = Field(
        default=None,
        description="the OIDC issuer whose access tokens (the Temporal UI's codec."
        "passAccessToken) may call the codec endpoint; unset: no OIDC tokens",
    )
    codec_oidc_audience: str | None = Field(
        default=None, description="the `aud` those access tokens must carry (required with it)"
    )
    codec_oidc_jwks_url: str | None = Field(
        default=None,
        description="where the issuer's signing keys are; default: the jwks_uri of "
        "<issuer>/.well-known/openid-configuration",
    )
    codec_oidc_user_claim: str = Field(
        default="email", description="the token claim that names the user (else `sub`)"
    )
    codec_oidc_groups_claim: str = Field(
        default="groups", description="the token claim listing the user's groups (codec_groups)"
    )
    max_line_items: int = Field(
        default=1000,
        ge=1,
        description="line items one bill may have; the API refuses more with 422 (a bill's "
        "history grows with its lines, and Temporal caps a history at 50 MB)",
    )
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="let webhook endpoints point at private, loopback, link-local or metadata "
        "addresses (the sandbox does; a deployment should not: it lets a key holder probe the "
        "internal network)",
    )
    platform_webhook_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="the key each platform signs its webhooks with, by platform name (QBO's "
        "verifier token, Xero's webhook key), e.g. REMIT_PLATFORM_WEBHOOK_KEYS="
        '\'{"quickbooks": "...", "xero": "..."}\'; a platform not named here gets 404',
    )
    default_timezone: str = Field(
        default="UTC",
        description="the IANA time zone 'today' means (e.g. pay_on=today) when a connection's "
        "settings name no `timezone`",
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return value
