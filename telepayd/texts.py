"""Every text a buyer, an owner or the operator's bot users see, in one place below every layer that sends
one (handlers, money rules, outbox, sweeper). HTML parse mode: anything from users or owners is escaped.

English is the source. ``Texts`` speaks one language through a ``gettext`` translation (telepayd/locale,
see languages.py); the handlers pick one per update, the money rules and the outbox per recipient. Every
message is marked ``self._`` / ``self.ngettext`` so that ``make catalogs`` extracts it; placeholders are
named (``{title}``) so that a translation may put them in another order."""

from __future__ import annotations

import gettext
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


def date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class Texts:
    """The texts in one language."""

    def __init__(self, language: str, translation: gettext.NullTranslations) -> None:
        self.language = language
        self._ = translation.gettext
        self.ngettext = translation.ngettext
        _ = self._
        self.START = _("👋 Welcome! Pick a channel to see what it offers:")
        self.NO_CHANNELS = _("There is nothing for sale here yet. Please come back later.")
        self.HELP = _(
            "<b>How it works</b>\n"
            "1. /start and pick a channel, then a plan.\n"
            "2. Pay with crypto, or in Telegram Stars where the plan shows a ⭐ price (a 30-day plan in Stars renews "
            "every month until you cancel it in /status).\n"
            "3. I send you a personal join link once the payment is confirmed. It works for you only.\n\n"
            "/status shows your subscriptions, gets you a fresh join link and cancels or resumes a Stars renewal.\n"
            "Paid but no link after an hour? Send me the payment id from the payment page, or /status PAYMENT_ID.\n"
            "/redeem CODE uses an access code. /language changes my language.\n"
            "/whoami shows your Telegram id (channel owners need it; /stats shows an owner their numbers).\n"
            "/paysupport: help with a payment. /terms: the terms of sale.\n"
            "/help shows this message."
        )
        self.CHANNEL_GONE = _("This channel is no longer available. /start shows what is.")
        self.STALE_BUTTON = _("That button is out of date. Here is the current list:")
        self.UNKNOWN_INPUT = _("I did not understand that. Use the buttons, or /start to begin again.")
        self.INVOICE_FAILED = _(
            "😕 The payment provider did not answer. Nothing was charged. Please press the plan again in a minute.")
        self.BUSY = _("Something went wrong on our side. Nothing was charged. Please try again in a minute.")
        self.STATUS_NONE = _("You have no subscriptions yet. /start to pick a channel.")
        self.LINK_NOT_ACTIVE = _("Your access to this channel has ended, so there is no join link to give. Renew it here:")
        self.TOO_FAST = _("One moment, please: I am still answering your previous taps.")
        self.TOO_MANY_INVOICES = _(
            "You have opened many invoices in the last hour. Please pay one of them, or try again in a while.")
        self.LINK_QUEUED = _("🔗 A new personal join link is on its way.")
        self.PAGE_NEXT = _("Next ▶")
        self.PAGE_PREVIOUS = _("◀ Back")
        self.BACK_TO_LIST = _("◀ All channels")
        self.SUBSCRIBE = _("🔓 Subscribe")
        self.DONATE = _("💝 Donate")
        self.RENEW = _("🔁 Renew")
        self.KEYPAD_EXPIRED = _("⌛ This donation keypad expired. Use the channel's Donate button to start again.")
        self.KEYPAD_CANCELLED = _("Donation cancelled. Nothing was charged.")
        self.KEYPAD_STALE = _("This keypad is no longer active.")
        self.KEYPAD_LIMIT = _("At most two decimals and four digits before the point.")
        # A buyer's "I paid, but have no access" (handlers/payment_check.py).
        self.PAID_BUTTON = _("💬 I paid, but have no access")
        self.PAID_ASK = _(
            "Send me the <b>payment id</b> shown on NowPayments' payment page (a number like <code>5077125123</code>), "
            "as a message of its own. I will check it with NowPayments.")
        self.CHECK_BUSY = _("Many payments are being checked right now. Please send the payment id again in a minute.")
        self.CHECK_UNREACHABLE = _(
            "NowPayments cannot be reached right now, so I could not check. Nothing is lost: please send the payment "
            "id again in a few minutes.")
        # Telegram Stars (handlers/stars.py, stars.py).
        self.PAY_CHOOSE = _("How would you like to pay?")
        self.STARS_INVOICE_FAILED = _(
            "😕 Telegram did not create the invoice. Nothing was charged. Please try again in a minute.")
        self.STARS_OFF = _("Payments in Telegram Stars are not available right now. Please pay with crypto.")
        self.STARS_DONATION_OUT_OF_RANGE = _("This amount cannot be paid in Stars. Please pay with crypto.")
        # Pre-checkout refusals: Telegram shows them to the buyer in the payment sheet.
        self.PRECHECKOUT_UNKNOWN = _("This invoice is not valid any more. Please pick a plan again with /start.")
        self.PRECHECKOUT_NOT_YOURS = _("This invoice was made for another Telegram account. Please pick a plan with /start.")
        self.PRECHECKOUT_CLOSED = _(
            "This invoice was already paid or has expired. /status shows your access; /start to buy again.")
        self.PRECHECKOUT_PRICE = _("The amount does not match this invoice. Please pick a plan again with /start.")
        self.PRECHECKOUT_BUSY = _(
            "We could not check this invoice right now. Please try again in a minute; nothing was charged.")
        self.PRECHECKOUT_RENEWS_ALREADY = _(
            "You already have a Stars subscription to this channel that renews every 30 days. /status to manage it.")
        self.STARS_RENEWS_ALREADY = _(
            "You already have a Telegram Stars subscription to this channel that renews every 30 days, so a second "
            "one would charge you twice. /status manages it; crypto and the other plans are open to you.")
        self.PRECHECKOUT_OFF = _("Payments in Telegram Stars are switched off. Please pay with crypto via /start.")
        self.RENEWAL_NONE = _(
            "There is no Stars subscription to change for this channel. /status shows your subscriptions.")
        self.RENEWAL_FAILED = _(
            "Telegram did not accept the change right now. Nothing changed; please try again in a minute.")
        self.STARS_PAYMENT_REFUSED = _(
            "We received your Stars payment but could not match it to your order. The operator has been told and "
            "will sort it out (or refund it); /paysupport explains how to reach them.")
        self.STARS_PAYMENT_DELAYED = _(
            "✅ Telegram has taken your payment. We could not record it this very minute; your access follows "
            "automatically within a few minutes. Nothing else to do.")
        # Languages (/language).
        self.LANGUAGE_CHOOSE = _("Choose the language I speak to you in:")
        self.LANGUAGE_SET = _("Done: I speak English to you from now on.")
        # Trials and access codes.
        self.TRIAL_TAKEN_BEFORE = _(
            "The free trial of this channel is once per person, and you have had it or a subscription there already. "
            "Pick a plan to continue:")
        self.REDEEM_ASK = _("Send /redeem and the code in one message, like <code>/redeem SUMMER7K3M9Q2X</code>.")
        self.CODE_WRONG = _("That code does not work. Please check it and try again.")
        self.CODE_USED_UP = _("That code has been used up.")
        self.CODE_EXPIRED = _("That code is no longer valid.")
        self.CODE_ALREADY = _("You have already used this code.")
        self.CODE_TOO_MANY = _("Too many wrong codes. Please wait a few minutes before trying again.")
        # The owner's numbers (/stats).
        self.STATS_NOT_OWNER = _("/stats is for channel owners: it shows the numbers of the channels you own. "
                                 "You own none here.")
        self.STATS_CHOOSE = _("Which channel?")
        # Command menu and description (setMyCommands / setMyDescription).
        self.COMMANDS = {
            "start": _("Pick a channel and a plan"),
            "status": _("Your subscriptions and join links"),
            "redeem": _("Use an access code"),
            "language": _("Change the language"),
            "stats": _("Your channels' numbers (for owners)"),
            "help": _("How it works"),
            "paysupport": _("Help with a payment"),
            "terms": _("Terms of sale"),
        }
        self.BOT_DESCRIPTION = _(
            "I sell access to private Telegram channels. Pay with crypto or Telegram Stars and get a personal "
            "join link that works for you only.")

    def day_count(self, days: int) -> str:
        return self.ngettext("{days} day", "{days} days", days).format(days=days)

    def whoami(self, user_id: int) -> str:
        return self._(
            "Your Telegram id is <code>{user_id}</code>.\n"
            "Channel owners: this is the <code>--owner</code> of <code>telepayd channels add</code>. To find a "
            "channel's id, forward me any post of that channel."
        ).format(user_id=user_id)

    def forwarded_from(self, title: str, chat_id: int) -> str:
        return self._("That post comes from <b>{title}</b>, whose id is <code>{chat_id}</code>.").format(
            title=escape(title), chat_id=chat_id)

    def link_too_soon(self, minutes: int) -> str:
        return self.ngettext(
            "A new join link can be issued once every 10 minutes. Please try again in {minutes} minute.",
            "A new join link can be issued once every 10 minutes. Please try again in {minutes} minutes.",
            minutes).format(minutes=minutes)

    def channel_button(self, title: str, lowest: Decimal | None) -> str:
        # Button labels are plain text (no HTML), so no escaping here.
        if lowest is None:
            return title
        return self._("{title} — from {price}").format(title=title, price=money(lowest))

    def channel_details(self, title: str, description: str) -> str:
        text = f"<b>{escape(title)}</b>"
        if description:
            text += f"\n{escape(description)}"
        return text + "\n\n" + self._("Choose a plan:")

    def tier_button(self, price: Decimal, days: int) -> str:
        return f"{money(price)} · {self.day_count(days)}"

    def trial_button(self, days: int) -> str:
        return self.ngettext("🎁 Try {days} day free", "🎁 Try {days} days free", days).format(days=days)

    def invoice_ready(self, title: str, price: Decimal, days: int) -> str:
        return self._(
            "🧾 <b>{title}</b>: {days} of access for {price}.\n"
            "Pay with the button below. Your personal join link arrives here once the payment is confirmed."
        ).format(title=escape(title), days=self.day_count(days), price=money(price))

    def discount_applied(self, list_price: Decimal, price: Decimal, currency: str) -> str:
        return self._("🎟 Your code's discount is applied: {list_price} → {price}.").format(
            list_price=money(list_price, currency), price=money(price, currency))

    def pay_button(self, price: Decimal) -> str:
        return self._("Pay {price}").format(price=money(price))

    def join_link(self, title: str, link: str, hours: int, ends_at: datetime) -> str:
        return self._(
            "✅ Payment confirmed. Welcome to <b>{title}</b>!\n"
            "Your personal join link (valid {hours} h, it works for you only):\n{link}\n"
            "Your access runs until {ends_at}."
        ).format(title=escape(title), hours=hours, link=escape(link), ends_at=date(ends_at))

    def trial_link(self, title: str, link: str, hours: int, ends_at: datetime) -> str:
        return self._(
            "🎁 Your free trial of <b>{title}</b> has started!\n"
            "Your personal join link (valid {hours} h, it works for you only):\n{link}\n"
            "Your access runs until {ends_at}."
        ).format(title=escape(title), hours=hours, link=escape(link), ends_at=date(ends_at))

    def code_link(self, title: str, link: str, hours: int, ends_at: datetime) -> str:
        return self._(
            "🎟 Your code is accepted. Welcome to <b>{title}</b>!\n"
            "Your personal join link (valid {hours} h, it works for you only):\n{link}\n"
            "Your access runs until {ends_at}."
        ).format(title=escape(title), hours=hours, link=escape(link), ends_at=date(ends_at))

    def fresh_join_link(self, title: str, link: str, hours: int) -> str:
        return self._("🔗 Your new join link for <b>{title}</b> (valid {hours} h, for you only):\n{link}").format(
            title=escape(title), hours=hours, link=escape(link))

    def partially_paid(self, title: str, paid: Decimal | None, pay_currency: str, price: Decimal) -> str:
        if paid is None:
            return self._(
                "⏳ Your payment for <b>{title}</b> is incomplete: part of the amount arrived, the price is {price}.\n"
                "Please send the missing amount to the same address; access starts once it is complete."
            ).format(title=escape(title), price=money(price))
        return self._(
            "⏳ Your payment for <b>{title}</b> is incomplete: {paid} arrived, the price is {price}.\n"
            "Please send the missing amount to the same address; access starts once it is complete."
        ).format(title=escape(title), paid=f"{paid} {escape(pay_currency.upper())}", price=money(price))

    def payment_failed(self, title: str) -> str:
        return self._("❌ Your payment for <b>{title}</b> failed. Nothing was granted; /start to try again.").format(
            title=escape(title))

    def payment_expired(self, title: str) -> str:
        return self._("⌛ Your invoice for <b>{title}</b> expired unpaid. /start to get a new one.").format(
            title=escape(title))

    def owner_payment(self, title: str, kind: str, price: Decimal, days: int | None, user_id: int,
                      username: str | None, currency: str = "usd", renewal: bool = False) -> str:
        who = f"@{escape(username)}" if username else self._("user {user_id}").format(user_id=user_id)
        values = {"title": escape(title), "price": money(price, currency), "who": who}
        if kind == "subscription" and days:
            values["days"] = self.day_count(days)
            if renewal:
                return self._("💰 New payment in <b>{title}</b>: {price} ({days} subscription renewed) from {who}.").format(**values)
            return self._("💰 New payment in <b>{title}</b>: {price} ({days} subscription) from {who}.").format(**values)
        return self._("💰 New payment in <b>{title}</b>: {price} (donation) from {who}.").format(**values)

    def owner_refund(self, title: str, price: Decimal, user_id: int, days_taken_back: int | None = None,
                     currency: str = "usd") -> str:
        text = self._("↩️ A payment of {price} in <b>{title}</b> by user {user_id} was refunded.").format(
            price=money(price, currency), title=escape(title), user_id=user_id)
        if days_taken_back:
            return text + " " + self.ngettext("{days} day of access was taken back.", "{days} days of access were taken back.",
                                              days_taken_back).format(days=days_taken_back)
        return text

    def owner_trial(self, title: str, days: int, user_id: int, username: str | None) -> str:
        who = f"@{escape(username)}" if username else self._("user {user_id}").format(user_id=user_id)
        return self._("🎁 {who} started a free trial of <b>{title}</b> ({days}).").format(
            who=who, title=escape(title), days=self.day_count(days))

    def status_line(self, title: str, ends_at: datetime, active: bool) -> str:
        if active:
            return self._("• <b>{title}</b>: active until {ends_at}").format(title=escape(title), ends_at=date(ends_at))
        return self._("• <b>{title}</b>: ended {ends_at}").format(title=escape(title), ends_at=date(ends_at))

    def new_link_button(self, title: str) -> str:
        return self._("🔗 New join link: {title}").format(title=title)

    def _who(self, user_id: object, username: object) -> str:
        if isinstance(username, str) and username:
            return f"@{escape(username.lstrip('@'))}"
        if user_id is not None:
            return self._("user {user_id}").format(user_id=escape(str(user_id)))
        return self._("someone")

    def _amount(self, amount: object, currency: object) -> str:
        if amount is None:
            return self._("an amount")
        code = escape(str(currency).upper()) if currency else "USD"
        return f"{escape(str(amount))} {code}"

    def owner_notification(self, title: str, payment_type: str, data: dict) -> str:
        """A Cloud Run payment notification for the channel's owner; every value comes from outside: escaped."""
        values = {"title": escape(title), "who": self._who(data.get("user_id"), data.get("username")),
                  "amount": self._amount(data.get("amount"), data.get("currency"))}
        if payment_type == "subscription":
            days = data.get("duration_days")
            if isinstance(days, int) and not isinstance(days, bool) and days > 0:
                plan = ", " + self.day_count(days)
            else:
                plan = ", " + self._("{days} days").format(days=escape(str(days))) if days else ""
            tier = ", " + self._("tier {tier}").format(tier=escape(str(data["tier"]))) if data.get("tier") is not None else ""
            return self._("💰 New subscription in <b>{title}</b>: {amount}{plan} from {who}.").format(
                plan=plan + tier, **values)
        if payment_type == "donation":
            return self._("🎁 New donation to <b>{title}</b>: {amount} from {who}.").format(**values)
        return self._("🔔 Payment notification (<i>{kind}</i>) for <b>{title}</b>: {amount} from {who}.").format(
            kind=escape(payment_type), **values)

    def channel_post(self, title: str, description: str, lowest: Decimal | None) -> str:
        text = f"<b>{escape(title)}</b>"
        if description:
            text += f"\n{escape(description)}"
        if lowest is not None:
            text += "\n\n" + self._("Access from {price}. Subscribe or support the channel below.").format(price=money(lowest))
        return text

    def refunded_buyer(self, title: str, price: Decimal, ends_at: datetime | None, taken_back: bool,
                       currency: str = "usd") -> str:
        values = {"price": money(price, currency), "title": escape(title)}
        if taken_back:
            text = self._("↩️ Your payment of {price} for <b>{title}</b> was refunded, so the time it bought that was "
                          "still ahead is taken back.").format(**values)
            if ends_at is None:
                return text + " " + self._("Your access has ended.")
            return text + " " + self._("Your access now ends on {ends_at}.").format(ends_at=date(ends_at))
        text = self._("↩️ Your payment of {price} for <b>{title}</b> was refunded.").format(**values)
        if ends_at is None:
            return text
        return text + " " + self._("Your access ends on {ends_at}.").format(ends_at=date(ends_at))

    def refunded_donation(self, title: str, price: Decimal, currency: str = "usd") -> str:
        return self._("↩️ Your donation of {price} to <b>{title}</b> was refunded.").format(
            price=money(price, currency), title=escape(title))

    def reminder(self, title: str, ends_at: datetime) -> str:
        return self._("⏰ Your access to <b>{title}</b> ends on {ends_at}. Renew to keep it.").format(
            title=escape(title), ends_at=date(ends_at))

    def removed(self, title: str) -> str:
        return self._("Your access to <b>{title}</b> has ended. You can come back at any time:").format(title=escape(title))

    def lost_rights(self, title: str) -> str:
        return self._(
            "⚠️ The bot is no longer an administrator who can invite users in the closed channel of <b>{title}</b>. "
            "Paying users cannot get in until you make it one again."
        ).format(title=escape(title))

    def keypad(self, title: str, amount: str, minimum: Decimal, maximum: Decimal) -> str:
        return self._(
            "💝 Donate to <b>{title}</b>\n\n"
            "<code>$ {amount}</code>\n\n"
            "Type an amount from {minimum} to {maximum}, then ✅."
        ).format(title=escape(title), amount=escape(amount or "0"), minimum=money(minimum), maximum=money(maximum))

    def keypad_refused(self, amount: Decimal, minimum: Decimal, maximum: Decimal) -> str:
        if amount < minimum:
            return self._("The minimum donation is {amount}.").format(amount=money(minimum))
        return self._("The maximum donation is {amount}.").format(amount=money(maximum))

    def donation_invoice(self, title: str, amount: Decimal) -> str:
        return self._("🧾 Donation of {amount} to <b>{title}</b>.\nPay with the button below. Thank you!").format(
            amount=money(amount), title=escape(title))

    def open_order_line(self, title: str, price: Decimal, created_at: datetime) -> str:
        return self._("• <b>{title}</b>: {price} invoice of {created_at}, waiting for payment").format(
            title=escape(title), price=money(price), created_at=date(created_at))

    def check_too_often(self, minutes: int) -> str:
        return self.ngettext("You have checked several payments just now. Please try again in {minutes} minute.",
                             "You have checked several payments just now. Please try again in {minutes} minutes.",
                             minutes).format(minutes=minutes)

    def check_not_found(self, payment_id: int) -> str:
        return self._("NowPayments knows no payment <code>{payment_id}</code>. Please check the number on the payment "
                      "page (Payment ID) and send it again.").format(payment_id=payment_id)

    def check_other_order(self, payment_id: int) -> str:
        return self._("Payment <code>{payment_id}</code> is for another order, not one of yours. Nothing was changed.").format(
            payment_id=payment_id)

    def check_refused(self, payment_id: int) -> str:
        return self._("Payment <code>{payment_id}</code> cannot be applied to its order as it is. The operator has been "
                      "told and will look into it.").format(payment_id=payment_id)

    def check_waiting(self, payment_id: int) -> str:
        return self._("NowPayments has not received the money of payment <code>{payment_id}</code> yet. If you sent it, "
                      "it is applied as soon as it arrives; if not, please pay from the payment page.").format(
            payment_id=payment_id)

    def check_donation_received(self, payment_id: int) -> str:
        return self._("✅ Payment <code>{payment_id}</code> is complete: your donation has reached the channel. "
                      "Thank you!").format(payment_id=payment_id)

    def check_granted(self, payment_id: int) -> str:
        return self._("✅ Payment <code>{payment_id}</code> is complete. Your access is granted: your join link is on "
                      "its way.").format(payment_id=payment_id)

    def check_already_granted(self, payment_id: int) -> str:
        return self._("Payment <code>{payment_id}</code> was already applied and your access granted. /status gets you "
                      "a fresh join link.").format(payment_id=payment_id)

    def payment_status(self, status: str) -> str:
        """A NowPayments status as the buyer reads it (one we do not know: as NowPayments wrote it, escaped)."""
        _ = self._
        known = {"waiting": _("waiting"), "confirming": _("confirming"), "confirmed": _("confirmed"),
                 "sending": _("sending"), "partially_paid": _("partially paid"), "failed": _("failed"),
                 "expired": _("expired"), "refunded": _("refunded")}
        return known.get(status) or escape(status.replace("_", " "))

    def check_confirming(self, payment_id: int, status: str) -> str:
        return self._("Payment <code>{payment_id}</code> is still {status} at NowPayments. You will get your join link "
                      "as soon as it is complete; there is nothing else to do.").format(
            payment_id=payment_id, status=self.payment_status(status))

    def check_partially_paid(self, payment_id: int) -> str:
        return self._("Payment <code>{payment_id}</code> is only partly paid. Please send the rest from the payment "
                      "page; your join link follows once it is complete.").format(payment_id=payment_id)

    def check_failed(self, payment_id: int, status: str) -> str:
        return self._("Payment <code>{payment_id}</code> {status} at NowPayments: no money arrived for it. /start to "
                      "begin a new order.").format(payment_id=payment_id, status=self.payment_status(status))

    def check_refunded(self, payment_id: int) -> str:
        return self._("Payment <code>{payment_id}</code> was refunded.").format(payment_id=payment_id)

    def pay_crypto_button(self, price: Decimal) -> str:
        return self._("Pay {price} (crypto)").format(price=money(price))

    def pay_stars_button(self, amount: int) -> str:
        return self._("Pay {price}").format(price=stars(amount))

    def tier_button_with_stars(self, price: Decimal, amount: int, days: int) -> str:
        return self._("{price} or {stars} · {days}").format(price=money(price), stars=stars(amount), days=self.day_count(days))

    def stars_invoice_ready(self, title: str, amount: int, days: int, renews: bool) -> str:
        values = {"title": escape(title), "days": self.day_count(days), "price": stars(amount)}
        if renews:
            return self._(
                "⭐ <b>{title}</b>: {days} of access for {price}. It renews every 30 days until you cancel it in /status.\n"
                "Pay with the button below. Your personal join link arrives here right after the payment."
            ).format(**values)
        return self._(
            "⭐ <b>{title}</b>: {days} of access for {price}.\n"
            "Pay with the button below. Your personal join link arrives here right after the payment."
        ).format(**values)

    def stars_donation_invoice(self, title: str, usd: Decimal, amount: int) -> str:
        return self._("⭐ Donation of {stars} (about {usd}) to <b>{title}</b>.\nPay with the button below. Thank you!").format(
            stars=stars(amount), usd=money(usd), title=escape(title))

    def donation_choose(self, title: str, usd: Decimal) -> str:
        return self._("💝 Donation of {usd} to <b>{title}</b>. How would you like to pay?").format(
            usd=money(usd), title=escape(title))

    def stars_invoice_title(self, title: str, days: int | None) -> str:
        """The invoice's title (plain text, at most 32 characters for Telegram)."""
        what = f", {self.day_count(days)}" if days else ""
        return (title[: 32 - len(what) - 1] + "…" if len(title) + len(what) > 32 else title) + what

    def stars_invoice_description(self, title: str, days: int | None, renews: bool) -> str:
        if days is None:
            return self._("A donation to {title}").format(title=title)[:255]
        if renews:
            return self._("{days} of access to {title}, renewed every 30 days until cancelled").format(
                days=self.day_count(days), title=title)[:255]
        return self._("{days} of access to {title}").format(days=self.day_count(days), title=title)[:255]

    def stars_renewed(self, title: str, amount: int, ends_at: datetime) -> str:
        return self._("🔁 Your subscription to <b>{title}</b> renewed for {price}. Your access now runs until {ends_at}.").format(
            title=escape(title), price=stars(amount), ends_at=date(ends_at))

    def reminder_renews(self, title: str, ends_at: datetime) -> str:
        return self._("🔁 Your access to <b>{title}</b> renews automatically on {ends_at} with Telegram Stars. "
                      "Nothing to do; /status to cancel the renewal.").format(title=escape(title), ends_at=date(ends_at))

    def renewal_button(self, title: str, canceled: bool) -> str:
        if canceled:
            return self._("▶️ Resume auto-renewal: {title}").format(title=title)
        return self._("⏹ Cancel auto-renewal: {title}").format(title=title)

    def renewal_status(self, canceled: bool) -> str:
        return " " + (self._("(auto-renewal off)") if canceled else self._("(renews automatically)"))

    def renewal_changed(self, title: str, canceled: bool, ends_at: datetime) -> str:
        if canceled:
            return self._("⏹ Auto-renewal of <b>{title}</b> is cancelled. Your access runs until {ends_at}; /status to "
                          "resume it before then.").format(title=escape(title), ends_at=date(ends_at))
        return self._("▶️ Auto-renewal of <b>{title}</b> is on again: it renews on {ends_at}.").format(
            title=escape(title), ends_at=date(ends_at))

    def code_discount(self, title: str, percent: int) -> str:
        return self._("🎟 Code accepted: your next plan of <b>{title}</b> gets a discount of {percent}%. Pick it below:").format(
            percent=percent, title=escape(title))

    def plan_name(self, tier: str) -> str:
        """A tier of the owner's numbers: its position ("1"), or "none" (a grant, a trial or a code)."""
        return self._("plan {number}").format(number=tier) if tier != "none" else self._("free (grant, trial, code)")

    def rail_name(self, rail: str) -> str:
        return {"nowpayments": self._("crypto"), "stars": self._("Stars")}.get(rail, self._("free (grant, trial, code)"))

    def stats(self, this, last) -> str:
        """An owner's numbers for one channel (store/reports.ChannelFigures for this month and the last)."""
        _ = self._
        total = sum(this.active_by_tier.values())
        lines = [f"📊 <b>{escape(this.title)}</b>", _("Active subscribers now: {total}").format(total=total)]
        if total:
            lines.append(_("By plan: {plans}").format(plans=", ".join(
                f"{self.plan_name(k)} {n}" for k, n in sorted(this.active_by_tier.items()) if n)))
            lines.append(_("By payment: {rails}").format(rails=", ".join(
                f"{self.rail_name(k)} {n}" for k, n in sorted(this.active_by_rail.items()) if n)))
        for figures in (this, last):
            revenue = ", ".join(f"{money(amount, currency)} ({self.rail_name(rail)})"
                                for (rail, currency), amount in sorted(figures.revenue.items()))
            lines += [
                "", f"<b>{figures.month_start:%Y-%m}</b>",
                _("New: {new}, renewed: {renewed}, ended: {churned}").format(
                    new=figures.new, renewed=figures.renewed, churned=figures.churned),
                _("Revenue: {amounts}").format(amounts=revenue or _("none")),
                _("Free trials: {taken} taken, {converted} became paid").format(
                    taken=figures.trials_taken, converted=figures.trials_converted),
                _("Codes redeemed: {count}").format(count=figures.codes_redeemed),
            ]
        return "\n".join(lines)


ENGLISH = Texts("en", gettext.NullTranslations())
