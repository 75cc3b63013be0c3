"""Who may talk to the server, and for how long: the Host names it answers, and a deadline for request headers.

A server on 127.0.0.1 is not private to its machine's user: any web page they open can make
their browser send it requests. Browsers keep pages from reading answers from another site,
but a page can point a name of its own at 127.0.0.1 (DNS rebinding) and the browser then
treats the server as that site; the Host header still carries the page's name, so a server
that answers only its own names is safe from it.
"""

import re

from handwritten.errors import HandwrittenError

HEADER_TIMEOUT_S = 10.0  # a client trickling a request's header lines is dropped after this
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def served_hosts(host: str, extra: list[str]) -> list[str]:
    """The host names a server bound to ``host`` answers for: its own, loopback's if it listens there, and ``extra``."""
    for name in extra:
        if name != "*" and not re.fullmatch(r"[A-Za-z0-9._-]+|\[?[0-9A-Fa-f:.]+\]?", name):
            raise HandwrittenError(
                f"--allow-host {name!r}: give a host name or address without a scheme, port or path "
                "(e.g. --allow-host mybox.local), or '*' for any"
            )
    if "*" in extra:
        return ["*"]
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.") or host in ("0.0.0.0", "::", "")
    return list(dict.fromkeys([host, *(LOOPBACK_HOSTS if loopback else ()), *extra]))


def host_name(header: str) -> str:
    """The name in a Host header: lowercased, without its port or an IPv6 address's brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HeaderLimit:
    """Answers 431 to a request whose request line and headers hold more than ``limit`` bytes.

    The HTTP parser's own limit applies only to headers that arrive in several reads; a large
    block sent at once reaches the application whole.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + sum(
                len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.limit:
                from starlette.responses import JSONResponse

                message = f"the request's headers hold {size:,} bytes, more than the limit of {self.limit:,}"
                await JSONResponse({"error": message}, status_code=431)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HostCheck:
    """Answers 400 to a request for a host name the server does not serve.

    A web page elsewhere can point a name of its own at 127.0.0.1 and then call the server as
    if it were its own site (DNS rebinding); the browser still sends that name as the Host.
    """

    def __init__(self, app, hosts):
        self.app = app
        self.hosts = {host_name(h) for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "*" not in self.hosts:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.hosts:
                from starlette.responses import JSONResponse

                message = f"host {host!r} is not served here; start the server with --allow-host NAME to serve another name"
                await JSONResponse({"error": message}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)
