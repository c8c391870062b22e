"""Every text a buyer, an owner or the operator sees from the bot and the outbox, in one place below every
layer that sends one (handlers, money rules, outbox, sweeper, CLI): where languages will plug in. HTML parse
mode: anything from users or owners is escaped."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape


def money(amount: Decimal, currency: str = "usd") -> str:
    """$9.99, or 500 ⭐ for an amount in Telegram Stars (currency XTR)."""
    if currency.lower() == "xtr":
        return f"{int(amount):,} ⭐"
    return f"${amount:,.2f}"


def stars(amount: int) -> str:
    return money(Decimal(amount), "xtr")


def day_count(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


START = "👋 Welcome! Pick a channel to see what it offers:"
NO_CHANNELS = "There is nothing for sale here yet. Please come back later."
HELP = (
    "<b>How it works</b>\n"
    "1. /start and pick a channel, then a plan.\n"
    "2. Pay with crypto, or in Telegram Stars where the plan shows a ⭐ price (a 30-day plan in Stars renews "
    "every month until you cancel it in /status).\n"
    "3. I send you a personal join link once the payment is confirmed. It works for you only.\n\n"
    "/status shows your subscriptions, gets you a fresh join link and cancels or resumes a Stars renewal.\n"
    "Paid but no link after an hour? Send me the payment id from the payment page, or /status PAYMENT_ID.\n"
    "/whoami shows your Telegram id (channel owners need it).\n"
    "/paysupport: help with a payment. /terms: the terms of sale.\n"
    "/help shows this message."
)


def whoami(user_id: int) -> str:
    return (
        f"Your Telegram id is <code>{user_id}</code>.\n"
        "Channel owners: this is the <code>--owner</code> of <code>telepayd channels add</code>. To find a "
        "channel's id, forward me any post of that channel."
    )


def forwarded_from(title: str, chat_id: int) -> str:
    return f"That post comes from <b>{escape(title)}</b>, whose id is <code>{chat_id}</code>."
CHANNEL_GONE = "This channel is no longer available. /start shows what is."
STALE_BUTTON = "That button is out of date. Here is the current list:"
UNKNOWN_INPUT = "I did not understand that. Use the buttons, or /start to begin again."
INVOICE_FAILED = (
    "😕 The payment provider did not answer. Nothing was charged. Please press the plan again in a minute."
)
BUSY = "Something went wrong on our side. Nothing was charged. Please try again in a minute."
STATUS_NONE = "You have no subscriptions yet. /start to pick a channel."
LINK_TOO_SOON = "A new join link can be issued once every 10 minutes. Please try again in {minutes} min."
LINK_NOT_ACTIVE = "Your access to this channel has ended, so there is no join link to give. Renew it here:"
TOO_FAST = "One moment, please: I am still answering your previous taps."
TOO_MANY_INVOICES = (
    "You have opened many invoices in the last hour. Please pay one of them, or try again in a while."
)
LINK_QUEUED = "🔗 A new personal join link is on its way."
PAGE_NEXT = "Next ▶"
PAGE_PREVIOUS = "◀ Back"
BACK_TO_LIST = "◀ All channels"


def channel_button(title: str, lowest: Decimal | None) -> str:
    # Button labels are plain text (no HTML), so no escaping here.
    return f"{title} — from {money(lowest)}" if lowest is not None else title


def channel_details(title: str, description: str) -> str:
    text = f"<b>{escape(title)}</b>"
    if description:
        text += f"\n{escape(description)}"
    return text + "\n\nChoose a plan:"


def tier_button(price: Decimal, days: int) -> str:
    return f"{money(price)} · {day_count(days)}"


def invoice_ready(title: str, price: Decimal, days: int) -> str:
    return (
        f"🧾 <b>{escape(title)}</b>: {day_count(days)} of access for {money(price)}.\n"
        "Pay with the button below. Your personal join link arrives here once the payment is confirmed."
    )


def pay_button(price: Decimal) -> str:
    return f"Pay {money(price)}"


def join_link(title: str, link: str, hours: int, ends_at: datetime) -> str:
    return (
        f"✅ Payment confirmed. Welcome to <b>{escape(title)}</b>!\n"
        f"Your personal join link (valid {hours} h, it works for you only):\n{escape(link)}\n"
        f"Your access runs until {date(ends_at)}."
    )


def fresh_join_link(title: str, link: str, hours: int) -> str:
    return f"🔗 Your new join link for <b>{escape(title)}</b> (valid {hours} h, for you only):\n{escape(link)}"


def partially_paid(title: str, paid: Decimal | None, pay_currency: str, price: Decimal) -> str:
    arrived = f"{paid} {escape(pay_currency.upper())}" if paid is not None else "part of the amount"
    return (
        f"⏳ Your payment for <b>{escape(title)}</b> is incomplete: {arrived} arrived, the price is {money(price)}.\n"
        "Please send the missing amount to the same address; access starts once it is complete."
    )


def payment_failed(title: str) -> str:
    return f"❌ Your payment for <b>{escape(title)}</b> failed. Nothing was granted; /start to try again."


def payment_expired(title: str) -> str:
    return f"⌛ Your invoice for <b>{escape(title)}</b> expired unpaid. /start to get a new one."


def owner_payment(title: str, kind: str, price: Decimal, days: int | None, user_id: int, username: str | None,
                  currency: str = "usd", renewal: bool = False) -> str:
    who = f"@{escape(username)}" if username else f"user {user_id}"
    what = f"{day_count(days)} subscription" if kind == "subscription" and days else "donation"
    if renewal:
        what = f"{what} renewed"
    return f"💰 New payment in <b>{escape(title)}</b>: {money(price, currency)} ({what}) from {who}."


def owner_refund(title: str, price: Decimal, user_id: int, days_taken_back: int | None = None, currency: str = "usd") -> str:
    text = f"↩️ A payment of {money(price, currency)} in <b>{escape(title)}</b> by user {user_id} was refunded."
    if days_taken_back:
        return text + f" {day_count(days_taken_back).capitalize()} of access were taken back."
    return text


def status_line(title: str, ends_at: datetime, active: bool) -> str:
    state = f"active until {date(ends_at)}" if active else f"ended {date(ends_at)}"
    return f"• <b>{escape(title)}</b>: {state}"


def new_link_button(title: str) -> str:
    return f"🔗 New join link: {title}"


def _who(user_id: object, username: object) -> str:
    if isinstance(username, str) and username:
        return f"@{escape(username.lstrip('@'))}"
    return f"user {escape(str(user_id))}" if user_id is not None else "someone"


def _amount(amount: object, currency: object) -> str:
    if amount is None:
        return "an amount"
    code = escape(str(currency).upper()) if currency else "USD"
    return f"{escape(str(amount))} {code}"


def owner_notification(title: str, payment_type: str, data: dict) -> str:
    """A Cloud Run payment notification for the channel's owner; every value comes from outside: escaped."""
    who = _who(data.get("user_id"), data.get("username"))
    amount = _amount(data.get("amount"), data.get("currency"))
    if payment_type == "subscription":
        days = data.get("duration_days")
        plan = f", {escape(str(days))} days" if days else ""
        tier = f", tier {escape(str(data['tier']))}" if data.get("tier") is not None else ""
        return f"💰 New subscription in <b>{escape(title)}</b>: {amount}{plan}{tier} from {who}."
    if payment_type == "donation":
        return f"🎁 New donation to <b>{escape(title)}</b>: {amount} from {who}."
    return f"🔔 Payment notification (<i>{escape(payment_type)}</i>) for <b>{escape(title)}</b>: {amount} from {who}."


