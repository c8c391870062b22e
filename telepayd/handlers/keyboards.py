"""Inline keyboards."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from ..store.channels import Channel
from ..store.subscriptions import Subscription
from .. import texts
from .callbacks import encode

PAGE_SIZE = 10


def channel_list(channels: list[Channel], page: int) -> InlineKeyboardMarkup:
    pages = max(1, (len(channels) + PAGE_SIZE - 1) // PAGE_SIZE)
    page = min(max(page, 0), pages - 1)
    shown = channels[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    rows = [[InlineKeyboardButton(texts.channel_button(c.title, c.lowest_price), callback_data=encode("ch", c.id))] for c in shown]
    navigation = []
    if page > 0:
        navigation.append(InlineKeyboardButton(texts.PAGE_PREVIOUS, callback_data=encode("list", page - 1)))
    if page < pages - 1:
        navigation.append(InlineKeyboardButton(texts.PAGE_NEXT, callback_data=encode("list", page + 1)))
    if navigation:
        rows.append(navigation)
    return InlineKeyboardMarkup(rows)


def channel_tiers(channel: Channel) -> InlineKeyboardMarkup:
    rows = [[InlineKeyboardButton(texts.tier_button(t.price, t.days), callback_data=encode("tier", channel.id, t.id))] for t in channel.tiers]
    rows.append([InlineKeyboardButton(texts.BACK_TO_LIST, callback_data=encode("list", 0))])
    return InlineKeyboardMarkup(rows)


def pay(url: str, price) -> InlineKeyboardMarkup:
    """The invoice's Pay button, and the way to ask for a check when a payment seems lost."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(texts.pay_button(price), url=url)],
                                 [InlineKeyboardButton(texts.PAID_BUTTON, callback_data=encode("paid"))]])


def renew(channel_key: int) -> InlineKeyboardMarkup:
    """Back to the channel's plans, for a user whose access has ended."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(texts.RENEW, callback_data=encode("ch", channel_key))]])


def status_links(active: list[Subscription], *, open_orders: bool = False) -> InlineKeyboardMarkup | None:
    """A fresh-link button per active subscription; "I paid" when an invoice is still open."""
    rows = [[InlineKeyboardButton(texts.new_link_button(s.title), callback_data=encode("link", s.channel_id))] for s in active]
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
