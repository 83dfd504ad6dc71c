"""Bounded load against a server on this machine, and what it costs the server: `wrk` runs
(parsed), a POST script for it, and a process tree's memory. Shared by the benchmarks and the
abuse tests; every run has a fixed duration."""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

POST_SCRIPT = """wrk.method = "POST"
wrk.body = io.open(%s, "rb"):read("*a")
wrk.headers["Content-Type"] = "application/json"
"""


def post_script(folder: Path, body: bytes | str | object, name: str = "post") -> Path:
    """A wrk script that POSTs `body` (bytes as they are, else its JSON) on every request."""
    data = (
        body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body))
    )
    payload = folder / f"{name}.body"
    payload.write_bytes(data if isinstance(data, bytes) else data.encode())
    script = folder / f"{name}.lua"
    script.write_text(POST_SCRIPT % json.dumps(str(payload)))
    return script


def batch_rows(n: int = 1000, seed: int = 0) -> list[dict]:
    """`n` valid, varied prediction inputs (seeded): a batch body as clients send one."""
    rng = random.Random(seed)
    return [
        {
            "age": rng.randint(18, 64),
            "sex": rng.choice(["female", "male"]),
            "bmi": round(rng.uniform(16, 50), 2),
            "children": rng.randint(0, 5),
            "smoker": rng.random() < 0.2,
            "region": rng.choice(["northeast", "northwest", "southeast", "southwest"]),
        }
        for _ in range(n)
    ]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_argv(url: str, connections: int, seconds: float, script: Path | None = None) -> list[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "--timeout", "5s"]
    return argv + (["-s", str(script)] if script else []) + [url]


def parse_wrk(out: str) -> dict:
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": _ms(latency["50"]) if "50" in latency else float("nan"),
        "p99_ms": _ms(latency["99"]) if "99" in latency else float("nan"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "timeouts": int(errors.group(4)) if errors else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def wrk(url: str, connections: int, seconds: float, script: Path | None = None) -> dict:
    """One wrk run (1 thread), parsed: requests/s, p50/p99 ms, non-2xx, timeouts, errors."""
    argv = wrk_argv(url, connections, seconds, script)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def side_by_side(
    urls: dict[str, str], connections: int, seconds: float, script: Path, rounds: int = 3
) -> dict[str, list[dict]]:
    """`rounds` wrk runs of each url, interleaved in the order given, so that each figure
    has its reference measured beside it (this machine's speed drifts): {name: [runs]}."""
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            runs[name].append(wrk(url, connections, seconds, script))
    return runs


def wrk_started(url: str, connections: int, seconds: float, script: Path | None = None):
    """A wrk run in the background; `parse_wrk(process.communicate()[0])` when it ends."""
    argv = wrk_argv(url, connections, seconds, script)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def tree_rss_mib(root_pid: int) -> tuple[float, int]:
    """RSS summed over a process and all its descendants, and how many there are."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields["PPid"])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, count, todo = 0, 0, [root_pid]
    while todo:
        pid = todo.pop()
        total, count = total + rss.get(pid, 0), count + 1
        todo += children.get(pid, [])
    return total / 1024, count


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))
