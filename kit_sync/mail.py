"""Sending one plain-text email over SMTP (the digest). Errors become MailError with
what to check; the password never appears in a message."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from kit_sync.config import SmtpOptions
from kit_sync.errors import KitError


class MailError(KitError):
    """The mail server could not be reached or refused the message or the login."""

    exit_code = 3


def _context(smtp: SmtpOptions) -> ssl.SSLContext:
    if isinstance(smtp.verify, str):
        return ssl.create_default_context(cafile=smtp.verify)
    context = ssl.create_default_context()
    if not smtp.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send_mail(smtp: SmtpOptions, sender: str, to: list[str], subject: str, text: str) -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(text)
    where = f"{smtp.host}:{smtp.effective_port}"
    try:
        client: smtplib.SMTP
        if smtp.security == "ssl":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.effective_port, timeout=smtp.timeout, context=_context(smtp)
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.effective_port, timeout=smtp.timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=_context(smtp))
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password.get_secret_value())
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(
            f"the mail server {where} refused the login of {smtp.username} "
            f"({exc.smtp_code}); check digest.smtp.username and password"
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise MailError(
            f"the mail server {where} does not offer STARTTLS; use security: ssl "
            "(port 465) or ask your provider for the submission settings"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(
            f"the mail server {where} refused every recipient "
            f"({', '.join(exc.recipients)}); check digest.to"
        ) from None
    except smtplib.SMTPResponseException as exc:
        text_ = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        raise MailError(f"the mail server {where} answered {exc.smtp_code} {text_}") from None
    except ssl.SSLError as exc:
        raise MailError(
            f"TLS with the mail server {where} failed ({exc.reason}); check "
            "digest.smtp.security (ssl for port 465, starttls for 587) and verify"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(
            f"cannot reach the mail server {where} ({exc}); check digest.smtp.host and port"
        ) from None
    if refused:
        raise MailError(f"the mail server {where} refused {', '.join(refused)}; check digest.to")
