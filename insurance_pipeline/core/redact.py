"""No secret in any message: credentials inside URIs (`scheme://user:password@host`,
`scheme://token@host`, and `password=`/`token=` query parameters) are replaced by `***`
before a message is raised, logged, or written to Dagster metadata, an MLflow tag or an image
label. `without_credentials` drops them from a URL that is shown as a value (an image's
`source` label)."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^@\s'\"/]*@")
# a user or token alone (`https://ghp_…@github.com/…`): hidden too, it may be the secret
_TOKEN = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)[^:/@\s'\"*]+@")
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|access_token)=)[^&\s'\";]*", re.I
)


def redact(text: str) -> str:
    text = _USERINFO.sub(r"\g<head>:***@", str(text))
    return _QUERY.sub(r"\g<head>***", _TOKEN.sub(r"\g<head>***@", text))


def without_credentials(url: str) -> str:
    """`url` with no user, password or token (and no secret query parameter)."""
    url = re.sub(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]*@", r"\g<head>", url.strip())
    return _QUERY.sub(r"\g<head>***", url)
