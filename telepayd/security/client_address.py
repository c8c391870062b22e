"""Who is calling: the socket peer, or the client a trusted proxy names in ``X-Forwarded-For``.

``X-Forwarded-For`` is read only when the peer is a trusted proxy. All such headers are joined and walked
from the right; trusted proxies are skipped and the first untrusted entry is the client, so an entry a
client forged on the left can never be picked. A malformed entry met on the walk is an error (400).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from .errors import ForwardedForError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOCALHOST = ipaddress.IPv4Address("127.0.0.1")
MAX_FORWARDED_ENTRIES = 32


@functools.lru_cache(maxsize=4096)  # peers and proxies repeat; bounded, and the values are immutable
def parse_address(text: str) -> IPAddress:
    """Parse one address; an IPv4-mapped IPv6 address becomes the IPv4 address. Raises ``ValueError``."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Networks:
    """An immutable set of CIDR networks (IPv4 and IPv6) with a fast membership test."""

    __slots__ = ("networks", "_v4", "_v6")

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(networks)
        self._v4 = tuple(
            (int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 4
        )
        self._v6 = tuple(
            (int(n.network_address), int(n.netmask)) for n in self.networks if n.version == 6
        )

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> Networks:
        """Build from CIDR strings (``strict=False``: host bits are ignored). Raises ``ValueError``."""
        return cls(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)

    def __contains__(self, address: IPAddress) -> bool:
        value = int(address)
        ranges = self._v4 if address.version == 4 else self._v6
        for network, mask in ranges:
            if value & mask == network:
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Networks) and self.networks == other.networks

    def __hash__(self) -> int:
        return hash(self.networks)

    def __repr__(self) -> str:
        return f"Networks([{', '.join(str(n) for n in self.networks)}])"


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Networks
) -> IPAddress:
    """Return the client's address.

    ``peer`` is the socket peer's address, or ``None`` on a unix socket, where the peer is the local
    proxy: then ``X-Forwarded-For`` is read by the same rule, and the client is 127.0.0.1 without it.
    ``forwarded_for`` holds the values of every ``X-Forwarded-For`` header, in order.
    """
    if peer is None:
        proxy: IPAddress = LOCALHOST
    else:
        try:
            proxy = parse_address(peer)
        except ValueError:
            # aiohttp always gives an address for TCP peers; anything else is a local transport.
            proxy = LOCALHOST
        if proxy not in trusted_proxies:
            return proxy
    if not forwarded_for:
        return proxy
    entries = ",".join(forwarded_for).split(",")
    for count, entry in enumerate(reversed(entries)):
        if count >= MAX_FORWARDED_ENTRIES:
            raise ForwardedForError(f"X-Forwarded-For has more than {MAX_FORWARDED_ENTRIES} entries.")
        try:
            hop = parse_address(entry)
        except ValueError:
            raise ForwardedForError("X-Forwarded-For holds an entry that is not an IP address.") from None
        if hop not in trusted_proxies:
            return hop
    # Every hop was a trusted proxy: the leftmost one is the closest to the client that we know.
    return hop


def rate_limit_key(address: IPAddress) -> int:
    """The rate-limit key: the IPv4 address, or the IPv6 /64 (one subscriber's usual allocation)."""
    if address.version == 4:
        return int(address)
    return -1 - (int(address) >> 64)
