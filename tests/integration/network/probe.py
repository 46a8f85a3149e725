"""Run inside a container: try each target, print one JSON object of the outcomes.

Targets: ``tcp:HOST:PORT`` (connect, read the greeting: "ok" or the errno name) and
``dns:NAME`` (the address, or "nxdomain"/"error"). Always exits 0."""

PROBE = r"""
import errno, json, socket, sys
out = {}
for target in sys.argv[1:]:
    kind, _, rest = target.partition(":")
    try:
        if kind == "dns":
            out[target] = socket.gethostbyname(rest)
        else:
            host, port = rest.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=3) as conn:
                out[target] = "ok" if conn.recv(64).startswith(b"hello") else "garbled"
    except socket.gaierror as exc:
        out[target] = "nxdomain" if exc.errno in (socket.EAI_NONAME, -5) else f"gai{exc.errno}"
    except TimeoutError:
        out[target] = "timeout"
    except OSError as exc:
        out[target] = errno.errorcode.get(exc.errno or 0, str(exc))
print(json.dumps(out))
"""
