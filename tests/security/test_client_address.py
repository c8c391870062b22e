"""Client address through trusted proxies only; CIDR allowlists for IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from telepayd.security.client_address import Networks, client_address, parse_address, rate_limit_key
from telepayd.security.errors import ForwardedForError

PROXIES = Networks.parse(["10.0.0.0/8", "fd00::/8"])


def ip(text: str):
    return ipaddress.ip_address(text)


def test_forwarded_for_from_an_untrusted_peer_is_ignored():
    assert client_address("203.0.113.9", ["1.2.3.4"], PROXIES) == ip("203.0.113.9")


def test_forwarded_for_is_ignored_without_trusted_proxies():
    assert client_address("127.0.0.1", ["1.2.3.4"], Networks([])) == ip("127.0.0.1")


def test_rightmost_untrusted_entry_is_the_client():
    # The client forged "6.6.6.6"; the proxy appended the real address.
    assert client_address("10.0.0.1", ["6.6.6.6, 198.51.100.7"], PROXIES) == ip("198.51.100.7")


def test_trusted_hops_are_skipped_across_several_headers():
    assert client_address("10.0.0.1", ["6.6.6.6, 198.51.100.7", "10.1.1.1"], PROXIES) == ip("198.51.100.7")


def test_ipv6_clients_and_proxies():
    assert client_address("fd00::1", ["2001:db8::5"], PROXIES) == ip("2001:db8::5")


def test_ipv4_mapped_peer_counts_as_ipv4():
    assert client_address("::ffff:10.0.0.1", ["198.51.100.7"], PROXIES) == ip("198.51.100.7")


def test_no_header_from_a_proxy_gives_the_proxy():
    assert client_address("10.0.0.1", [], PROXIES) == ip("10.0.0.1")


def test_only_trusted_hops_give_the_leftmost():
    assert client_address("10.0.0.1", ["10.0.0.3, 10.0.0.2"], PROXIES) == ip("10.0.0.3")


def test_unix_socket_peer_reads_forwarded_for_or_is_localhost():
    assert client_address(None, ["198.51.100.7"], Networks([])) == ip("198.51.100.7")
    assert client_address(None, [], Networks([])) == ip("127.0.0.1")


@pytest.mark.parametrize("header", ["unknown", "1.2.3.4:80", "", "1.2.3.4,,", "300.1.1.1", "[::1]"])
def test_malformed_entries_from_a_proxy_raise(header):
    with pytest.raises(ForwardedForError):
        client_address("10.0.0.1", [header], PROXIES)


def test_a_malformed_entry_left_of_the_client_is_never_read():
    assert client_address("10.0.0.1", ["garbage, 198.51.100.7"], PROXIES) == ip("198.51.100.7")


def test_too_many_trusted_hops_raise():
    with pytest.raises(ForwardedForError):
        client_address("10.0.0.1", [", ".join(["10.0.0.2"] * 40)], PROXIES)


def test_networks_membership_for_both_families():
    allow = Networks.parse(["192.0.2.0/24", "2001:db8::/32"])
    assert ip("192.0.2.200") in allow
    assert ip("192.0.3.1") not in allow
    assert ip("2001:db8:1::1") in allow
    assert ip("2001:db9::1") not in allow
    assert ip("::ffff:192.0.2.1") not in allow  # callers normalise with parse_address first
    assert parse_address("::ffff:192.0.2.1") in allow


def test_empty_networks_allow_nobody_and_zero_networks_allow_all():
    assert ip("1.2.3.4") not in Networks([])
    everyone = Networks.parse(["0.0.0.0/0", "::/0"])
    assert ip("1.2.3.4") in everyone and ip("2001:db8::1") in everyone


def test_rate_limit_key_groups_ipv6_by_64_and_keeps_families_apart():
    assert rate_limit_key(ip("2001:db8:1:2::1")) == rate_limit_key(ip("2001:db8:1:2:ffff::9"))
    assert rate_limit_key(ip("2001:db8:1:3::1")) != rate_limit_key(ip("2001:db8:1:2::1"))
    assert rate_limit_key(ip("0.0.0.1")) != rate_limit_key(ip("::1"))
    assert rate_limit_key(ip("1.2.3.4")) != rate_limit_key(ip("1.2.3.5"))
