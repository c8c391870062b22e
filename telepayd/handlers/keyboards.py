"""Inline keyboards."""

from __future__ import annotations

from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from ..store.channels import Channel, Tier
from ..store.subscriptions import Subscription
from .. import languages
from .speaking import texts
from .callbacks import encode

PAGE_SIZE = 10


def channel_list(shown: list[Channel], page: int, more: bool) -> InlineKeyboardMarkup:
    """One page of channels (``PAGE_SIZE`` at most), with Back before it and Next when ``more`` follow."""
    rows = [[InlineKeyboardButton(texts.channel_button(c.title, c.lowest_price), callback_data=encode("ch", c.id))] for c in shown]
    navigation = []
    if page > 0:
        navigation.append(InlineKeyboardButton(texts.PAGE_PREVIOUS, callback_data=encode("list", page - 1)))
    if more:
        navigation.append(InlineKeyboardButton(texts.PAGE_NEXT, callback_data=encode("list", page + 1)))
    if navigation:
        rows.append(navigation)
    return InlineKeyboardMarkup(rows)


def _tier_label(tier: Tier, in_stars: bool) -> str:
    if in_stars and tier.stars_price is not None:
        return texts.tier_button_with_stars(tier.price, tier.stars_price, tier.days)
    return texts.tier_button(tier.price, tier.days)


def channel_tiers(channel: Channel, in_stars: Callable[[Tier], bool] = lambda tier: False, *,
                  trial: bool = False) -> InlineKeyboardMarkup:
    """A button per plan (with its Stars price when ``in_stars`` says it is sold in Stars), and the free
    trial first when ``trial`` (the user may take it)."""
    rows = [[InlineKeyboardButton(_tier_label(t, in_stars(t)), callback_data=encode("tier", channel.id, t.id))] for t in channel.tiers]
    if trial and channel.trial_days:
        rows.insert(0, [InlineKeyboardButton(texts.trial_button(channel.trial_days), callback_data=encode("trial", channel.id))])
    rows.append([InlineKeyboardButton(texts.BACK_TO_LIST, callback_data=encode("list", 0))])
    return InlineKeyboardMarkup(rows)


def pay(url: str, price) -> InlineKeyboardMarkup:
    """The invoice's Pay button, and the way to ask for a check when a payment seems lost."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(texts.pay_button(price), url=url)],
                                 [InlineKeyboardButton(texts.PAID_BUTTON, callback_data=encode("paid"))]])


def choose_rail(channel_key: int, tier: Tier) -> InlineKeyboardMarkup:
    """Crypto (NowPayments) or Telegram Stars, for a plan sold in both."""
    assert tier.stars_price is not None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(texts.pay_crypto_button(tier.price), callback_data=encode("np", channel_key, tier.id))],
        [InlineKeyboardButton(texts.pay_stars_button(tier.stars_price), callback_data=encode("xtr", channel_key, tier.id))],
        [InlineKeyboardButton(texts.BACK_TO_LIST, callback_data=encode("ch", channel_key))],
    ])


def choose_donation_rail(channel_key: int, cents: int, usd, stars: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(texts.pay_crypto_button(usd), callback_data=encode("dnp", channel_key, cents))],
        [InlineKeyboardButton(texts.pay_stars_button(stars), callback_data=encode("dxtr", channel_key, cents))],
    ])


def pay_stars(url: str, amount: int) -> InlineKeyboardMarkup:
    """The Stars invoice link (Telegram's own payment sheet)."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(texts.pay_stars_button(amount), url=url)]])


def renew(channel_key: int) -> InlineKeyboardMarkup:
    """Back to the channel's plans, for a user whose access has ended."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(texts.RENEW, callback_data=encode("ch", channel_key))]])


def status_links(active: list[Subscription], *, open_orders: bool = False) -> InlineKeyboardMarkup | None:
    """A fresh-link button per active subscription, with cancel/resume for one that a Stars subscription
    renews; "I paid" when an invoice is still open."""
    rows = []
    for s in active:
        rows.append([InlineKeyboardButton(texts.new_link_button(s.title), callback_data=encode("link", s.channel_id))])
        if s.renewal_charge_id is not None:
            action = "rnon" if s.renewal_canceled else "rnoff"
            rows.append([InlineKeyboardButton(texts.renewal_button(s.title, s.renewal_canceled), callback_data=encode(action, s.channel_id))])
    if open_orders:
        rows.append([InlineKeyboardButton(texts.PAID_BUTTON, callback_data=encode("paid"))])
    return InlineKeyboardMarkup(rows) if rows else None


def donation_keypad() -> InlineKeyboardMarkup:
    from .keypad import BACKSPACE, CANCEL, CLEAR, CONFIRM, KEY_LABELS, POINT

    def key(code: int) -> InlineKeyboardButton:
        return InlineKeyboardButton(KEY_LABELS.get(code, str(code)), callback_data=encode("kp", code))

    rows = [[key(1), key(2), key(3)], [key(4), key(5), key(6)], [key(7), key(8), key(9)],
            [key(POINT), key(0), key(BACKSPACE)], [key(CLEAR), key(CANCEL), key(CONFIRM)]]
    return InlineKeyboardMarkup(rows)


def languages_menu() -> InlineKeyboardMarkup:
    """One button per language, each in its own name."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(name, callback_data=encode("lang", index))]
                                 for index, name in enumerate(languages.NAMES.values())])


def owned_channels(owned: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(title, callback_data=encode("stats", key))] for key, title in owned])
