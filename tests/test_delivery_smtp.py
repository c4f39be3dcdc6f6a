"""`ka-ml notify` against a real SMTP server (aiosmtpd) listening on 127.0.0.1.

The managers' addresses are at ``corp.internal`` (the top-level domain set aside for private
networks): a send to a domain reserved for examples (example.com, ``*.example``, ...) is
refused as a placeholder before it reaches any server.
"""

from __future__ import annotations

import email
import json
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from delivery_data import AS_OF, owned_ids, scores_frame
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config
from ka_ml.errors import KaMlError
from ka_ml.jobs.notify import notify

USER, PASSWORD = "mailer", "s3cret-pass"
ADDRESSES = {
    "alice.meyer": "alice@corp.internal",
    "bruno.rossi": "bruno@corp.internal",
    None: "desk@corp.internal",
}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message and refuses *@refused.internal."""

    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(  # aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.endswith("@refused.internal"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        login = session.auth_data.decode() if session.authenticated else None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg, login))
        return "250 Message accepted"


def authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    inbox: Inbox
    port: int


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-session chatter
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,  # loopback only; the client refuses this off loopback
    )
    controller.start()
    try:
        yield Server(inbox, port)
    finally:
        controller.stop()


@pytest.fixture
def scored_dir(tmp_path: Path) -> Path:
    """A score output folder as `ka-ml score` leaves it (scores + run record)."""
    folder = tmp_path / "outputs" / str(AS_OF.date())
    folder.mkdir(parents=True)
    scores_frame().to_parquet(folder / "scores.parquet", index=False)
    (folder / "run_record.json").write_text(json.dumps({"as_of": str(AS_OF.date())}))
    return folder


def mail_config(port: int, **delivery: object) -> Config:
    settings: dict[str, object] = {
        "recipients": {k: v for k, v in ADDRESSES.items() if k},
        "default_recipient": ADDRESSES[None],
        "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "timeout_seconds": 10},
    }
    settings.update(delivery)
    return Config.model_validate({"delivery": settings})


def body(msg: EmailMessage, kind: str) -> str:
    part = msg.get_body(preferencelist=(kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content())


def test_each_owner_receives_one_mail_with_only_their_accounts(
    smtp_server: Server, scored_dir: Path
) -> None:
    res = notify(scored_dir, mail_config(smtp_server.port), env={})
    assert res.sent and len(res.outgoing) == 3
    got = {tuple(m.rcpt_tos): m for m in smtp_server.inbox.messages}
    assert sorted(got) == sorted((a,) for a in ADDRESSES.values())
    for owner, address in ADDRESSES.items():
        m = got[(address,)]
        label = owner or "unassigned"
        assert m.mail_from == "ka-ml@example.com" and m.login is None
        assert m.message["To"] == address
        assert m.message["Subject"].startswith(f"[ka-ml] {label}: ")
        assert m.message["Subject"].endswith("(as of 1 Jun 2026)")
        text, html = body(m.message, "plain"), body(m.message, "html")
        mine = owned_ids(owner)
        others = {i for o in ADDRESSES if o != owner for i in owned_ids(o)}
        # the digest lists only this owner's accounts ("A1 Holdings ... (A1, tier A)")
        listed = set(re.findall(r"\(([ABU]\d), tier", text))
        assert listed <= mine and not listed & others
        assert not any(f"{i} Holdings" in text or f"{i} Holdings" in html for i in others)
        (report,) = list(m.message.iter_attachments())
        rows = re.findall(r'<tr data-c="[^"]*"[^>]*\sdata-o="([^"]*)"', report.get_content())
        assert len(rows) == len(mine)
    alice = got[(ADDRESSES["alice.meyer"],)]
    assert "1 account turned red: A1 Holdings" in body(alice.message, "plain")


def test_login_uses_the_credentials_from_the_environment(
    smtp_server: Server, scored_dir: Path
) -> None:
    env = {"KA_ML_SMTP_USER": USER, "KA_ML_SMTP_PASSWORD": PASSWORD}
    notify(scored_dir, mail_config(smtp_server.port), env=env)
    assert [m.login for m in smtp_server.inbox.messages] == [USER] * 3


def test_a_wrong_password_fails_before_anything_is_sent(
    smtp_server: Server, scored_dir: Path
) -> None:
    env = {"KA_ML_SMTP_USER": USER, "KA_ML_SMTP_PASSWORD": "wrong"}
    with pytest.raises(KaMlError, match=r"failed after 0 of 3 digest\(s\)") as err:
        notify(scored_dir, mail_config(smtp_server.port), env=env)
    assert "KA_ML_SMTP_USER" in err.value.remedy
    assert smtp_server.inbox.messages == []


def test_a_refused_recipient_is_reported_while_the_others_are_delivered(
    smtp_server: Server, scored_dir: Path
) -> None:
    cfg = mail_config(
        smtp_server.port,
        recipients={"alice.meyer": "alice@corp.internal", "bruno.rossi": "bruno@refused.internal"},
    )
    with pytest.raises(KaMlError, match=r"refused 1 of 3 digest\(s\) \(2 sent\)") as err:
        notify(scored_dir, cfg, env={})
    assert "bruno.rossi <bruno@refused.internal>" in err.value.message
    assert err.value.remedy.endswith(
        f"send only those: ka-ml notify --scores {scored_dir} --owner bruno.rossi"
    )
    assert sorted(m.rcpt_tos[0] for m in smtp_server.inbox.messages) == [
        "alice@corp.internal",
        "desk@corp.internal",
    ]


def test_a_send_cut_short_names_who_was_not_sent_and_the_command_for_them(
    smtp_server: Server, scored_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send cut short said "failed after 3 of 11 digest(s) ... rerun with --owner for
    the missing ones", leaving the operator to find out who was sent."""
    import shlex
    import smtplib

    original = smtplib.SMTP.send_message
    calls: list[int] = []

    def once_then_gone(self: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "send_message", once_then_gone)
    cfg = mail_config(smtp_server.port)
    cfg = cfg.model_copy(
        update={"paths": cfg.paths.model_copy(update={"outputs": scored_dir.parent})}
    )
    with pytest.raises(KaMlError, match=r"failed after 1 of 3 digest\(s\)") as err:
        notify(scored_dir, cfg, env={})
    (sent,) = smtp_server.inbox.messages
    to = {v: str(k or "unassigned") for k, v in ADDRESSES.items()}
    done = to[sent.rcpt_tos[0]]
    missing = [label for label in to.values() if label != done]
    shown = err.value.message.split("Not sent: ", 1)[1]
    assert shown.endswith(f"; sent: {done}.")
    assert sorted(shown.removesuffix(f"; sent: {done}.").split(", ")) == sorted(missing)
    command = err.value.remedy.split("send only the missing ones: ", 1)[1]
    assert command.startswith(f"ka-ml notify --as-of {AS_OF.date()} --owner ")
    owners = shlex.split(command)[5::2]
    assert sorted(owners) == sorted(missing)
    monkeypatch.undo()
    notify(scored_dir, cfg, env={}, owners=owners)  # the command's digests, and only those
    assert sorted(to[m.rcpt_tos[0]] for m in smtp_server.inbox.messages[1:]) == sorted(missing)


