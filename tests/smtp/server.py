"""A real SMTP server for revloop's email delivery tests, on aiosmtpd (PyPI).

Usage: python server.py OUT_DIR MODE [CERT KEY]
  MODE: plain | starttls (STARTTLS required before MAIL) | implicit (TLS from the first byte)

Listens on 127.0.0.1 on a free port and prints the port on its first line. Writes each
accepted message to OUT_DIR/NNNN.eml (atomically), answers 550 to recipients starting with
"reject" and 451 to those starting with "busy", and takes AUTH PLAIN/LOGIN as revloop/pw,
appending "<mechanism> ok|refused" to OUT_DIR/auth.
"""
import asyncio
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

out, mode = sys.argv[1], sys.argv[2]
context = None
if mode != "plain":
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[3], sys.argv[4])


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <%s>: no such user" % address
        if address.startswith("busy"):
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith(".eml")])
        path = os.path.join(out, "%04d.eml" % n)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"revloop"
        and auth_data.password == b"pw"
    )
    with open(os.path.join(out, "auth"), "a") as f:
        f.write("%s %s\n" % (mechanism, "ok" if ok else "refused"))
    # handled=False: the server answers 535 itself on a failure.
    return AuthResult(success=ok, handled=False)


def protocol():
    if mode == "starttls":
        return SMTP(Handler(), authenticator=authenticate, tls_context=context,
                    require_starttls=True, auth_require_tls=True)
    # Implicit TLS wraps the connection itself: the session is already encrypted.
    return SMTP(Handler(), authenticator=authenticate, auth_require_tls=False)


async def main():
    loop = asyncio.get_running_loop()
    wrap = context if mode == "implicit" else None
    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=wrap)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
