"""How the outside starts and steers bills: client helpers, HTTP API, CLI and the embedded stack."""
