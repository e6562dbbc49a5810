"""Reading where a container's TCP connections lead from /proc/net/tcp{,6} (the end-to-end
tier checks that the operator container dials only loopback)."""

from __future__ import annotations

from mljob.testing.image import is_loopback, socket_peers

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"  # noqa: E501
TCP = HEADER + (
    "   0: 0100007F:A4DB 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 111 1\n"
    "   1: 0100007F:C350 0100007F:1A0B 01 00000000:00000000 00:00000000 00000000 0 0 222 1\n"
    "   2: 0A00020F:C351 08080808:01BB 01 00000000:00000000 00:00000000 00000000 0 0 333 1\n"
    "   3: 0100007F:C352 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0 0 999 1\n"
)
TCP6 = HEADER + (
    "   0: 0000000000000000FFFF00000100007F:A4E5 0000000000000000FFFF00000100007F:1A0B 01 "
    "00000000:00000000 00:00000000 00000000 0 0 444 1\n"
    "   1: 00000000000000000000000001000000:A4E6 00000000000000000000000001000000:0050 01 "
    "00000000:00000000 00:00000000 00000000 0 0 555 1\n"
)


def test_the_peers_of_the_containers_own_connected_sockets():
    peers = socket_peers([TCP, TCP6], {"111", "222", "333", "444", "555"})
    # 111 listens (no peer); 999 is another process's.
    assert peers == [
        ("127.0.0.1", 0x1A0B),
        ("8.8.8.8", 443),
        ("127.0.0.1", 0x1A0B),  # IPv4-mapped IPv6
        ("::1", 80),
    ]


def test_loopback_is_127_slash_8_and_ipv6_one():
    assert is_loopback("127.0.0.1") and is_loopback("127.55.3.7") and is_loopback("::1")
    assert not is_loopback("8.8.8.8") and not is_loopback("10.244.0.5")
