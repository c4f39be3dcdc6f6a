"""Each owner's digest as an e-mail, sent over SMTP or written as ``.eml`` (the mail edge).

The job (:mod:`ka_ml.jobs.notify`) rebuilds the digests from a score output folder and hands
them here. Messages
are standard ``multipart/alternative`` (text + HTML), with the owner's report attached
when ``delivery.attach_report`` is on; built with the standard library's ``email``.

Safety: every address is resolved before the first message goes out, so a missing
address, or one that is only a placeholder (``{slug}@example.com``, any domain reserved for
examples: :func:`~ka_ml.delivery.digest.is_placeholder`), fails the run up front instead of
half-way, naming the owners and the commands that send theirs and the others'; credentials come only from the
environment (``delivery.smtp.user_env`` / ``password_env``) and are never sent over an
unencrypted connection except to a loopback relay.
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path

from ka_ml.config import DeliveryConfig, SmtpConfig
from ka_ml.delivery.digest import (
    ADDRESS_FIX,
    PLACEHOLDERS_TEXT,
    OwnerDigest,
    is_placeholder,
    listed_names,
)
from ka_ml.errors import KaMlError, stop_if_signalled
from ka_ml.io import atomic_write

log = logging.getLogger("ka_ml.delivery")

# CRLF, and lines up to the SMTP limit: short headers stay on one line (the default 78
# makes the email package fold "Subject: [ka-ml] ..." right after the colon)
MAIL_POLICY = SMTP_POLICY.clone(max_line_length=998)


@dataclass(frozen=True)
class Outgoing:
    """One digest and its e-mail."""

    digest: OwnerDigest
    message: EmailMessage


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def compose(digest: OwnerDigest, delivery: DeliveryConfig) -> EmailMessage:
    """The digest as a standard e-mail: text and HTML alternatives (+ the report attached)."""
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = digest.subject
    msg["From"] = delivery.smtp.sender
    if digest.address:
        msg["To"] = digest.address
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=delivery.smtp.sender.rsplit("@", 1)[-1])
    msg["X-Ka-Ml-Owner"] = digest.slug
    msg["X-Ka-Ml-As-Of"] = digest.as_of
    msg.set_content(digest.text)
    msg.add_alternative(digest.html, subtype="html")
    if delivery.attach_report:
        msg.add_attachment(
            digest.report_html.encode("utf-8"),
            maintype="text",
            subtype="html",
            filename=f"key-accounts-{digest.slug}-{digest.as_of}.html",
        )
    return msg


def write_eml(outgoing: Sequence[Outgoing], out_dir: Path) -> list[Path]:
    """``out_dir/<owner>.eml`` per message (CRLF line ends, as the RFC has it); atomic each."""
    paths = []
    for o in outgoing:  # one per owner
        data = o.message.as_bytes(policy=MAIL_POLICY)

        def write(p: Path, data: bytes = data) -> None:
            p.write_bytes(data)

        paths.append(atomic_write(Path(out_dir) / f"{o.digest.slug}.eml", write))
    return paths


def _check_addresses(outgoing: Sequence[Outgoing], rerun: str = "ka-ml notify") -> None:
    """Every digest has an address to send to, none a placeholder, before the first goes out."""
    missing = [o.digest.label for o in outgoing if not o.digest.address]
    held = [
        f"{o.digest.label} <{o.digest.address}>"
        for o in outgoing
        if o.digest.address and is_placeholder(o.digest.address)
    ]
    if not missing and not held:
        return
    said = []
    if missing:
        said.append(f"No e-mail address for {len(missing)} digest(s): {listed_names(missing)}.")
    if held:
        said.append(
            f"Only a placeholder address for {len(held)} digest(s), never sent to "
            f"({PLACEHOLDERS_TEXT}): {listed_names(held)}."
        )
    unsent = [o.digest.label for o in outgoing if not sendable(o.digest)]
    others = [o.digest.label for o in outgoing if sendable(o.digest)]
    raise KaMlError(
        " ".join([*said, "Nothing was sent."]),
        f"{ADDRESS_FIX} (it also gets the accounts without an owner); then send theirs: "
        f"{resend_command(unsent, rerun)}"
        + (f"; send the others now: {resend_command(others, rerun)}" if others else ""),
    )


def sendable(digest: OwnerDigest) -> bool:
    """Whether a real send may mail this digest: it has an address, and not a placeholder."""
    return bool(digest.address) and not is_placeholder(str(digest.address))


def _credentials(smtp: SmtpConfig, env: Mapping[str, str]) -> tuple[str, str] | None:
    user, password = env.get(smtp.user_env, ""), env.get(smtp.password_env, "")
    if not user:
        return None
    if not password:
        raise KaMlError(
            f"{smtp.user_env} is set but {smtp.password_env} is not.",
            f"export {smtp.password_env} too (or unset {smtp.user_env} for a relay without login).",
        )
    if smtp.tls == "none" and not is_loopback(smtp.host):
        raise KaMlError(
            f"Refusing to send the SMTP password to {smtp.host} without TLS.",
            "set delivery.smtp.tls to starttls or ssl.",
        )
    return user, password


def resend_command(labels: Sequence[str], rerun: str = "ka-ml notify") -> str:
    """``rerun`` with one ``--owner`` per label (shell-quoted): the digests to send again."""
    return " ".join([rerun, *(f"--owner {shlex.quote(label)}" for label in labels)])


def send(
    outgoing: Sequence[Outgoing],
    smtp: SmtpConfig,
    env: Mapping[str, str],
    rerun: str = "ka-ml notify",
) -> None:
    """Send every message over one SMTP connection; report every failure at the end, naming
    the owners whose digest was not sent and the command (``rerun`` with their ``--owner``)
    that sends only theirs."""
    _check_addresses(outgoing, rerun)
    creds = _credentials(smtp, env)
    context = ssl.create_default_context()
    failed: list[str] = []
    sent_to: set[str] = set()
    sent = 0
    try:
        server = (
            smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
            if smtp.tls == "ssl"
            else smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        )
        with server:
            try:
                if smtp.tls == "starttls":
                    server.starttls(context=context)
                if creds:
                    server.login(*creds)
                for o in outgoing:  # one message per owner
                    stop_if_signalled()  # a SIGTERM whose exception was lost sends no more
                    try:
                        refused = server.send_message(o.message)
                        problem = str(refused) if refused else ""
                    except smtplib.SMTPRecipientsRefused as e:
                        problem = str(e.recipients)
                    except smtplib.SMTPResponseException as e:  # sender or data refused
                        problem = f"{e.smtp_code} {e.smtp_error!r}"
                    if problem:
                        failed.append(f"{o.digest.label} <{o.digest.address}>: {problem}")
                    else:
                        sent += 1
                        sent_to.add(o.digest.label)
            except KeyboardInterrupt:
                # no QUIT: the reply to a message in flight would be read as QUIT's, and
                # a SIGTERM was reported as "SMTPResponseException: (250, b'OK')", exit 2
                server.close()
                raise
    except KeyboardInterrupt:
        missing = [o.digest.label for o in outgoing if o.digest.label not in sent_to]
        log.warning(
            "interrupted while sending: %d of %d digest(s) sent%s; not sent: %s (the one "
            "being sent may have gone out); %s sends only those",
            sent,
            len(outgoing),
            f" ({listed_names(sorted(sent_to))})" if sent_to else "",
            listed_names(missing),
            resend_command(missing, rerun),
        )
        raise
    except (OSError, smtplib.SMTPException) as e:
        missing = [o.digest.label for o in outgoing if o.digest.label not in sent_to]
        done = [o.digest.label for o in outgoing if o.digest.label in sent_to]
        raise KaMlError(
            f"Sending over SMTP {smtp.host}:{smtp.port} failed after {sent} of "
            f"{len(outgoing)} digest(s): {type(e).__name__}: {e}. Not sent: "
            f"{listed_names(missing)}" + (f"; sent: {listed_names(done)}." if done else "."),
            "check delivery.smtp (host, port, tls) and the credentials in "
            f"{smtp.user_env}/{smtp.password_env}; then send only the missing ones: "
            f"{resend_command(missing, rerun)}",
        ) from e
    if failed:
        missing = [o.digest.label for o in outgoing if o.digest.label not in sent_to]
        raise KaMlError(
            f"The SMTP server refused {len(failed)} of {len(outgoing)} digest(s) "
            f"({sent} sent): {' | '.join(failed[:10])}.",
            "fix those addresses (delivery.recipients), then send only those: "
            f"{resend_command(missing, rerun)}",
        )


__all__ = [
    "MAIL_POLICY",
    "Outgoing",
    "compose",
    "is_loopback",
    "send",
    "sendable",
    "write_eml",
]
