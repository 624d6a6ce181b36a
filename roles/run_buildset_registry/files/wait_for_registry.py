# Copyright imagegate developers. Apache-2.0.
"""Waits until the buildset registry just started answers, for at most a
minute: run by run_buildset_registry with the node's Python (the registry's
venv), as `wait_for_registry.py DIR HOST PORT`.

The registry is up once HOST:PORT completes a TLS handshake with a
certificate of the CA made for it in DIR/tls: another process listening on
the port does not pass. If the registry's process (DIR/registry.pid) ends
first, or the minute runs out, this fails at once with the end of
DIR/registry.log (lines naming a password or secret left out), and a
registry still running after the minute is stopped.
"""

import os
import signal
import socket
import ssl
import sys
import time

WAIT_SECONDS = 60
TAIL_LINES = 40


def log_tail(directory):
    try:
        with open(os.path.join(directory, "registry.log"), encoding="utf-8", errors="replace") as f:
            lines = f.read()[-65536:].splitlines()
    except OSError as e:
        return f"(no registry.log: {e.strerror})"
    kept = [line[:300] for line in lines if "pass" not in line.lower() and "secret" not in line.lower()]
    return "\n".join(kept[-TAIL_LINES:]) or "(registry.log is empty)"


def fail(directory, what):
    print(f"{what}\nThe end of {os.path.join(directory, 'registry.log')}:\n{log_tail(directory)}", file=sys.stderr)
    sys.exit(1)


def main():
    directory, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(directory, "registry.pid"), encoding="ascii") as f:
        pid = int(f.read().strip())
    context = ssl.create_default_context(cafile=os.path.join(directory, "tls", "ca.crt"))
    # The chain is verified (only this registry holds a certificate of its
    # CA); the name is not, since HOST may be an address of the node that
    # the certificate does not list.
    context.check_hostname = False
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            fail(directory, f"zuul-registry (pid {pid}) ended before it answered on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=2) as raw:
                with context.wrap_socket(raw):
                    print(f"zuul-registry (pid {pid}) answers on {host}:{port}")
                    return
        except ssl.SSLCertVerificationError as e:
            fail(
                directory,
                f"{host}:{port} answers with a certificate that is not this registry's ({e.verify_message}): "
                f"another process listens there",
            )
        except (OSError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            fail(directory, f"zuul-registry (pid {pid}) did not answer on {host}:{port} within {WAIT_SECONDS} s; stopped it")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
