"""uvicorn's HTTP/1.1 protocol (h11), closing a connection whose request headers take over ``HEADER_TIMEOUT_S``.

uvicorn closes a connection left idle after a response, but sets no limit on how long a
request's headers may take: a client sending them a line at a time, slowly, would hold its
connection for ever, and a few hundred such clients all the server's file descriptors.

A module of its own, imported only by a starting server: the class is named in uvicorn's
settings, which each worker process of ``serve --workers N`` imports by name.
"""

from uvicorn.protocols.http.h11_impl import H11Protocol

from handwritten.guards import HEADER_TIMEOUT_S


class HeaderDeadline(H11Protocol):
    deadline = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._expect_headers()

    def on_response_complete(self):
        self._expect_headers()  # first: the next (pipelined) request may be handled inside
        super().on_response_complete()

    def handle_events(self):
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers arrived whole
            self._stop_waiting()

    def connection_lost(self, exc):
        self._stop_waiting()
        super().connection_lost(exc)

    def _expect_headers(self):
        self._stop_waiting()
        self.deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _stop_waiting(self):
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _too_slow(self):
        self.deadline = None
        if not self.transport.is_closing():
            self.transport.close()