def channel_post(title: str, description: str, lowest: Decimal | None) -> str:
    text = f"<b>{escape(title)}</b>"
    if description:
        text += f"\n{escape(description)}"
    if lowest is not None:
        text += f"\n\nAccess from {money(lowest)}. Subscribe or support the channel below."
    return text


SUBSCRIBE = "🔓 Subscribe"
DONATE = "💝 Donate"
RENEW = "🔁 Renew"


def refunded_buyer(title: str, price: Decimal, ends_at: datetime | None, taken_back: bool, currency: str = "usd") -> str:
    text = f"↩️ Your payment of {money(price, currency)} for <b>{escape(title)}</b> was refunded"
    text += ", so the time it bought that was still ahead is taken back." if taken_back else "."
    if ends_at is None:
        return text + " Your access has ended." if taken_back else text
    return text + f" Your access {'now ' if taken_back else ''}ends on {date(ends_at)}."


def refunded_donation(title: str, price: Decimal, currency: str = "usd") -> str:
    return f"↩️ Your donation of {money(price, currency)} to <b>{escape(title)}</b> was refunded."


def reminder(title: str, ends_at: datetime) -> str:
    return f"⏰ Your access to <b>{escape(title)}</b> ends on {date(ends_at)}. Renew to keep it."


def removed(title: str) -> str:
    return f"Your access to <b>{escape(title)}</b> has ended. You can come back at any time:"


