"""The send path's headers in C (``wire/_headers.c``): see :mod:`aionetstack.wire.ipv4_send`
and :mod:`aionetstack.wire.tcp_send`."""

def ipv4_header(
    source: bytes,
    destination: bytes,
    protocol: int,
    payload_length: int,
    ttl: int,
    identification: int,
    /,
) -> bytes: ...
def tcp_timestamp_header(
    source_port: int,
    destination_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    checksum: int,
    tsval: int,
    tsecr: int,
    /,
) -> bytes: ...