def test_a_sigterm_while_sending_is_an_interruption_that_names_who_was_sent(
    smtp_server: Server,
    scored_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator's SIGTERM during `notify` (a sink taking 1 s a message) was reported as
    "Sending over SMTP failed ...: SMTPResponseException: (250, b'OK') ... check
    delivery.smtp", exit 2: the QUIT on the way out read the reply to the message in
    flight. It is now the interruption (exit 143 from the CLI), with who was sent."""
    import smtplib

    from ka_ml.errors import Terminated

    original = smtplib.SMTP.send_message
    calls: list[int] = []

    def then_terminated(self: smtplib.SMTP, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            self.send(b"NOOP\r\n")  # a reply left unread, as a message in flight leaves one
            raise Terminated(15)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "send_message", then_terminated)
    cfg = mail_config(smtp_server.port)
    with pytest.raises(Terminated), caplog.at_level(logging.WARNING, "ka_ml.delivery"):
        notify(scored_dir, cfg, env={})
    (said,) = [r.getMessage() for r in caplog.records if "interrupted while sending" in r.message]
    assert "1 of 3 digest(s) sent" in said and "--owner" in said


def test_a_signal_whose_exception_was_lost_sends_no_further_digest(
    smtp_server: Server, scored_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM raised inside a garbage collector's weakref callback is printed and dropped
    by Python; a user's run then sent every digest and exited 0 (2 of ~110 kills)."""
    from ka_ml import errors

    monkeypatch.setattr(errors, "SIGNALS_RECEIVED", [15])
    with pytest.raises(errors.Terminated):
        notify(scored_dir, mail_config(smtp_server.port), env={})
    assert smtp_server.inbox.messages == []


def test_a_digest_without_an_address_stops_the_run_before_the_first_mail(
    smtp_server: Server, scored_dir: Path
) -> None:
    cfg = mail_config(smtp_server.port, default_recipient=None)
    with pytest.raises(KaMlError, match="No e-mail address for 1 digest") as err:
        notify(scored_dir, cfg, env={})
    assert "unassigned" in err.value.message and "default_recipient" in err.value.remedy
    assert smtp_server.inbox.messages == []


def test_an_owner_with_only_a_placeholder_address_stops_the_run_before_the_first_mail(
    smtp_server: Server, scored_dir: Path
) -> None:
    """Read: an owner with owner_email blank on all 162 accounts was sent to
    petra.hoffmann@example.com, the default address_template's placeholder, and notify
    exited 0. A placeholder is never sent to: the run names the owner, the fix and the
    commands that send theirs and the others', and sends nothing."""
    import shlex

    cfg = mail_config(
        smtp_server.port,
        recipients={"alice.meyer": "alice@corp.internal", "unassigned": "desk@corp.internal"},
        default_recipient=None,
    )  # bruno.rossi: only the template's bruno.rossi@example.com
    with pytest.raises(KaMlError) as err:
        notify(scored_dir, cfg, env={})
    assert err.value.message.startswith(
        "Only a placeholder address for 1 digest(s), never sent to (example.com/.net/.org, "
    )
    assert err.value.message.endswith(": bruno.rossi <bruno.rossi@example.com>. Nothing was sent.")
    assert smtp_server.inbox.messages == []
    for fix in ("owner_email", "delivery.recipients", "delivery.address_template"):
        assert fix in err.value.remedy
    rerun = f"ka-ml notify --scores {scored_dir}"
    assert err.value.remedy.endswith(
        f"then send theirs: {rerun} --owner bruno.rossi; "
        f"send the others now: {rerun} --owner alice.meyer --owner unassigned"
    )
    others = shlex.split(err.value.remedy.rsplit("send the others now: ", 1)[1])[5::2]
    notify(scored_dir, cfg, env={}, owners=others)  # the command's digests go out
    assert sorted(m.rcpt_tos[0] for m in smtp_server.inbox.messages) == [
        "alice@corp.internal",
        "desk@corp.internal",
    ]


def test_a_placeholder_in_any_reserved_domain_goes_to_the_default_recipient_instead(
    smtp_server: Server, scored_dir: Path
) -> None:
    """The owner's digest without an address of their own goes to default_recipient when
    one is set (as an owner without any address did), never to the placeholder."""
    cfg = mail_config(
        smtp_server.port,
        recipients={"alice.meyer": "alice@corp.internal", "bruno.rossi": "bruno@crm.invalid"},
        address_template="{slug}@sales.example.org",
    )
    res = notify(scored_dir, cfg, env={})
    got = {o.digest.label: (o.digest.address, o.digest.own_address) for o in res.outgoing}
    assert got == {
        "alice.meyer": ("alice@corp.internal", True),
        "bruno.rossi": ("desk@corp.internal", False),
        "unassigned": ("desk@corp.internal", False),
    }
    assert sorted(m.rcpt_tos[0] for m in smtp_server.inbox.messages) == [
        "alice@corp.internal",
        "desk@corp.internal",
        "desk@corp.internal",
    ]


def test_the_cli_says_which_recipients_are_placeholders_in_a_dry_run_and_refuses_to_send(
    smtp_server: Server, scored_dir: Path, tmp_path: Path
) -> None:
    """notify's table read 'Petra Hoffmann  petra.hoffmann@example.com  162', exit 0."""
    cfg = mail_config(smtp_server.port, recipients={}, default_recipient=None)
    raw = cfg.model_dump(mode="json")
    raw["paths"]["outputs"] = str(scored_dir.parent)
    config = tmp_path / "ka_ml.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    mail = tmp_path / "mail"
    res = CliRunner().invoke(
        app, ["notify", "--config", str(config), "--dry-run", "--out", str(mail)]
    )
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "alice.meyer@example.com (placeholder: never sent)" in said
    assert (
        "warning: no e-mail address of their own for 2 owner(s), only a placeholder at "
        "example.com (example.com/.net/.org, *.example, *.invalid, *.test and *.localhost "
        "are reserved for examples: nobody's mailbox), which `ka-ml notify` does not send "
        "to: alice.meyer, bruno.rossi. To send their digests, fill owner_email"
    ) in said
    assert "no address" in said  # the accounts without an owner: no default_recipient
    assert sorted(p.name for p in mail.glob("*.eml")) == [
        "alice.meyer.eml",
        "bruno.rossi.eml",
        "unassigned.eml",
    ]
    res = CliRunner().invoke(app, ["notify", "--config", str(config)])
    said = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "No e-mail address for 1 digest(s): unassigned." in said
    assert "Only a placeholder address for 2 digest(s)" in said
    assert "Nothing was sent." in said
    assert f"ka-ml notify --config {config} --as-of {AS_OF.date()} --owner alice.meyer" in said
    assert smtp_server.inbox.messages == []


def test_an_unreachable_server_is_a_clear_error(scored_dir: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(KaMlError, match=f"SMTP 127.0.0.1:{port} failed after 0 of 3"):
        notify(scored_dir, mail_config(port), env={})


def test_a_password_is_never_sent_unencrypted_to_a_remote_server(scored_dir: Path) -> None:
    cfg = Config.model_validate(
        {
            "delivery": {
                "default_recipient": "desk@corp.internal",
                "smtp": {"host": "smtp.corp.internal", "port": 25, "tls": "none"},
            }
        }
    )
    env = {"KA_ML_SMTP_USER": USER, "KA_ML_SMTP_PASSWORD": PASSWORD}
    with pytest.raises(KaMlError, match="without TLS"):
        notify(scored_dir, cfg, env=env)


def test_the_cli_sends_the_digests_of_the_latest_scored_date(
    smtp_server: Server, scored_dir: Path, tmp_path: Path
) -> None:
    cfg = mail_config(smtp_server.port)
    raw = cfg.model_dump(mode="json")
    raw["paths"]["outputs"] = str(scored_dir.parent)
    config = tmp_path / "ka_ml.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    res = CliRunner().invoke(app, ["notify", "--config", str(config)])
    assert res.exit_code == 0, res.output
    assert f"sent 3 digests from {scored_dir}" in res.output.replace("\n", "")
    assert len(smtp_server.inbox.messages) == 3
