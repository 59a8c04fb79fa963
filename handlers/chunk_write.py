"""Relayed bytes straight to the client's socket as one HTTP/1.1 chunk.

A stream relays one write per upstream event. Through Tornado (RequestHandler.write
and flush, HTTP1Connection.write, IOStream.write) each costs two Futures, their done
callbacks on the next loop turn and a dozen calls, several times what the send itself
costs. Once Tornado would do nothing but frame the bytes and send them, this does that
itself: the chunk framing Tornado would write, sent on the socket at once; what the socket
does not take now goes to the IOStream, which sends it in order as Tornado would have (and
applies its own limits and error handling). Anything else (headers still to send, bytes
queued in the handler or the stream, no chunking: HTTP/1.0, a Content-Length, a transform,
TLS) takes Tornado's own path.
"""

from __future__ import annotations

from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream
from tornado.web import RequestHandler


def chunked_connection(handler: RequestHandler) -> HTTP1Connection | None:
    """The handler's connection when its answer's headers are out and its body goes out in
    plain chunks on a plain socket: what `write_chunk` writes to; else None."""
    connection = handler.request.connection
    if (
        not handler._headers_written
        or handler._transforms
        or handler.request.method == "HEAD"
        or type(connection) is not HTTP1Connection
        or type(connection.stream) is not IOStream
        or not connection._chunking_output
        or connection._expected_content_remaining is not None
    ):
        return None
    return connection


def write_chunk(handler: RequestHandler, connection: HTTP1Connection, data: bytes) -> bool:
    """Send `data` as one chunk of `connection` (from `chunked_connection`), unless
    the answer is finished or bytes are queued before it in the handler or the stream: False
    then, nothing written (Tornado's own path says what to do)."""
    if not data:
        return True  # an empty chunk would end the answer; Tornado sends nothing either
    stream = connection.stream
    if handler._finished or handler._write_buffer or stream._write_buffer:
        return False
    frame = b"%x\r\n%b\r\n" % (len(data), data)
    try:
        sent = stream.socket.send(frame)
    except OSError:  # full (BlockingIOError), or broken: the stream's write meets it and closes
        sent = 0
    if sent < len(frame):
        stream.write(memoryview(frame)[sent:])
    return True
