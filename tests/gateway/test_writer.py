"""Write coalescing (lychgate.gateway.http.writer)."""

from __future__ import annotations

from gateway.fakes import FakeTransport
from lychgate.gateway.http.writer import JOIN_OVER, SMALL_CHUNK, Batch, Writer


def test_writes_outside_a_batch_go_straight_through() -> None:
    t = FakeTransport()
    w = Writer(t, Batch())
    w.write(b"a")
    w.write(b"b")
    assert (bytes(t.written), t.writes) == (b"ab", 2)


def test_a_batch_coalesces_per_transport_and_flushes_at_the_end() -> None:
    batch = Batch()
    t1, t2 = FakeTransport(), FakeTransport()
    w1, w2 = Writer(t1, batch), Writer(t2, batch)
    batch.begin()
    batch.begin()  # nested
    w1.write(b"head")
    w2.write(b"x")
    w1.write(b"body")
    batch.end()
    assert t1.writes == 0
    batch.end()
    assert (bytes(t1.written), t1.writes) == (b"headbody", 1)
    assert (bytes(t2.written), t2.writes) == (b"x", 1)


def test_close_flushes_first_and_abort_drops() -> None:
    batch = Batch()
    t = FakeTransport()
    w = Writer(t, batch)
    batch.begin()
    w.write(b"last words")
    w.close()
    batch.end()
    assert (bytes(t.written), t.closed) == (b"last words", True)
    t2 = FakeTransport()
    w2 = Writer(t2, batch)
    batch.begin()
    w2.write(b"lost")
    w2.abort()
    batch.end()
    assert (bytes(t2.written), t2.aborted) == (b"", True)


def test_writes_to_a_closing_transport_are_dropped() -> None:
    t = FakeTransport()
    w = Writer(t, Batch())
    t.close()
    w.write(b"late")
    assert t.written == b""


def test_unwrite_takes_back_only_what_has_not_left() -> None:
    batch = Batch()
    t = FakeTransport()
    w = Writer(t, batch)
    earlier, head = b"HTTP/1.1 200 OK\r\n\r\nearlier", b"HTTP/1.1 200 OK\r\n"
    batch.begin()
    w.write(earlier)  # a pipelined response before, whole
    w.write(head)
    w.write(b"part of its body")
    assert w.unwrite(head)
    assert not w.unwrite(head)  # taken back already
    w.write(b"HTTP/1.1 502 Bad Gateway\r\n")
    batch.end()
    assert bytes(t.written) == earlier + b"HTTP/1.1 502 Bad Gateway\r\n"
    assert not w.unwrite(earlier)  # it has reached the transport
    batch.begin()
    w.write(head)
    assert w.unwrite(head)  # all of the batch taken back: nothing is written
    batch.end()
    assert t.writes == 1


def test_many_small_chunks_reach_the_transport_as_one_piece() -> None:
    # A client that reads nothing leaves each piece in the transport's buffer with a record of
    # its own, which the byte-counted high-water mark does not see: a read of one-byte chunks
    # held 15 MB per connection as three pieces a chunk.
    batch = Batch()
    t = FakeTransport()
    w = Writer(t, batch)
    batch.begin()
    for _ in range(10_000):
        w.write_chunk(b"x")
    batch.end()
    assert (t.writes, t.pieces) == (1, 1)
    assert bytes(t.written) == b"1\r\nx\r\n" * 10_000


def test_a_few_pieces_and_large_chunks_are_not_copied() -> None:
    batch = Batch()
    t = FakeTransport()
    w = Writer(t, batch)
    big = b"y" * (SMALL_CHUNK + 1)
    batch.begin()
    w.write(b"head")
    w.write_chunk(b"small")
    w.write_chunk(big)
    batch.end()
    assert t.pieces == 5 <= JOIN_OVER  # handed over as they are (writelines)
    assert bytes(t.written) == b"head" + b"5\r\nsmall\r\n" + b"%x\r\n" % len(big) + big + b"\r\n"
