"""CurveZMQ keys for ``genjscc serve --curve-keys DIR``: authentication and encryption.

``genjscc serve --gen-keys DIR`` writes (ZeroMQ certificate files, Z85 text)::

    DIR/server.key          the server's public key        (give it to every client)
    DIR/server.key_secret   the server's secret key        (stays on the server)
    DIR/client.key          a client's public key
    DIR/client.key_secret   that client's secret key       (give it to that client only)
    DIR/authorized/         public keys the server accepts (client.key is copied here)

The server (broker sockets for clients and workers) loads ``server.key_secret`` and accepts
only clients whose public key is in ``authorized/``; everything else fails the CurveZMQ
handshake and never reaches the server's code. A client (and a worker) loads
``server.key`` and ``client.key_secret``. More clients: ``genjscc serve --gen-keys DIR
--client-name NAME`` adds ``NAME.key``/``NAME.key_secret`` and authorizes ``NAME.key``.

Workers also prove a shared secret (``--worker-secret FILE`` on the broker and on each
worker; a broker started without one makes a random one for its local workers): the broker
sends a one-time nonce and accepts a worker's ``ready`` only with :func:`worker_proof` of it.
Without CurveZMQ this keeps processes that do not know the secret from registering as
workers; it does not hide the traffic from someone on the path (CurveZMQ does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from genjscc.errors import GenjsccError

SERVER = "server"
CLIENT = "client"
AUTHORIZED = "authorized"


def generate_keys(directory: str | Path, client_name: str = CLIENT) -> list[Path]:
    """Create the key files of the module docstring (the server pair only if missing).

    Returns the files written. Secret files are made readable by their owner only.
    """
    import zmq.auth

    if not client_name.isidentifier():
        raise GenjsccError(f"--client-name {client_name!r}: use letters, digits and _")
    root = Path(directory).expanduser()
    (root / AUTHORIZED).mkdir(parents=True, exist_ok=True)
    written = []
    if not (root / f"{SERVER}.key_secret").exists():
        written += [Path(p) for p in zmq.auth.create_certificates(root, SERVER)]
    if (root / f"{client_name}.key_secret").exists():
        raise GenjsccError(f"{root / (client_name + '.key_secret')} exists already; choose "
                           "another --client-name")
    public, secret = zmq.auth.create_certificates(root, client_name)
    written += [Path(public), Path(secret)]
    shutil.copy(public, root / AUTHORIZED / Path(public).name)
    written.append(root / AUTHORIZED / Path(public).name)
    for path in written:
        if path.name.endswith(".key_secret"):
            path.chmod(0o600)
    return written


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path.is_file():
        raise GenjsccError(f"CurveZMQ key file {path} is missing; make the keys with "
                           "`genjscc serve --gen-keys DIR`")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as error:
        raise GenjsccError(f"cannot read CurveZMQ key file {path}: {error}") from error
    if secret and secret_key is None:
        raise GenjsccError(f"{path} holds no secret key")
    return public, secret_key


def server_keys(directory: str | Path) -> tuple[bytes, bytes, Path]:
    """``(public, secret, authorized_dir)`` of the server in ``directory``."""
    root = Path(directory).expanduser()
    public, secret = _load(root / f"{SERVER}.key_secret", secret=True)
    authorized = root / AUTHORIZED
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise GenjsccError(f"{authorized} holds no client public keys: no client could connect")
    return public, secret, authorized  # type: ignore[return-value]


def client_keys(directory: str | Path, client_name: str = CLIENT) -> tuple[bytes, bytes, bytes]:
    """``(client public, client secret, server public)`` for a client of ``directory``."""
    root = Path(directory).expanduser()
    public, secret = _load(root / f"{client_name}.key_secret", secret=True)
    server_public, _ = _load(root / f"{SERVER}.key", secret=False)
    return public, secret, server_public  # type: ignore[return-value]


def start_authenticator(context, directory: str | Path):
    """A running ``ThreadAuthenticator`` on ``context`` accepting the authorized keys; returns
    ``(authenticator, public, secret)`` for :func:`make_curve_server`."""
    from zmq.auth.thread import ThreadAuthenticator

    public, secret, authorized = server_keys(directory)
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized))
    return auth, public, secret


def make_curve_server(sock, public: bytes, secret: bytes) -> None:
    """Configure ``sock`` (before bind) as a CurveZMQ server."""
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True


# ------------------------------------------------------------------ worker shared secret


def read_worker_secret(path: str | Path) -> bytes:
    """The shared secret in file ``path`` (``--worker-secret``): its bytes, surrounding
    whitespace stripped; at least 16 of them."""
    file = Path(path).expanduser()
    try:
        secret = file.read_bytes().strip()
    except OSError as error:
        raise GenjsccError(f"cannot read the worker secret {file}: {error.strerror or error}; "
                           "make one with e.g. `head -c 32 /dev/urandom | base64 > FILE`"
                           ) from error
    if len(secret) < 16:
        raise GenjsccError(f"worker secret {file} holds {len(secret)} bytes; use at least 16 "
                           "random ones (e.g. `head -c 32 /dev/urandom | base64 > FILE`)")
    return secret


def worker_proof(secret: bytes, nonce: str, worker: str) -> str:
    """What a worker sends with ``ready``: HMAC-SHA256 of the broker's one-time ``nonce`` and
    the worker's id under the shared secret (the secret itself never travels)."""
    import hashlib
    import hmac

    return hmac.new(secret, f"{nonce}:{worker}".encode(), hashlib.sha256).hexdigest()
