"""Run a server inside a network namespace and let exactly one of its ports out.

`python -m tooling.netns_gate FD PORT -- COMMAND …`, started with `ip netns exec NS` and a
listening socket of the host's loopback inherited as FD: the command runs (in the namespace,
where its other ports are reachable by nothing outside it), and each connection accepted on
FD is relayed to 127.0.0.1:PORT inside the namespace. `make stack` puts SeaweedFS there, so
that only its S3 port, which checks the stack's keys, is reachable; its master, volume and
filer ports are not. The gate and the command are one process group: stopping one stops both.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass  # a peer went away, or the gate is stopping
    finally:
        writer.close()


async def _relay(port: int, client_r, client_w) -> None:
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))


async def serve(listener: socket.socket, port: int, child: subprocess.Popen) -> int:
    server = await asyncio.start_server(lambda r, w: _relay(port, r, w), sock=listener, backlog=256)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        while not stop.is_set() and child.poll() is None:
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
    child.terminate()
    try:
        return child.wait(15)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m tooling.netns_gate FD PORT -- COMMAND …", file=sys.stderr)
        return 2
    listener = socket.socket(fileno=int(argv[0]))
    child = subprocess.Popen(argv[3:])
    return asyncio.run(serve(listener, int(argv[1]), child))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
