"""Where each owner's digest goes: addresses, placeholders, slugs (light: no model or
report import, so `ka-ml validate` can say which owners have no address of their own
without loading them).

A placeholder address (a domain reserved for examples, :func:`is_placeholder`, like the
default ``{slug}@example.com``) is nobody's mailbox: an owner's own address is the first
real one, else ``default_recipient`` stands in; a digest left with a placeholder is
written, named in the warnings, and never sent (:mod:`ka_ml.delivery.mail`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

import pandas as pd

from ka_ml.config import EMAIL_ADDRESS, DeliveryConfig

_ADDRESS = re.compile(EMAIL_ADDRESS)
# reserved for examples and tests (RFC 2606, RFC 6761): nobody's mailbox
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org")
PLACEHOLDER_TLDS = ("example", "invalid", "test", "localhost")
PLACEHOLDERS_TEXT = (
    "example.com/.net/.org, *.example, *.invalid, *.test and *.localhost are reserved for "
    "examples: nobody's mailbox"
)
ADDRESS_FIX = (
    "fill owner_email for their accounts, name them in delivery.recipients, set "
    "delivery.address_template to your company's pattern (e.g. '{slug}@yourcompany.com'), "
    "or set delivery.default_recipient to receive their digests"
)
# letters a slug spells out rather than strips (NFKD drops the umlaut's dots, and ß entirely)
_SPELLED_OUT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ẞ": "SS"}
)


def slugify(label: str) -> str:
    """A safe, readable file-name key: 'Anna Müller' -> 'anna.mueller' (never empty).

    German umlauts and ß are spelled out as German writes them without (ä -> ae, ß -> ss:
    'Jürgen Weiß' -> 'juergen.weiss', the form of a German company's addresses; dropping the
    dots gave 'jurgen.wei'), other accents are dropped ('François' -> 'francois').
    """
    spelled = unicodedata.normalize("NFC", label).translate(_SPELLED_OUT)
    ascii_ = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", ".", ascii_.lower()).strip(".")[:80].strip(".")
    return slug or "owner"


def is_address(value: str) -> bool:
    """A plain e-mail address (what an owner column sometimes already holds)."""
    return bool(_ADDRESS.match(value))


def is_placeholder(address: str) -> bool:
    """An address in a domain reserved for examples and tests (RFC 2606, RFC 6761):
    example.com/.net/.org and their subdomains, and any name under .example, .invalid,
    .test or .localhost. Nobody's mailbox: the default ``{slug}@example.com`` is one."""
    domain = address.rsplit("@", 1)[-1].strip().rstrip(".").lower()
    return domain.rsplit(".", 1)[-1] in PLACEHOLDER_TLDS or any(
        domain == d or domain.endswith(f".{d}") for d in PLACEHOLDER_DOMAINS
    )


def own_addresses(
    owner: str | None, delivery: DeliveryConfig, given: str | None = None
) -> list[str]:
    """The addresses one owner's digest could go to as the owner's own, in order:
    ``recipients[owner]``; ``given``, the address the data holds for the owner
    (``accounts.owner_email``, :func:`owner_address`); the owner itself when it is an
    address; the ``address_template`` filled with the owner. The accounts without an owner
    have only ``recipients[unassigned_label]``. Placeholders included."""
    key = delivery.unassigned_label if owner is None else owner
    found = [delivery.recipients[key]] if key in delivery.recipients else []
    if owner is not None:
        found += [given] if given else []
        found += [owner] if is_address(owner) else []
        if delivery.address_template:
            filled = delivery.address_template.format(owner=owner, slug=slugify(owner))
            found += [filled] if is_address(filled) else []
    return found


def resolve_address(
    owner: str | None, delivery: DeliveryConfig, given: str | None = None
) -> str | None:
    """Where one owner's digest goes; ``None`` when nobody can be found.

    The first of :func:`own_addresses` that is not a placeholder (:func:`is_placeholder`);
    else ``default_recipient``; else the placeholder, which is shown and written but never
    sent. The accounts without an owner go to ``recipients[unassigned_label]``, else
    ``default_recipient``.
    """
    return first_real_address(own_addresses(owner, delivery, given), delivery.default_recipient)


