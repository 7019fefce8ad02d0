"""Runs INSIDE the sandbox (with the system's python3): relay TCP on the sandbox's own loopback to Otto's
egress proxy, whose Unix socket is bound into the sandbox, then run the command and exit with its code.

The sandbox has no network of its own; this relay is the only way out, and the proxy on the other end
decides what may be reached. Standard library only; no Otto imports (Otto's code is not visible inside).

Usage: python3 forwarder.py PORT SOCKET -- COMMAND...
"""

import contextlib
import socket
import subprocess
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()


def main() -> int:
    port, path, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        sys.stderr.write("usage: forwarder.py PORT SOCKET -- COMMAND...\n")
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
