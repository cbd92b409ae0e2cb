"""An SMTP sink for certgate's tests (aiosmtpd): listens on 127.0.0.1, an ephemeral port.

Prints one JSON line {"port": N} when it listens, then one JSON line per message received:
the envelope (mail_from, rcpt_tos), the headers as a mail client reads them (from, to,
subject), the decoded text body, and whether the session was on TLS and authenticated.
With --cert/--key it offers STARTTLS and requires it; with --user/--password-file it requires
AUTH (PLAIN or LOGIN) with that login. It stops when its standard input closes.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        print(
            json.dumps(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "from": str(msg.get("From", "")),
                    "to": str(msg.get("To", "")),
                    "subject": str(msg.get("Subject", "")),
                    "body": body.get_content() if body is not None else "",
                    "tls": session.ssl is not None,
                    "authenticated": bool(session.authenticated),
                }
            ),
            flush=True,
        )
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password-file")
    a = p.parse_args()
    if os.environ.get("SMTP_SINK_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)
    password = None
    if a.password_file:
        with open(a.password_file, "rb") as f:
            password = f.read().strip()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == (a.user or "").encode()
            and auth_data.password == password
        )
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False)

    def factory():
        kwargs = {}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if a.user:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls is not None)
        return SMTP(Sink(), hostname="sink.test", **kwargs)

    async def run():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0)
        print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
