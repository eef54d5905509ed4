"""Synthetic customer-support tickets for an online store ("Northwind"), one file per day.

Deterministic: the same date and row count always give the same rows (seeded by the date; the
options draw from their own streams, so the rows they leave alone are the clean day's rows).
The text is varied on purpose: one-word pings and long e-mail threads (some far past 256
tokens), empty strings, accented names, Spanish/French/German and Japanese/Chinese tickets, and
emoji. Options make bad data for the quality gates: `corrupt_rate` (null text, duplicate ticket
ids) and `drift` (that share of tickets moves to a new product line, the "Northwind Home" smart
thermostat, mostly written in German and Spanish).
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

CHANNELS = ("email", "chat", "phone", "web", "app", "social")
CATEGORIES = ("billing", "login", "shipping", "returns", "technical", "account", "cancellation", "feedback")
_CHANNEL_WEIGHT = np.array([30, 25, 10, 20, 10, 5], dtype=float)
_CATEGORY_WEIGHT = np.array([18, 12, 20, 14, 14, 8, 6, 8], dtype=float)
# Ticket volume by hour of day (UTC): quiet nights, busy office hours.
_HOUR_WEIGHT = np.array([2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 10, 10, 10, 9, 9, 8, 7, 6, 5, 4, 3, 2],
                        dtype=float)

TICKETS_SCHEMA = pa.schema([
    ("ticket_id", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("channel", pa.string()),
    ("category", pa.string()),
    ("text", pa.string()),
])

_NAMES = ("Anna", "José", "Zoë", "François", "Björn", "Siobhán", "Mohammed", "Priya", "Chen Wei",
          "Łukasz", "Inès", "Kenji", "Olúwásẹ̀un", "Maria", "Tom", "Søren", "Ayşe", "Dmitri")
_ITEMS = ("wireless headphones", "running shoes", "coffee grinder", "yoga mat", "phone case",
          "desk lamp", "backpack", "water bottle", "winter jacket", "bluetooth speaker",
          "kitchen knife set", "gaming mouse", "office chair", "electric toothbrush", "sunglasses")
_COURIERS = ("DHL", "UPS", "the courier", "FedEx", "Royal Mail", "La Poste")
_GREETINGS = ("Hi,", "Hello,", "Hi there,", "Dear support team,", "Good morning,", "Hey,", "To whom it may concern,")
_CLOSINGS = ("Thanks.", "Thank you!", "Regards, {name}", "Best, {name}", "Cheers", "Please help.",
             "Looking forward to your answer.", "Thanks in advance, {name}")
_EMOJI = ("😡", "🙏", "👍", "😢", "🤔", "📦", "💳", "🔥", "😤", "🙂", "⭐⭐⭐⭐⭐", "🤬🤬")

_ISSUES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for order {order}, {amount} each time.",
        "My card was billed {amount} but the order {order} shows as unpaid.",
        "Why is there an extra fee of {amount} on my last invoice?",
        "The discount code was not applied to order {order}, I paid {amount} too much.",
        "I need a VAT invoice for order {order} for my company.",
        "My payment keeps getting declined although the card works everywhere else.",
    ),
    "login": (
        "I can't log in to my account, it says my password is wrong.",
        "The password reset email never arrives.",
        "Two-factor code is not accepted, I tried {days} times.",
        "My account got locked after I changed my phone number.",
        "Login with Google just spins forever on the app.",
    ),
    "shipping": (
        "Where is my order {order}? It was supposed to arrive {days} days ago.",
        "Tracking for order {order} has not updated since it left the warehouse.",
        "{courier} says the {item} was delivered but nothing is at my door.",
        "Can I change the delivery address for order {order}?",
        "The package arrived damaged, the box was crushed and the {item} is scratched.",
        "Only half of order {order} arrived, the {item} is missing.",
    ),
    "returns": (
        "I want to return the {item} from order {order}, it does not fit.",
        "I sent the {item} back {days} days ago and still have no refund.",
        "The return label does not work at the {courier} drop-off.",
        "Can I exchange the {item} for a different size?",
        "The refund for order {order} was {amount} short.",
    ),
    "technical": (
        "The app crashes every time I open the checkout page.",
        "Product pages load forever on my phone, on wifi and on 4G.",
        "I get an error 500 when I try to add the {item} to my basket.",
        "The search returns nothing for '{item}' although you sell it.",
        "Push notifications arrive in the middle of the night, how do I turn them off?",
        "The website shows prices in the wrong currency.",
    ),
    "account": (
        "Please update the email address on my account.",
        "How do I delete my account and all my data (GDPR)?",
        "I have two accounts by mistake, can you merge them?",
        "My saved addresses disappeared from my profile.",
        "I want to unsubscribe from all marketing emails.",
    ),
    "cancellation": (
        "Please cancel order {order}, I ordered the {item} by mistake.",
        "I want to cancel my Northwind Plus membership and stop the monthly {amount}.",
        "Cancel my order {order} please, it is taking too long.",
        "How do I cancel a pre-order?",
    ),
    "feedback": (
        "Great service, the {item} arrived a day early!",
        "Your delivery driver was very friendly, thank you.",
        "The new app design is confusing, I can't find my orders anymore.",
        "Please bring back the old size guide, it was much better.",
        "Love the {item}, would be nice to have more colours.",
    ),
}
_DETAILS = (
    "I already tried restarting the app and clearing the cache.",
    "This is the second time this happens.",
    "I have been a customer for {days} years and this is not acceptable.",
    "My order number is {order}.",
    "I called yesterday but nobody picked up.",
    "The chat bot was not helpful at all.",
    "I need this sorted before the weekend.",
    "Attached is a screenshot of the error.",
    "I am using an iPhone 14 with the latest update.",
    "It worked fine last week.",
    "Please reply by email, not by phone.",
    "My neighbour had the same problem.",
)
_SHORT = ("refund??", "still waiting", "help", "order {order}", "where is my package", "cancel pls",
          "login broken", "thx", "???", "call me back", "wrong item", "no refund yet")
_FOREIGN = (
    "Hola, mi pedido {order} no ha llegado todavía. ¿Dónde está mi paquete?",
    "Bonjour, j'ai été débité deux fois pour la commande {order}. Merci de me rembourser.",
    "Hallo, ich möchte die {item} zurückschicken, aber das Etikett funktioniert nicht.",
    "Olá, não consigo entrar na minha conta desde ontem.",
    "Ciao, il mio ordine {order} è arrivato danneggiato.",
    "注文{order}がまだ届いていません。いつ届きますか？",
    "我的订单{order}付款了两次，请退款。",
    "ログインできません。パスワードをリセットしてもメールが来ません。",
    "配送状态一直没有更新，请帮我查一下。",
)
_LOG_LINES = (
    "2026-01-{day:02d}T10:{minute:02d}:13Z ERROR checkout.PaymentService - timeout after 30000 ms "
    "(gateway=adyen, attempt={attempt}, order={order})",
    "    at com.northwind.checkout.PaymentClient.authorize(PaymentClient.java:{line})",
    "    at com.northwind.checkout.CheckoutController.submit(CheckoutController.java:{line})",
    "WARN  basket.Sync - stale basket version {attempt} for session 9f{line}ab, retrying",
)
_THREAD = (
    "\n\n-----Original Message-----\nFrom: Northwind Support <support@northwind.example>\n"
    "Subject: Re: [Ticket] {subject}\n\nDear {name}, thank you for contacting Northwind. We are sorry "
    "for the inconvenience. Our team is looking into your request regarding order {order} and "
    "will get back to you within {days} business days. In the meantime, please make sure that "
    "the shipping address and payment details in your account are correct, and check your spam "
    "folder for our emails. Kind regards, the Northwind Customer Care team\n"
)
# Drift: a new product line (a smart thermostat), mostly in German and Spanish.
_DRIFT = (
    "Das Northwind Home Thermostat verliert ständig die WLAN-Verbindung nach dem Firmware-Update {version}.",
    "Mein Thermostat heizt nachts auf 28 Grad, obwohl der Zeitplan 18 Grad sagt.",
    "Die Kopplung des Thermostats mit der Heizungssteuerung schlägt bei Schritt {step} fehl.",
    "Der Energiebericht in der Home-App zeigt seit Tagen keine Verbrauchsdaten mehr an.",
    "El termostato Northwind Home no se conecta al wifi después de la actualización {version}.",
    "La calefacción no se apaga aunque el termostato marca {temp} grados.",
    "No puedo emparejar el sensor de temperatura con el termostato, error E{step}.",
    "The Northwind Home thermostat firmware {version} bricked my device, the display stays black.",
    "Geofencing turns the heating on when nobody is at home, the thermostat ignores the away mode.",
    "Die Batterie des Raumsensors ist nach {step} Wochen leer, ist das normal?",
)
_DRIFT_DETAILS = (
    "Ich habe das Gerät bereits zurückgesetzt.", "Der Router ist eine FritzBox 7590.",
    "Ya reinicié el router y el termostato.", "La app muestra 'dispositivo sin conexión'.",
    "The boiler is a Vaillant ecoTEC.", "Bitte schnell helfen, es ist kalt in der Wohnung.",
)


def _pick(options: Sequence[str], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]


def _fill(template: str, u: np.ndarray) -> str:
    """Fill a template's slots from the row's uniform draws (unused slots are ignored)."""
    return template.format(
        order=f"NW-{int(u[0] * 9_000_000) + 1_000_000}",
        amount=f"€{5 + u[1] * 295:.2f}" if u[1] < 0.5 else f"${5 + u[1] * 295:.2f}",
        item=_pick(_ITEMS, u[2]), days=2 + int(u[3] * 12), courier=_pick(_COURIERS, u[4]),
        name=_pick(_NAMES, u[5]), version=f"{1 + int(u[6] * 3)}.{int(u[7] * 20)}",
        step=1 + int(u[8] * 7), temp=16 + int(u[3] * 14), subject="Your request",
        day=1 + int(u[6] * 28), minute=int(u[7] * 60), attempt=1 + int(u[8] * 5), line=100 + int(u[4] * 800),
    )


def _clean_text(category: str, channel: str, u: np.ndarray) -> str:
    """One ticket's text. `u` holds the row's uniform draws (see `_DRAWS`)."""
    kind = u[10]
    if kind < 0.01:
        return ""
    if kind < 0.07:
        text = _fill(_pick(_SHORT, u[11]), u)
    elif kind < 0.11:
        text = _fill(_pick(_FOREIGN, u[11]), u)
    else:
        issue = _fill(_pick(_ISSUES[category], u[11]), u)
        issue = issue[0].upper() + issue[1:]
        if channel in ("chat", "social", "app"):
            parts = [issue] + ([_fill(_pick(_DETAILS, u[12]), u)] if u[13] < 0.4 else [])
        elif channel == "phone":
            parts = [f"Customer {_pick(_NAMES, u[5])} called: {issue[0].lower()}{issue[1:]}",
                     _fill(_pick(_DETAILS, u[12]), u), "Agent promised a call back."]
        else:
            details = [_fill(_pick(_DETAILS, u[12 + i]), u) for i in range(1 + int(u[13] * 4))]
            parts = [_pick(_GREETINGS, u[14]), issue, *details, _pick(_CLOSINGS, u[15]).format(name=_pick(_NAMES, u[5]))]
        text = " ".join(parts)
        if channel in ("email", "web") and kind > 0.955:  # long: a pasted log and/or quoted thread
            logs = "\n".join(_fill(_pick(_LOG_LINES, u[16 + (i % 4)]), u) for i in range(8 + int(u[17] * 20)))
            text = f"{text}\n\nHere is what the app logged:\n{logs}"
            if u[18] < 0.6:
                text += _THREAD.format(subject=issue[:40], name=_pick(_NAMES, u[5]),
                                       order=f"NW-{int(u[0] * 9_000_000) + 1_000_000}", days=2 + int(u[3] * 5))
    if u[19] < 0.08:
        text = f"{text} {_pick(_EMOJI, u[20])}"
    return text


def _drift_text(u: np.ndarray) -> str:
    text = _fill(_pick(_DRIFT, u[0]), u[1:])
    if u[12] < 0.6:
        text = f"{text} {_pick(_DRIFT_DETAILS, u[13])}"
    return text


_DRAWS = 24


def generate_tickets(date: str, rows: int, corrupt_rate: float = 0.0, drift: float = 0.0,
                     drop_column: str | None = None) -> pa.Table:
    """Make `rows` support tickets for `date` (YYYY-MM-DD), ordered by `created_at`.

    `drop_column` leaves a column out (a bad file, for the file-level checks).
    """
    day = dt.date.fromisoformat(date)
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= corrupt_rate <= 1.0 or not 0.0 <= drift <= 1.0:
        raise ValueError("corrupt_rate and drift must lie in [0, 1]")
    seed = zlib.crc32(f"support_tickets/{date}".encode())
    base, drift_rng, corrupt_rng = (np.random.default_rng([seed, k]) for k in range(3))

    seconds = (base.choice(24, size=rows, p=_HOUR_WEIGHT / _HOUR_WEIGHT.sum()) * 3600
               + base.integers(0, 3600, size=rows))
    micros = np.sort(seconds.astype(np.int64) * 1_000_000 + base.integers(0, 1_000_000, size=rows))
    channel = base.choice(len(CHANNELS), size=rows, p=_CHANNEL_WEIGHT / _CHANNEL_WEIGHT.sum())
    category = base.choice(len(CATEGORIES), size=rows, p=_CATEGORY_WEIGHT / _CATEGORY_WEIGHT.sum())
    draws = base.random((rows, _DRAWS))
    texts: list[str | None] = [
        _clean_text(CATEGORIES[c], CHANNELS[ch], u) for c, ch, u in zip(category, channel, draws, strict=True)
    ]

    if drift > 0 and rows:
        moved = np.flatnonzero(drift_rng.random(rows) < drift)
        drift_draws = drift_rng.random((rows, _DRAWS))
        for row in moved.tolist():
            texts[row] = _drift_text(drift_draws[row])
            category[row] = CATEGORIES.index("technical")

    ids = [f"tk-{day:%Y%m%d}-{i:07d}" for i in range(rows)]
    if corrupt_rate > 0 and rows:
        bad = np.flatnonzero(corrupt_rng.random(rows) < corrupt_rate)
        kinds = corrupt_rng.integers(0, 2, size=len(bad))
        for row, kind in zip(bad.tolist(), kinds.tolist(), strict=True):
            if kind == 0 or row == 0:
                texts[row] = None
            else:
                ids[row] = ids[row - 1]

    start = np.datetime64(dt.datetime.combine(day, dt.time()), "us")
    columns = [
        pa.array(ids, pa.string()),
        pa.array(start + micros.astype("timedelta64[us]"), pa.timestamp("us", tz="UTC")),
        pa.array(np.asarray(CHANNELS, dtype=object)[channel], pa.string()),
        pa.array(np.asarray(CATEGORIES, dtype=object)[category], pa.string()),
        pa.array(texts, pa.string()),
    ]
    table = pa.Table.from_arrays(columns, schema=TICKETS_SCHEMA)
    if drop_column:
        if drop_column not in table.column_names:
            raise ValueError(f"drop_column {drop_column!r} is not a column: {table.column_names}")
        table = table.drop_columns([drop_column])
    return table


def landing_name(date: str) -> str:
    """The landing file name of a day."""
    return f"tickets_{dt.date.fromisoformat(date):%Y-%m-%d}.parquet"


def write_landing(date: str, rows: int, landing_dir: Path, *, corrupt_rate: float = 0.0,
                  drift: float = 0.0, drop_column: str | None = None) -> Path:
    """Generate one day into `landing_dir/tickets_<date>.parquet` atomically (temp file + rename)."""
    import pyarrow.parquet as pq

    from batch_inference.validation import validate_partition_key

    date = validate_partition_key(date)
    table = generate_tickets(date, rows, corrupt_rate=corrupt_rate, drift=drift, drop_column=drop_column)
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    final = landing_dir / landing_name(date)
    tmp = landing_dir / f".{final.name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(final)
    return final
