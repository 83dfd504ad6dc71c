"""No secret in any message: credentials inside URIs (`scheme://user:password@host`, and
`password=`/`token=` query parameters) are replaced by `***` before a message is raised,
logged, or written to Dagster metadata or an MLflow tag."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^@\s'\"/]*@")
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|access_token)=)[^&\s'\";]*", re.I
)


def redact(text: str) -> str:
    return _QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>:***@", str(text)))