def lost_rights(title: str) -> str:
    return (
        f"⚠️ The bot is no longer an administrator who can invite users in the closed channel of <b>{escape(title)}</b>. "
        "Paying users cannot get in until you make it one again."
    )


KEYPAD_EXPIRED = "⌛ This donation keypad expired. Use the channel's Donate button to start again."
KEYPAD_CANCELLED = "Donation cancelled. Nothing was charged."
KEYPAD_STALE = "This keypad is no longer active."
KEYPAD_LIMIT = "At most two decimals and four digits before the point."


def keypad(title: str, amount: str, minimum: Decimal, maximum: Decimal) -> str:
    shown = amount or "0"
    return (
        f"💝 Donate to <b>{escape(title)}</b>\n\n"
        f"<code>$ {escape(shown)}</code>\n\n"
        f"Type an amount from {money(minimum)} to {money(maximum)}, then ✅."
    )


def keypad_refused(amount: Decimal, minimum: Decimal, maximum: Decimal) -> str:
    if amount < minimum:
        return f"The minimum donation is {money(minimum)}."
    return f"The maximum donation is {money(maximum)}."


def donation_invoice(title: str, amount: Decimal) -> str:
    return (
        f"🧾 Donation of {money(amount)} to <b>{escape(title)}</b>.\n"
        "Pay with the button below. Thank you!"
    )


# A buyer's "I paid, but have no access" (handlers/payment_check.py).
PAID_BUTTON = "💬 I paid, but have no access"
PAID_ASK = (
    "Send me the <b>payment id</b> shown on NowPayments' payment page (a number like <code>5077125123</code>), "
    "as a message of its own. I will check it with NowPayments."
)
CHECK_BUSY = "Many payments are being checked right now. Please send the payment id again in a minute."
CHECK_UNREACHABLE = (
    "NowPayments cannot be reached right now, so I could not check. Nothing is lost: please send the payment "
    "id again in a few minutes."
)


def open_order_line(title: str, price: Decimal, created_at: datetime) -> str:
    return f"• <b>{escape(title)}</b>: {money(price)} invoice of {date(created_at)}, waiting for payment"


def check_too_often(minutes: int) -> str:
    return f"You have checked several payments just now. Please try again in {minutes} min."


def check_not_found(payment_id: int) -> str:
    return (f"NowPayments knows no payment <code>{payment_id}</code>. Please check the number on the payment page "
            "(Payment ID) and send it again.")


def check_other_order(payment_id: int) -> str:
    return f"Payment <code>{payment_id}</code> is for another order, not one of yours. Nothing was changed."


def check_refused(payment_id: int) -> str:
    return (f"Payment <code>{payment_id}</code> cannot be applied to its order as it is. The operator has been "
            "told and will look into it.")


def check_waiting(payment_id: int) -> str:
    return (f"NowPayments has not received the money of payment <code>{payment_id}</code> yet. If you sent it, it "
            "is applied as soon as it arrives; if not, please pay from the payment page.")


def check_donation_received(payment_id: int) -> str:
    return f"✅ Payment <code>{payment_id}</code> is complete: your donation has reached the channel. Thank you!"


def check_granted(payment_id: int) -> str:
    return f"✅ Payment <code>{payment_id}</code> is complete. Your access is granted: your join link is on its way."


def check_already_granted(payment_id: int) -> str:
    return (f"Payment <code>{payment_id}</code> was already applied and your access granted. /status gets you a "
            "fresh join link.")


def check_confirming(payment_id: int, status: str) -> str:
    return (f"Payment <code>{payment_id}</code> is still {escape(status.replace('_', ' '))} at NowPayments. "
            "You will get your join link as soon as it is complete; there is nothing else to do.")


def check_partially_paid(payment_id: int) -> str:
    return (f"Payment <code>{payment_id}</code> is only partly paid. Please send the rest from the payment page; "
            "your join link follows once it is complete.")


def check_failed(payment_id: int, status: str) -> str:
    return (f"Payment <code>{payment_id}</code> {escape(status)} at NowPayments: no money arrived for it. "
            "/start to begin a new order.")


def check_refunded(payment_id: int) -> str:
    return f"Payment <code>{payment_id}</code> was refunded."


# Telegram Stars (handlers/stars.py, stars.py).
PAY_CHOOSE = "How would you like to pay?"


def pay_crypto_button(price: Decimal) -> str:
    return f"Pay {money(price)} (crypto)"


def pay_stars_button(amount: int) -> str:
    return f"Pay {stars(amount)}"


def tier_button_with_stars(price: Decimal, amount: int, days: int) -> str:
    return f"{money(price)} or {stars(amount)} · {day_count(days)}"