def first_real_address(own: Sequence[str], default: str | None) -> str | None:
    """The first of ``own`` that is not a placeholder; else ``default`` when real; else the
    placeholder (or ``default``). The one choice behind :func:`resolve_address`, the
    digests and ``validate``'s warnings."""
    real = [a for a in own if not is_placeholder(a)]
    if real:
        return real[0]
    if default and not is_placeholder(default):
        return default
    return own[0] if own else default


def owner_address(rows: pd.DataFrame) -> str | None:
    """The address the data gives for an owner's accounts (``owner_email``, a CRM's "KAM
    Email"): the most frequent valid one among ``rows``, a real one before a placeholder
    (:func:`is_placeholder`); None without one."""
    if "owner_email" not in rows:
        return None
    emails = rows["owner_email"].astype("string").str.strip().dropna()
    valid = emails[[is_address(str(e)) for e in emails]]
    if not len(valid):
        return None
    counts = valid.value_counts()
    real = [str(e) for e in counts.index if not is_placeholder(str(e))]
    return real[0] if real else str(counts.index[0])


def address_warnings(placeholder: Mapping[str, str], to_default: Mapping[str, str]) -> list[str]:
    """The warnings about owners without an address of their own, a line each: those whose
    digest has only a placeholder (``label -> address``: not sent), and those whose digest
    goes to ``delivery.default_recipient`` instead (``label -> address``)."""
    lines = []
    if placeholder:
        domains = ", ".join(sorted({a.rsplit("@", 1)[-1] for a in placeholder.values()}))
        lines.append(
            f"no e-mail address of their own for {len(placeholder)} owner(s), only a "
            f"placeholder at {domains} ({PLACEHOLDERS_TEXT}), which `ka-ml notify` does not "
            f"send to: {listed_names(list(placeholder))}. To send their digests, {ADDRESS_FIX}."
        )
    if to_default:
        lines.append(
            f"no e-mail address of their own for {len(to_default)} owner(s): "
            f"{listed_names(list(to_default))}; their digests go to delivery.default_recipient "
            f"({', '.join(sorted(set(to_default.values())))})."
        )
    return lines


def address_status(address: str | None, own_address: bool, owned: bool = True) -> str:
    """How a digest's address stands: "placeholder" (never sent), "default" (an owner's
    digest with no address of its own, ``default_recipient`` standing in), or "" (its own
    address, the unassigned accounts' recipient, or none at all). The one rule behind the
    warnings of validate, score and notify (:func:`address_warnings`)."""
    if address and is_placeholder(address):
        return "placeholder"
    if address and owned and not own_address:
        return "default"
    return ""


def owner_address_warnings(accounts: pd.DataFrame, delivery: DeliveryConfig) -> list[str]:
    """:func:`address_warnings` from the accounts table alone, before any score run (what
    ``ka-ml validate`` says): the owners whose digest would have only a placeholder, or go
    to ``default_recipient``. A wholesaler's owner without an e-mail on any of her 162
    accounts was first named by `ka-ml score`; the table says it already. Owners with no
    address at all (no template, no default) are left to `notify`'s own error."""
    if "owner" not in accounts:
        return []
    owners = accounts["owner"].astype("string").str.strip()
    found: dict[str, dict[str, str]] = {"placeholder": {}, "default": {}, "": {}}
    for owner, rows in accounts.groupby(owners.to_numpy(), sort=True):
        if not str(owner):
            continue
        own = own_addresses(str(owner), delivery, owner_address(rows))
        address = first_real_address(own, delivery.default_recipient)
        mine = any(not is_placeholder(a) for a in own)
        found[address_status(address, mine)][str(owner)] = address or ""
    return address_warnings(found["placeholder"], found["default"])


def listed_names(labels: Sequence[str], shown: int = 20) -> str:
    """'a, b, c' (the first ``shown``, then 'and N more')."""
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more