def stars_invoice_ready(title: str, amount: int, days: int, renews: bool) -> str:
    renewal = " It renews every 30 days until you cancel it in /status." if renews else ""
    return (
        f"⭐ <b>{escape(title)}</b>: {day_count(days)} of access for {stars(amount)}.{renewal}\n"
        "Pay with the button below. Your personal join link arrives here right after the payment."
    )


def stars_donation_invoice(title: str, usd: Decimal, amount: int) -> str:
    return (f"⭐ Donation of {stars(amount)} (about {money(usd)}) to <b>{escape(title)}</b>.\n"
            "Pay with the button below. Thank you!")


def donation_choose(title: str, usd: Decimal) -> str:
    return f"💝 Donation of {money(usd)} to <b>{escape(title)}</b>. How would you like to pay?"


def stars_invoice_title(title: str, days: int | None) -> str:
    """The invoice's title (plain text, at most 32 characters for Telegram)."""
    what = f", {day_count(days)}" if days else ""
    return (title[: 32 - len(what) - 1] + "…" if len(title) + len(what) > 32 else title) + what


def stars_invoice_description(title: str, days: int | None, renews: bool) -> str:
    if days is None:
        return f"A donation to {title}"[:255]
    text = f"{day_count(days)} of access to {title}" + (", renewed every 30 days until cancelled" if renews else "")
    return text[:255]


STARS_INVOICE_FAILED = "😕 Telegram did not create the invoice. Nothing was charged. Please try again in a minute."
STARS_OFF = "Payments in Telegram Stars are not available right now. Please pay with crypto."
STARS_DONATION_OUT_OF_RANGE = "This amount cannot be paid in Stars. Please pay with crypto."
# Pre-checkout refusals: Telegram shows them to the buyer in the payment sheet.
PRECHECKOUT_UNKNOWN = "This invoice is not valid any more. Please pick a plan again with /start."
PRECHECKOUT_NOT_YOURS = "This invoice was made for another Telegram account. Please pick a plan with /start."
PRECHECKOUT_CLOSED = "This invoice was already paid or has expired. /status shows your access; /start to buy again."
PRECHECKOUT_PRICE = "The amount does not match this invoice. Please pick a plan again with /start."
PRECHECKOUT_BUSY = "We could not check this invoice right now. Please try again in a minute; nothing was charged."
PRECHECKOUT_RENEWS_ALREADY = (
    "You already have a Stars subscription to this channel that renews every 30 days. /status to manage it.")
STARS_RENEWS_ALREADY = (
    "You already have a Telegram Stars subscription to this channel that renews every 30 days, so a second one "
    "would charge you twice. /status manages it; crypto and the other plans are open to you.")
PRECHECKOUT_OFF = "Payments in Telegram Stars are switched off. Please pay with crypto via /start."


def stars_renewed(title: str, amount: int, ends_at: datetime) -> str:
    return (f"🔁 Your subscription to <b>{escape(title)}</b> renewed for {stars(amount)}. "
            f"Your access now runs until {date(ends_at)}.")


def reminder_renews(title: str, ends_at: datetime) -> str:
    return (f"🔁 Your access to <b>{escape(title)}</b> renews automatically on {date(ends_at)} with Telegram Stars. "
            "Nothing to do; /status to cancel the renewal.")


def renewal_button(title: str, canceled: bool) -> str:
    return f"▶️ Resume auto-renewal: {title}" if canceled else f"⏹ Cancel auto-renewal: {title}"


def renewal_status(canceled: bool) -> str:
    return " (auto-renewal off)" if canceled else " (renews automatically)"


def renewal_changed(title: str, canceled: bool, ends_at: datetime) -> str:
    if canceled:
        return (f"⏹ Auto-renewal of <b>{escape(title)}</b> is cancelled. Your access runs until {date(ends_at)}; "
                "/status to resume it before then.")
    return f"▶️ Auto-renewal of <b>{escape(title)}</b> is on again: it renews on {date(ends_at)}."


RENEWAL_NONE = "There is no Stars subscription to change for this channel. /status shows your subscriptions."
RENEWAL_FAILED = "Telegram did not accept the change right now. Nothing changed; please try again in a minute."
STARS_PAYMENT_REFUSED = (
    "We received your Stars payment but could not match it to your order. The operator has been told and will "
    "sort it out (or refund it); /paysupport explains how to reach them."
)
STARS_PAYMENT_DELAYED = (
    "✅ Telegram has taken your payment. We could not record it this very minute; your access follows "
    "automatically within a few minutes. Nothing else to do."
)
